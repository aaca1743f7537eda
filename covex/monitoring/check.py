"""One check: current data against a version's stored reference, judged by the model's monitor config.

Counts are added up chunk by chunk (``Tally``), so memory holds one chunk whatever the window's
size; only then are the statistics computed, from the two count vectors of each column. Whatever
the data looks like (a missing or new column, new categories, a window of nulls, text where the
reference had numbers) it becomes a finding in the result, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from covex.domain.monitoring import CATEGORICAL_METHODS, NUMERIC_METHODS, MonitorConfig, Rule
from covex.monitoring import drift
from covex.monitoring.sources import Chunk

OTHER = "(other)"
SHOWN_CATEGORIES = 30
SHOWN_FINDINGS = 200


@dataclass
class ColumnTally:
    """What one column of current data adds up to, on its reference's bins."""

    reference: Mapping[str, Any]
    missing: int = 0
    wrong_type: int = 0
    counts: list[int] = field(default_factory=list)
    categories: dict[str, int] = field(default_factory=dict)
    low: float = float("inf")
    high: float = float("-inf")
    dtypes: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.numeric:
            self.counts = [0] * (len(self.reference["edges"]) + 1)

    @property
    def numeric(self) -> bool:
        return bool(self.reference["kind"] == "numeric")

    @property
    def seen(self) -> int:
        return sum(self.counts) if self.numeric else sum(self.categories.values())

    def state(self) -> dict[str, Any]:
        """What this tally adds up to, as JSON (a Spark partition sends it to the driver)."""
        return {
            "missing": self.missing,
            "wrong_type": self.wrong_type,
            "counts": self.counts,
            "categories": self.categories,
            "low": self.low,
            "high": self.high,
            "dtypes": sorted(self.dtypes),
        }

    def absorb(self, state: Mapping[str, Any]) -> None:
        """Add another tally of the same column (its ``state``)."""
        self.missing += state["missing"]
        self.wrong_type += state["wrong_type"]
        if self.numeric:
            self.counts = drift.merge(self.counts, state["counts"])
        for key, n in state["categories"].items():
            self.categories[key] = self.categories.get(key, 0) + n
        self.low, self.high = min(self.low, state["low"]), max(self.high, state["high"])
        self.dtypes.update(state["dtypes"])

    def add(self, series: Any) -> None:
        import numpy as np
        import pandas as pd

        self.dtypes.add(str(series.dtype))
        absent = series.isna()
        self.missing += int(absent.sum())
        if self.numeric:
            if pd.api.types.is_bool_dtype(series):
                values = pd.Series(np.full(len(series), np.nan))
            else:
                values = pd.to_numeric(series, errors="coerce")
            self.wrong_type += int((values.isna() & ~absent).sum())
            finite = values.to_numpy(dtype=float, na_value=np.nan)
            finite = finite[np.isfinite(finite)]
            if finite.size:
                self.counts = drift.merge(self.counts, drift.bucketise(finite, self.reference["edges"]))
                self.low, self.high = min(self.low, float(finite.min())), max(self.high, float(finite.max()))
        else:
            for key, n in drift.category_counts(series).items():
                self.categories[key] = self.categories.get(key, 0) + n


class Tally:
    """Counts of every reference column, and of the predictions, over the chunks of a window."""

    def __init__(
        self, reference: Mapping[str, Any], features: Iterable[str] | None = None, ignore: Iterable[str] = ()
    ) -> None:
        self.reference = reference
        # id and key columns, and the reference's time columns: neither features nor new columns
        self.ignore = set(ignore) | set(reference.get("ignored") or ())
        columns = reference.get("columns") or {}
        wanted = list(columns) if features is None else [f for f in features if f in columns]
        self.unknown_features = [] if features is None else [f for f in features if f not in columns]
        self.columns = {name: ColumnTally(columns[name]) for name in wanted}
        self.predictions = {name: ColumnTally(ref) for name, ref in (reference.get("predictions") or {}).items()}
        self.rows = 0
        self.absent: dict[str, int] = {}  # reference columns missing from chunks, with the rows they missed
        self.extra: set[str] = set()
        self.predictions_absent = 0
        self.skipped = 0  # logged requests that could not be read

    def state(self) -> dict[str, Any]:
        """Everything counted so far, as JSON: tallies of partitions add up on the driver (``absorb``)."""
        return {
            "rows": self.rows,
            "absent": self.absent,
            "extra": sorted(self.extra),
            "predictions_absent": self.predictions_absent,
            "skipped": self.skipped,
            "columns": {n: t.state() for n, t in self.columns.items()},
            "predictions": {n: t.state() for n, t in self.predictions.items()},
        }

    def absorb(self, state: Mapping[str, Any]) -> None:
        self.rows += state["rows"]
        for name, rows in state["absent"].items():
            self.absent[name] = self.absent.get(name, 0) + rows
        self.extra.update(state["extra"])
        self.predictions_absent += state["predictions_absent"]
        self.skipped += state.get("skipped", 0)
        for part, tallies in (("columns", self.columns), ("predictions", self.predictions)):
            for name, column in state[part].items():
                tallies[name].absorb(column)

    def add(self, chunk: Chunk) -> None:
        frame = _named(chunk.features)
        rows = len(frame)
        self.rows += rows
        self.skipped += chunk.skipped
        present = set(frame.columns)
        for name, tally in self.columns.items():
            if name in present:
                tally.add(frame[name])
            else:
                self.absent[name] = self.absent.get(name, 0) + rows
        self.extra.update(present - set(self.reference.get("columns") or {}) - self.ignore)
        if not self.predictions:
            return
        given = chunk.predictions
        if given is None or len(given.columns) == 0:
            self.predictions_absent += rows
            return
        given = _named(given)
        names = set(given.columns)
        for name, tally in self.predictions.items():
            if name in names:
                tally.add(given[name])
            elif len(self.predictions) == 1 and len(names) == 1:  # one output column, named otherwise
                tally.add(given.iloc[:, 0])
            else:
                self.predictions_absent += rows


