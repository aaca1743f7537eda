"""Monitoring: the per-model monitor config, and the results of checks recorded on a version.

A check compares current data (the inference log, a batch run, a file) with the version's stored
reference and, once outcomes are known, computes its performance. Its result is recorded on the
version with one overall status:

- ``NOT_ENOUGH_DATA``: fewer rows in the window than ``min_rows`` (nothing else is judged);
- ``DEGRADED``: a performance metric is worse than its baseline by more than ``tolerance``;
- ``DRIFT``: at least ``drift_share`` of the checked features drift, or the predictions do;
- ``WARNING``: some feature or the predictions pass their warning threshold;
- ``OK``: none of the above.

A change of status between two results of one version is audited and emits a webhook event
(``EVENT_OF_STATUS``).

Threshold defaults, and why (each method's statistic is computed for every feature; the config
chooses which one judges):

- ``psi`` 0.1 / 0.25: the population stability index's customary reading (below 0.1 stable,
  0.1-0.25 a moderate shift, above 0.25 a major one); it does not grow with the sample size.
- ``js`` 0.1 / 0.2: Jensen-Shannon distance (base 2, 0 to 1); 0.1 is the usual alarm level.
- ``ks`` 0.1 / 0.2: the Kolmogorov-Smirnov *statistic*, not its p-value: at a million rows the
  p-value is tiny for shifts too small to matter, while the statistic (the largest gap between
  the two distribution functions) reads the same at any size.
- ``wasserstein`` 0.1 / 0.2: the Wasserstein distance divided by the reference's standard
  deviation ("moved by a tenth of a standard deviation").
- ``chi2`` 0.05 / 0.01: p-values of the chi-squared test (lower is worse); like KS's p-value it
  fires on tiny shifts at large sizes, so categorical columns default to ``psi``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from covex.domain.errors import InvalidInput
from covex.domain.yaml_reader import Document, Limits, Loc, YamlProblem, read_yaml

STATUSES: tuple[str, ...] = ("OK", "WARNING", "DRIFT", "DEGRADED", "NOT_ENOUGH_DATA")
# The webhook event a change *to* a status emits (``recovered``: back to OK from a worse status).
EVENT_OF_STATUS = {"DRIFT": "monitor.drift_detected", "DEGRADED": "monitor.performance_degraded"}
RECOVERED_EVENT = "monitor.recovered"
BAD = frozenset({"WARNING", "DRIFT", "DEGRADED"})

NUMERIC_METHODS = ("psi", "js", "ks", "wasserstein")
CATEGORICAL_METHODS = ("psi", "js", "chi2")
METHODS = ("psi", "js", "ks", "wasserstein", "chi2")
THRESHOLDS: dict[str, tuple[float, float]] = {
    "psi": (0.1, 0.25),
    "js": (0.1, 0.2),
    "ks": (0.1, 0.2),
    "wasserstein": (0.1, 0.2),
    "chi2": (0.05, 0.01),
}
LOWER_IS_WORSE = frozenset({"chi2"})
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "mape", "r2")
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape"})
TASKS = ("classification", "regression")
MAX_SOURCE = 2048
MAX_RESULT_LENGTH = 1024 * 1024
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
CONFIG_YAML = Limits(max_nodes=5_000, max_depth=8, aliases=False, name="monitor configs")


def parse_duration(value: object, field: str) -> float:
    """Seconds from ``90s``, ``30m``, ``24h``, ``7d``, ``2w`` (or a number of seconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if match is None:
            raise InvalidInput(f"'{field}' must be a duration such as 30m, 24h or 7d, got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not (math.isfinite(seconds) and 0 < seconds <= 366 * 86400):
        raise InvalidInput(f"'{field}' must be more than 0 and at most a year, got {value!r}")
    return seconds


class Rule(BaseModel):
    """How one feature (or the predictions) is judged: the method and its two thresholds."""

    model_config = ConfigDict(frozen=True)

    method: str
    warn: float
    drift: float

    def verdict(self, value: float | None) -> str:
        """``ok``, ``warn`` or ``drift`` for the method's statistic (None: nothing to judge)."""
        if value is None or not math.isfinite(value):
            return "ok"
        if self.method in LOWER_IS_WORSE:
            return "drift" if value < self.drift else "warn" if value < self.warn else "ok"
        return "drift" if value >= self.drift else "warn" if value >= self.warn else "ok"


class Performance(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str | None = None  # None: classification when the labels are few distinct values, else regression
    metrics: tuple[str, ...] = ()  # empty: every metric of the task
    tolerance: float = 0.05  # relative: 0.05 = 5% worse than the baseline
    positive: str | None = None  # the positive class of a binary classifier (default: the larger label)


class MonitorConfig(BaseModel):
    """A model's monitor config; every field has a documented default (``MonitorConfig()``)."""

    model_config = ConfigDict(frozen=True)

    window_s: float = 86400.0
    min_rows: int = 100
    drift_share: float = 0.5
    features: tuple[str, ...] | None = None  # None: every column of the reference
    numeric: str = "psi"
    categorical: str = "psi"
    thresholds: dict[str, tuple[float, float]] = dict(THRESHOLDS)
    columns: dict[str, Rule] = {}
    predictions: Rule | None = None
    performance: Performance = Performance()
    rollback_when_degraded: bool = False  # a version turning DEGRADED rolls its aliases and stage back

    def rule(self, column: str, kind: str) -> Rule:
        """The rule that judges ``column`` (of ``kind`` numeric or categorical)."""
        if column in self.columns:
            return self.columns[column]
        method = self.numeric if kind == "numeric" else self.categorical
        warn, drift = self.thresholds[method]
        return Rule(method=method, warn=warn, drift=drift)

    def prediction_rule(self, kind: str) -> Rule:
        return self.predictions if self.predictions is not None else self.rule("\0predictions", kind)


# -- reading a config (YAML text, or the same as a mapping), every problem with its line -----------


def parse_monitor_config(text: str) -> MonitorConfig:
    """Read a monitor config from YAML; ``InvalidInput`` naming the line of every problem."""
    if not isinstance(text, str):
        raise InvalidInput("'config' must be YAML text")
    try:
        document = read_yaml(text, limits=CONFIG_YAML)
    except YamlProblem as exc:
        raise InvalidInput(f"monitor config rejected: {exc.message}") from None
    return _Reader(document).config()


_TOP = {
    "rollback_when_degraded",
    "window",
    "min_rows",
    "drift_share",
    "features",
    "methods",
    "thresholds",
    "columns",
    "predictions",
    "performance",
}


class _Reader:
    def __init__(self, document: Document) -> None:
        self.doc = document
        self.problems: list[tuple[int, str]] = []

    def bad(self, loc: Loc, message: str) -> None:
        self.problems.append((self.doc.line(loc), message))

    def config(self) -> MonitorConfig:
        value = self.doc.value if self.doc.value is not None else {}
        out: dict[str, Any] = {}
        if not isinstance(value, dict):
            raise InvalidInput("monitor config rejected: line 1: the config must be a mapping of settings")
        for key in value:
            if key not in _TOP:
                self.bad((key,), f"unknown setting {key!r}; the settings are {', '.join(sorted(_TOP))}")
        if "window" in value:
            out["window_s"] = self.guard(("window",), lambda: parse_duration(value["window"], "window"))
        if "min_rows" in value:
            out["min_rows"] = self.integer(("min_rows",), value["min_rows"], "min_rows", low=1)
        if "drift_share" in value:
            share = self.number(("drift_share",), value["drift_share"], "drift_share", 0.0, 1.0)
            if share == 0:
                self.bad(("drift_share",), "'drift_share' must be more than 0 (0 would call every check DRIFT)")
            out["drift_share"] = share
        if "features" in value:
            out["features"] = self.names(("features",), value["features"], "features")
        methods = self.mapping(("methods",), value.get("methods"), "methods")
        for kind, allowed in (("numeric", NUMERIC_METHODS), ("categorical", CATEGORICAL_METHODS)):
            if kind in methods:
                out[kind] = self.method((("methods", kind)), methods[kind], f"methods.{kind}", allowed)
        for key in methods:
            if key not in ("numeric", "categorical"):
                self.bad(("methods", key), f"'methods' has keys numeric and categorical, not {key!r}")
        thresholds = dict(THRESHOLDS)
        for method, pair in self.mapping(("thresholds",), value.get("thresholds"), "thresholds").items():
            loc = ("thresholds", method)
            if method not in METHODS:
                self.bad(loc, f"unknown method {method!r}; the methods are {', '.join(METHODS)}")
                continue
            where = f"thresholds.{method}"
            given = self.mapping(loc, pair, where)
            if "method" in given:
                self.bad((*loc, "method"), f"'{where}' sets the thresholds of {method}: give warn and drift only")
                continue
            rule = self.rule(loc, {"method": method, **given}, where)
            if rule is not None:
                thresholds[method] = (rule.warn, rule.drift)
        out["thresholds"] = thresholds
        columns = {}
        for column, body in self.mapping(("columns",), value.get("columns"), "columns").items():
            loc = ("columns", column)
            rule = self.rule(loc, self.mapping(loc, body, f"columns.{column}"), f"columns.{column}", thresholds)
            if rule is not None:
                columns[str(column)] = rule
        out["columns"] = columns
        if value.get("predictions") is not None:
            at: Loc = ("predictions",)
            rule = self.rule(at, self.mapping(at, value["predictions"], "predictions"), "predictions", thresholds)
            out["predictions"] = rule
        if value.get("performance") is not None:
            out["performance"] = self.performance(value["performance"])
        if "rollback_when_degraded" in value:
            flag = value["rollback_when_degraded"]
            if isinstance(flag, bool):
                out["rollback_when_degraded"] = flag
            else:
                self.bad(("rollback_when_degraded",), f"'rollback_when_degraded' must be true or false, got {flag!r}")
        if self.problems:
            self.problems.sort()
            shown = "; ".join(f"line {line}: {message}" for line, message in self.problems[:10])
            more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
            raise InvalidInput(f"monitor config rejected: {shown}{more}")
        return MonitorConfig(**out)

    def guard(self, loc: Loc, make: Any) -> Any:
        try:
            return make()
        except InvalidInput as exc:
            self.bad(loc, exc.message)
            return None

    def integer(self, loc: Loc, value: object, field: str, *, low: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 10**12:
            self.bad(loc, f"'{field}' must be a whole number of at least {low}, got {value!r}")
            return None
        return value

    def number(self, loc: Loc, value: object, field: str, low: float, high: float) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            self.bad(loc, f"'{field}' must be a number from {low:g} to {high:g}, got {value!r}")
            return None
        return float(value)

    def mapping(self, loc: Loc, value: object, field: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.bad(loc, f"'{field}' must be a mapping")
            return {}
        return value

    def names(self, loc: Loc, value: object, field: str) -> tuple[str, ...] | None:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            self.bad(loc, f"'{field}' must be a list of column names")
            return None
        return tuple(value)

    def method(self, loc: Loc, value: object, field: str, allowed: tuple[str, ...]) -> str | None:
        if value not in allowed:
            self.bad(loc, f"'{field}' must be one of {', '.join(allowed)}, got {value!r}")
            return None
        return str(value)

    def rule(
        self, loc: Loc, body: dict[str, Any], field: str, thresholds: Mapping[str, tuple[float, float]] = THRESHOLDS
    ) -> Rule | None:
        for key in body:
            if key not in ("method", "warn", "drift"):
                self.bad((*loc, key), f"'{field}' has keys method, warn and drift, not {key!r}")
        method = body.get("method", "psi")
        if method not in METHODS:
            self.bad((*loc, "method"), f"'{field}.method' must be one of {', '.join(METHODS)}, got {method!r}")
            return None
        default_warn, default_drift = thresholds[method]
        top = 1.0 if method in ("js", "ks", "chi2") else 1e9
        warn = self.number((*loc, "warn"), body.get("warn", default_warn), f"{field}.warn", 0.0, top)
        drift = self.number((*loc, "drift"), body.get("drift", default_drift), f"{field}.drift", 0.0, top)
        if warn is None or drift is None:
            return None
        if (drift > warn) if method in LOWER_IS_WORSE else (drift < warn):
            order = "at most" if method in LOWER_IS_WORSE else "at least"
            self.bad(loc, f"'{field}': drift must be {order} warn for {method} (warn {warn:g}, drift {drift:g})")
            return None
        return Rule(method=method, warn=warn, drift=drift)

    def performance(self, value: object) -> Performance | None:
        body = self.mapping(("performance",), value, "performance")
        out: dict[str, Any] = {}
        for key in body:
            if key not in ("task", "metrics", "tolerance", "positive"):
                self.bad(
                    ("performance", key), f"'performance' has keys task, metrics, tolerance and positive, not {key!r}"
                )
        if "task" in body:
            out["task"] = self.method(("performance", "task"), body["task"], "performance.task", TASKS)
        if "metrics" in body:
            names = self.names(("performance", "metrics"), body["metrics"], "performance.metrics") or ()
            known = CLASSIFICATION_METRICS + REGRESSION_METRICS
            for i, name in enumerate(names):
                if name not in known:
                    self.bad(
                        ("performance", "metrics", i), f"unknown metric {name!r}; the metrics are {', '.join(known)}"
                    )
            out["metrics"] = tuple(names)
        if "tolerance" in body:
            out["tolerance"] = self.number(
                ("performance", "tolerance"), body["tolerance"], "performance.tolerance", 0.0, 10.0
            )
        if "positive" in body:
            positive = body["positive"]
            if isinstance(positive, bool | int | float | str):
                out["positive"] = str(int(positive)) if isinstance(positive, bool) else str(positive)
            else:
                self.bad(("performance", "positive"), "'performance.positive' must be a class label")
        return Performance(**{k: v for k, v in out.items() if v is not None})


# -- results -------------------------------------------------------------------------------------


class MonitorResult(BaseModel):
    """One check of one version: its window, its data, what it found, and the overall status."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    version: int
    status: str
    source: str
    rows: int
    window_start: int | None = None  # ms since the epoch; None: not a time window (a file)
    window_end: int | None = None
    created_at: int
    created_by: str
    body: dict[str, Any] = {}  # features, predictions, performance, findings, share_drifted

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def check_status(value: object) -> str:
    if value not in STATUSES:
        raise InvalidInput(f"'status' must be one of {', '.join(STATUSES)}, got {value!r}")
    return str(value)


def event_for_change(before: str | None, after: str) -> str | None:
    """The webhook event of a change of status (None when it announces nothing)."""
    if before == after:
        return None
    if after in EVENT_OF_STATUS:
        return EVENT_OF_STATUS[after]
    if after == "OK" and before in BAD:
        return RECOVERED_EVENT
    return None


# -- the drift reference of a version (a version document, kind "reference") ---------------------

REFERENCE_VERSION = 1
MAX_CATEGORIES = 500  # per column; rarer ones are counted together as "other"


def check_reference(body: object) -> None:
    """The shape checks read: ``{"version", "rows", "columns": {...}, "predictions": {...}}``.

    A numeric column is ``{"kind": "numeric", "edges": [...], "counts": [len(edges) + 1 ints],
    "low", "high", "std", "missing"}``; a categorical one ``{"kind": "categorical", "counts":
    {category: n}, "other": n, "missing": n}``.
    """
    if not isinstance(body, Mapping):
        raise InvalidInput("'reference' must be a JSON object")
    if body.get("version") != REFERENCE_VERSION:
        raise InvalidInput(f"'reference.version' must be {REFERENCE_VERSION}, got {body.get('version')!r}")
    _count(body.get("rows"), "reference.rows")
    ignored = body.get("ignored", [])
    if not isinstance(ignored, list) or not all(isinstance(c, str) for c in ignored):
        raise InvalidInput("'reference.ignored' must be a list of column names")
    for part in ("columns", "predictions"):
        columns = body.get(part)
        if columns is None and part == "predictions":
            continue
        if not isinstance(columns, Mapping):
            raise InvalidInput(f"'reference.{part}' must be a mapping of column name to its bins")
        for name, column in columns.items():
            _check_column(column, f"reference.{part}.{name}")


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"'{field}' must be a non-negative integer, got {value!r}")
    return value


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"'{field}' must be a finite number, got {value!r}")
    return float(value)


def _check_column(column: object, field: str) -> None:
    if not isinstance(column, Mapping):
        raise InvalidInput(f"'{field}' must be a JSON object")
    kind = column.get("kind")
    _count(column.get("missing", 0), f"{field}.missing")
    if kind == "numeric":
        edges, counts = column.get("edges"), column.get("counts")
        if not isinstance(edges, list) or not isinstance(counts, list) or len(counts) != len(edges) + 1:
            raise InvalidInput(f"'{field}' needs 'edges' and 'counts' lists, one more count than edges")
        values = [_number(e, f"{field}.edges") for e in edges]
        if any(b <= a for a, b in itertools.pairwise(values)):
            raise InvalidInput(f"'{field}.edges' must rise strictly")
        for c in counts:
            _count(c, f"{field}.counts")
        for key in ("low", "high", "std"):
            _number(column.get(key), f"{field}.{key}")
    elif kind == "categorical":
        counts = column.get("counts")
        if not isinstance(counts, Mapping):
            raise InvalidInput(f"'{field}.counts' must map each category to its count")
        for c in counts.values():
            _count(c, f"{field}.counts")
        _count(column.get("other", 0), f"{field}.other")
    else:
        raise InvalidInput(f"'{field}.kind' must be numeric or categorical, got {kind!r}")


# -- the body of a result: the shape every reader (CLI, card, report, the next check) relies on --------

MAX_RESULT_BODY = 4 * 1024 * 1024  # as JSON: 2,000 columns with their plot data fit
_NUMBER_OR_NONE = (int, float, type(None))


def check_result_body(body: object) -> None:
    """Refuse a result body whose known keys have other types than checks write (other keys pass as JSON)."""
    if not isinstance(body, Mapping):
        raise InvalidInput("'body' must be a JSON object")
    for key in ("drifted", "warned", "degraded", "actions"):
        _strings(body.get(key, []), f"body.{key}")
    for key in ("dataset_drift", "prediction_drift", "prediction_warning"):
        if not isinstance(body.get(key, False), bool):
            raise InvalidInput(f"'body.{key}' must be true or false")
    _typed(body.get("share_drifted", 0.0), (int, float), "body.share_drifted")
    _typed(body.get("rows", 0), (int,), "body.rows")
    for part in ("features", "predictions"):
        columns = body.get(part, {})
        _typed(columns, (Mapping,), f"body.{part}")
        for name, column in columns.items():
            _check_result_column(column, f"body.{part}.{name}")
    findings = body.get("findings", [])
    _typed(findings, (list,), "body.findings")
    for i, finding in enumerate(findings):
        _typed(finding, (Mapping,), f"body.findings[{i}]")
        for key in ("column", "kind", "message"):
            _typed(finding.get(key, ""), (str,), f"body.findings[{i}].{key}")
    _check_performance(body.get("performance"), "body.performance")


def _typed(value: object, types: tuple[type, ...], field: str) -> None:
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        names = ", ".join("null" if t is type(None) else "object" if t is Mapping else t.__name__ for t in types)
        raise InvalidInput(f"'{field}' must be of type {names}, got {type(value).__name__}")


def _strings(value: object, field: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"'{field}' must be a list of text")


def _check_result_column(column: object, field: str) -> None:
    _typed(column, (Mapping,), field)
    assert isinstance(column, Mapping)
    for key in ("verdict", "kind", "method"):
        _typed(column.get(key, ""), (str,), f"{field}.{key}")
    for key in ("value", "warn", "drift", "missing_share"):
        _typed(column.get(key), _NUMBER_OR_NONE, f"{field}.{key}")
    statistics = column.get("statistics", {})
    _typed(statistics, (Mapping,), f"{field}.statistics")
    for key, value in statistics.items():
        _typed(value, _NUMBER_OR_NONE, f"{field}.statistics.{key}")
    plot = column.get("plot")
    if plot is None:
        return
    _typed(plot, (Mapping,), f"{field}.plot")
    for key in ("reference", "current", "edges"):
        values = plot.get(key, [])
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise InvalidInput(f"'{field}.plot.{key}' must be a list of numbers")
    _strings(plot.get("categories", []), f"{field}.plot.categories")
    if len(plot.get("reference", [])) != len(plot.get("current", [])):
        raise InvalidInput(f"'{field}.plot' needs as many reference as current shares")


def _check_performance(part: object, field: str) -> None:
    if part is None:
        return
    _typed(part, (Mapping,), field)
    assert isinstance(part, Mapping)
    _typed(part.get("labelled", 0), (int,), f"{field}.labelled")
    _strings(part.get("notes", []), f"{field}.notes")
    metrics = part.get("metrics", {})
    _typed(metrics, (Mapping,), f"{field}.metrics")
    for name, metric in metrics.items():
        where = f"{field}.metrics.{name}"
        _typed(metric, (Mapping,), where)
        _typed(metric.get("value"), (int, float), f"{where}.value")
        for key in ("registered", "previous"):
            _typed(metric.get(key), _NUMBER_OR_NONE, f"{where}.{key}")
        _typed(metric.get("degraded", False), (bool,), f"{where}.degraded")
    preliminary = part.get("preliminary", {})
    _typed(preliminary, (Mapping,), f"{field}.preliminary")
    for name, value in preliminary.items():
        _typed(value, (int, float), f"{field}.preliminary.{name}")