def _named(frame: Any) -> Any:
    """``frame`` with its columns named as stored text, the first of two same-named columns kept."""
    names = [drift.storable(str(c)) for c in frame.columns]
    if names != list(frame.columns):
        frame = frame.set_axis(names, axis=1)
    if frame.columns.duplicated().any():
        frame = frame.loc[:, ~frame.columns.duplicated()]
    return frame


NOT_JUDGED = "not_judged"


def judge(tally: Tally, config: MonitorConfig) -> dict[str, Any]:
    """The drift part of a result: every column's statistics and verdict, findings, the verdict overall.

    Below ``min_rows`` the statistics are kept (they say what little was seen) but no column is judged:
    a handful of rows drifts from anything.
    """
    findings: list[dict[str, Any]] = []
    for name in tally.unknown_features:
        findings.append({"column": name, "kind": "not_in_reference", "message": f"{name!r} is not in the reference"})
    features: dict[str, Any] = {}
    for name, column in tally.columns.items():
        if name in tally.absent and column.seen == 0 and column.missing == 0:
            findings.append({"column": name, "kind": "missing_column", "message": f"{name!r} is not in the data"})
            features[name] = {"verdict": "missing"}
            continue
        rule = config.rule(name, column.reference["kind"])
        features[name] = _judge_column(name, column, rule, findings)
    for name in sorted(tally.extra):
        findings.append({"column": name, "kind": "new_column", "message": f"{name!r} is not in the reference"})
    predictions: dict[str, Any] = {}
    for name, column in tally.predictions.items():
        rule = config.prediction_rule(column.reference["kind"])
        predictions[name] = _judge_column(f"prediction {name}", column, rule, findings)
    if tally.skipped:
        findings.append(
            {"column": "", "kind": "unreadable_requests",
             "message": f"{tally.skipped} logged request(s) could not be read and were left out"}
        )  # fmt: skip
    if tally.predictions and tally.predictions_absent:
        findings.append(
            {
                "column": "predictions",
                "kind": "missing_predictions",
                "message": f"{tally.predictions_absent} row(s) came without predictions",
            }
        )
    if tally.rows < config.min_rows:
        for column in (*features.values(), *predictions.values()):
            if column.get("verdict") in ("ok", "warn", "drift"):
                column["verdict"] = NOT_JUDGED
    judged = {n: f for n, f in features.items() if f["verdict"] in ("ok", "warn", "drift")}
    drifted = sorted(n for n, f in judged.items() if f["verdict"] == "drift")
    warned = sorted(n for n, f in judged.items() if f["verdict"] == "warn")
    share = len(drifted) / len(judged) if judged else 0.0
    return {
        "features": features,
        "predictions": predictions,
        "drifted": drifted,
        "warned": warned,
        "share_drifted": share,
        "dataset_drift": bool(judged) and share >= config.drift_share,
        "prediction_drift": any(p["verdict"] == "drift" for p in predictions.values()),
        "prediction_warning": any(p["verdict"] == "warn" for p in predictions.values()),
        "findings": findings[:SHOWN_FINDINGS],
    }


def _judge_column(label: str, column: ColumnTally, rule: Rule, findings: list[dict[str, Any]]) -> dict[str, Any]:
    ref = column.reference
    current_rows = column.seen + column.missing + column.wrong_type
    out: dict[str, Any] = {
        "kind": ref["kind"],
        "rows": current_rows,
        "missing": column.missing,
        "missing_share": column.missing / current_rows if current_rows else 0.0,
        "method": rule.method,
        "warn": rule.warn,
        "drift": rule.drift,
    }
    if column.wrong_type:
        findings.append(
            {
                "column": label,
                "kind": "type_changed",
                "message": f"{column.wrong_type} value(s) of {label!r} are not numbers, as the reference's were "
                f"(now {', '.join(sorted(column.dtypes))})",
            }
        )
    if column.seen == 0:
        findings.append({"column": label, "kind": "no_values", "message": f"{label!r} has no values in the window"})
        out["verdict"] = "no_data"
        return out
    referenced = sum(ref["counts"]) if column.numeric else sum(ref["counts"].values()) + ref.get("other", 0)
    if referenced == 0:
        findings.append(
            {"column": label, "kind": "no_reference", "message": f"{label!r} had no values in the reference"}
        )
        out["verdict"] = "no_data"
        return out
    if column.numeric:
        ref_counts, cur_counts = list(ref["counts"]), column.counts
        numeric_ref = drift.NumericReference(tuple(ref["edges"]), tuple(ref_counts), ref["low"], ref["high"])
        ks = drift.ks_binned(ref_counts, cur_counts)
        distance = drift.wasserstein_binned(numeric_ref, cur_counts, column.low, column.high)
        scale = ref["std"] if ref["std"] > 0 else 1.0
        stats = {
            "psi": drift.psi(ref_counts, cur_counts),
            "js": drift.js_distance(ref_counts, cur_counts),
            "ks": ks.statistic,
            "ks_p_value": ks.p_value,
            "wasserstein": distance / scale,
        }
        allowed: tuple[str, ...] = NUMERIC_METHODS
        out["plot"] = {
            "edges": list(ref["edges"]),
            "low": min(ref["low"], column.low),
            "high": max(ref["high"], column.high),
            "reference": _shares(ref_counts),
            "current": _shares(cur_counts),
        }
    else:
        ref_cats = dict(ref["counts"])
        other = ref.get("other", 0)
        current = dict(column.categories)
        new = {k: v for k, v in current.items() if k not in ref_cats}
        if new:
            share = sum(new.values()) / column.seen
            shown = ", ".join(repr(k) for k in sorted(new, key=lambda k: -new[k])[:10])
            where = "the reference" if not other else "the reference's most frequent categories"
            findings.append(
                {
                    "column": label,
                    "kind": "new_categories",
                    "message": f"{len(new)} categor{'y' if len(new) == 1 else 'ies'} of {label!r} not in {where} "
                    f"({share:.1%} of values): {shown}",
                }
            )
        if other:  # the reference's rare categories were counted together: so are current ones not kept
            ref_cats[OTHER] = other
            for key in new:
                current[OTHER] = current.get(OTHER, 0) + current.pop(key)
        names, ref_counts, cur_counts = drift.aligned(ref_cats, current)
        chi = drift.chi_squared(ref_cats, current)
        stats = {
            "psi": drift.psi(ref_counts, cur_counts),
            "js": drift.js_distance(ref_counts, cur_counts),
            "chi2": chi.p_value,
            "chi2_statistic": chi.statistic,
        }
        allowed = CATEGORICAL_METHODS
        ref_shares, cur_shares = _shares(ref_counts), _shares(cur_counts)
        order = sorted(range(len(names)), key=lambda i: -(ref_shares[i] + cur_shares[i]))[:SHOWN_CATEGORIES]
        out["plot"] = {
            "categories": [names[i] for i in order],
            "reference": [ref_shares[i] for i in order],
            "current": [cur_shares[i] for i in order],
        }
        out["new_categories"] = len(new)
    if rule.method not in allowed:
        findings.append(
            {
                "column": label,
                "kind": "method_not_applicable",
                "message": f"{rule.method} does not apply to {ref['kind']} {label!r}; judged by psi",
            }
        )
        rule = Rule(method="psi", warn=0.1, drift=0.25)
        out.update(method="psi", warn=rule.warn, drift=rule.drift)
    out["statistics"] = stats
    out["value"] = stats[rule.method]
    out["verdict"] = rule.verdict(stats[rule.method])
    return out


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def overall_status(rows: int, config: MonitorConfig, drift_part: Mapping[str, Any], degraded: bool) -> str:
    """One word for the version (see ``covex.domain.monitoring``)."""
    if rows < config.min_rows:
        return "NOT_ENOUGH_DATA"
    if degraded:
        return "DEGRADED"
    if drift_part["dataset_drift"] or drift_part["prediction_drift"]:
        return "DRIFT"
    if drift_part["drifted"] or drift_part["warned"] or drift_part["prediction_warning"]:
        return "WARNING"
    return "OK"
