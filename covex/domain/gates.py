"""Gates and requirements: what a version must show to enter a protected stage or alias. Pure: no I/O.

A gate compares numbers: ``metrics.auc >= 0.80``, ``metrics.auc >= champion.metrics.auc - 0.005``,
``params.depth <= 8``. An evaluation gate asks for a fair comparison (``covex compare``) with the
champion: ``evaluation.auc beats champion on holdout p < 0.05`` passes when the version's latest
evaluation against the champion on data tagged ``holdout`` finds it significantly better.

A requirement names something the version must have: ``description``, ``signature``, ``lineage``,
``card``, ``card.<field>`` or ``tags.<key>``; ``monitoring`` requires that its latest monitoring
result shows neither drift nor degraded performance.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from covex.domain.cards import CARD_FIELDS
from covex.domain.errors import InvalidInput

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}
DOCUMENT_REQUIREMENTS = ("description", "signature", "lineage", "card")
MONITORING = "monitoring"
FAILING_MONITOR_STATUSES = ("DRIFT", "DEGRADED")


@dataclass(frozen=True)
class Operand:
    """One side of a gate: ``metrics.<key>``, ``champion.metrics.<key>``, ``params.<key>`` or a number."""

    source: Literal["metrics", "champion", "params", "number"]
    key: str = ""
    number: float = 0.0
    offset: float = 0.0

    def __str__(self) -> str:
        base = {
            "metrics": f"metrics.{self.key}",
            "champion": f"champion.metrics.{self.key}",
            "params": f"params.{self.key}",
            "number": f"{self.number:g}",
        }[self.source]
        if self.offset:
            return f"{base} {'+' if self.offset > 0 else '-'} {abs(self.offset):g}"
        return base


@dataclass(frozen=True)
class Gate:
    """A comparison a version must pass: ``left op right``."""

    text: str
    left: Operand
    op: str
    right: Operand

    @property
    def uses_champion(self) -> bool:
        return "champion" in (self.left.source, self.right.source)


@dataclass(frozen=True)
class EvaluationGate:
    """``evaluation.<metric> beats champion [on <data tag>] [p < <limit>]``."""

    text: str
    metric: str
    data_tag: str | None = None
    p_limit: float = 0.05
    uses_champion: bool = True


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_KEY = r"[A-Za-z0-9_.\-/]+?"
_OPERAND = rf"(?:(?:champion\.metrics|metrics|params)\.{_KEY}|{_NUMBER})(?:\s*[-+]\s*{_NUMBER})?"
_GATE = re.compile(rf"\s*(?P<left>{_OPERAND})\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<right>{_OPERAND})\s*")
_OPERAND_PARTS = re.compile(
    rf"(?:(?P<source>champion\.metrics|metrics|params)\.(?P<key>{_KEY})|(?P<number>{_NUMBER}))"
    rf"(?:\s*(?P<sign>[-+])\s*(?P<offset>{_NUMBER}))?"
)
_GRAMMAR = (
    "write '<operand> <op> <operand>' with op one of >= > <= < == != and operands metrics.<key>, "
    "champion.metrics.<key>, params.<key> or a number, each optionally followed by '+ <number>' or '- <number>'"
)


def _operand(text: str) -> Operand:
    m = _OPERAND_PARTS.fullmatch(text.strip())
    if m is None:  # pragma: no cover - the gate pattern admits only operands this matches
        raise ValueError(text)
    offset = float(m["offset"]) * (-1 if m["sign"] == "-" else 1) if m["offset"] else 0.0
    if m["number"] is not None:
        return Operand("number", number=float(m["number"]) + offset)
    source = {"champion.metrics": "champion", "metrics": "metrics", "params": "params"}[m["source"]]
    return Operand(source, key=m["key"].strip(), offset=offset)  # type: ignore[arg-type]


_EVALUATION_GATE = re.compile(
    r"\s*evaluation\.(?P<metric>[A-Za-z0-9_]+)\s+beats\s+champion"
    r"(?:\s+on\s+(?P<tag>[A-Za-z0-9][A-Za-z0-9._\-]{0,63}))?"
    rf"(?:\s+p\s*<\s*(?P<p>{_NUMBER}))?\s*"
)
METRIC_ALIASES = {"auc": "roc_auc", "logloss": "log_loss", "acc": "accuracy"}


def parse_gate(text: object) -> Gate | EvaluationGate:
    """Parse ``metrics.auc >= champion.metrics.auc - 0.005`` or ``evaluation.auc beats champion on holdout
    p < 0.05``; ``InvalidInput`` names the gate."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"gate {text!r} is not a comparison: {_GRAMMAR}")
    if text.strip().startswith("evaluation."):
        e = _EVALUATION_GATE.fullmatch(text)
        if e is None:
            raise InvalidInput(
                f"gate {text!r} is not valid: write 'evaluation.<metric> beats champion [on <data tag>] [p < <limit>]'"
            )
        p_limit = float(e["p"]) if e["p"] else 0.05
        if not 0 < p_limit <= 1:
            raise InvalidInput(f"gate {text!r}: the p-value limit must be more than 0 and at most 1")
        metric = METRIC_ALIASES.get(e["metric"].lower(), e["metric"].lower())
        from covex.domain.monitoring import CLASSIFICATION_METRICS, REGRESSION_METRICS

        known = CLASSIFICATION_METRICS + REGRESSION_METRICS
        if metric not in known:
            raise InvalidInput(
                f"gate {text!r}: {e['metric']!r} is not a metric covex compare measures ({', '.join(known)})"
            )
        return EvaluationGate(" ".join(text.split()), metric, e["tag"], p_limit)
    m = _GATE.fullmatch(text)
    if m is None:
        raise InvalidInput(f"gate {text!r} is not valid: {_GRAMMAR}")
    left, right = _operand(m["left"]), _operand(m["right"])
    if not all(math.isfinite(x) for x in (left.number, left.offset, right.number, right.offset)):
        raise InvalidInput(f"gate {text!r} has a number too large to compare with")
    if left.source == "number" and right.source == "number":
        raise InvalidInput(f"gate {text!r} compares two numbers; name a metric or param of the version")
    if "metrics" not in (left.source, right.source) and "params" not in (left.source, right.source):
        raise InvalidInput(f"gate {text!r} must name a metric or param of the version (metrics.<key>)")
    return Gate(text=" ".join(text.split()), left=left, op=m["op"], right=right)


def check_requirement(item: object) -> str:
    """``description``, ``signature``, ``lineage``, ``card``, ``card.<field>`` or ``tags.<key>``."""
    if isinstance(item, str):
        if item in DOCUMENT_REQUIREMENTS or item == MONITORING:
            return item
        kind, _, key = item.partition(".")
        if kind == "card" and key in CARD_FIELDS:
            return item
        if kind == "tags" and key:
            return item
    raise InvalidInput(
        f"requirement {item!r} is not known: use description, signature, lineage, card, "
        f"card.<field> (one of {', '.join(CARD_FIELDS)}), tags.<key> or monitoring"
    )


# -- evaluating a candidate version --------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """What gates and requirements look at: a version's numbers, texts and documents."""

    version: int
    metrics: Mapping[str, float]
    params: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    card: Mapping[str, Any] = field(default_factory=dict)
    documents: frozenset[str] = frozenset()
    monitor_status: str | None = None  # the latest monitoring result's status; None: never checked
    # The version's evaluations (newest first): each {"baseline": URI, "data_tags": [...], "against_baseline": {...}}
    evaluations: Sequence[Mapping[str, Any]] = ()
    name: str = ""


class GateResult(BaseModel):
    """One gate or requirement checked: the value, what it was compared with, and whether it passed."""

    model_config = ConfigDict(frozen=True)

    gate: str
    value: float | None = None
    threshold: float | None = None
    passed: bool
    message: str = ""


class _Missing(Exception):
    pass


def _value(operand: Operand, version: Candidate, champion: Candidate | None) -> float | None:
    """The operand's number; None when it needs a champion and there is none."""
    if operand.source == "number":
        return operand.number
    if operand.source == "champion":
        if champion is None:
            return None
        if operand.key not in champion.metrics:
            raise _Missing(f"the champion, version {champion.version}, has no metric {operand.key!r}")
        return champion.metrics[operand.key] + operand.offset
    if operand.source == "metrics":
        if operand.key not in version.metrics:
            raise _Missing(f"version {version.version} has no metric {operand.key!r}")
        return version.metrics[operand.key] + operand.offset
    raw = version.params.get(operand.key)
    if raw is None:
        raise _Missing(f"version {version.version} has no param {operand.key!r}")
    try:
        number = float(raw)
    except ValueError:
        raise _Missing(f"param {operand.key!r} of version {version.version} is {raw!r}, not a number") from None
    if math.isnan(number):
        raise _Missing(f"param {operand.key!r} of version {version.version} is NaN")
    return number + operand.offset


def evaluate_gate(gate: Gate, version: Candidate, champion: Candidate | None) -> GateResult:
    try:
        value = _value(gate.left, version, champion)
        threshold = _value(gate.right, version, champion)
    except _Missing as exc:
        return GateResult(gate=gate.text, passed=False, message=str(exc))
    if value is None or threshold is None:
        return GateResult(gate=gate.text, value=value, threshold=threshold, passed=True, message="no champion")
    passed = OPS[gate.op](value, threshold)
    message = f"{value:g} {gate.op} {threshold:g}" + (" holds" if passed else " does not hold")
    return GateResult(gate=gate.text, value=value, threshold=threshold, passed=passed, message=message)


HIGHER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"})


def evaluate_evaluation_gate(gate: EvaluationGate, version: Candidate, champion: Candidate | None) -> GateResult:
    """Pass when the newest evaluation of ``version`` against the champion (on data with the gate's tag)
    finds it better on the metric, with a p-value under the limit."""
    if champion is None:
        return GateResult(gate=gate.text, passed=True, message="no champion")
    baseline = f"models:/{champion.name or version.name}/{champion.version}"
    on = f" on data tagged {gate.data_tag!r}" if gate.data_tag else ""
    for e in version.evaluations:
        if e.get("baseline") != baseline or (gate.data_tag and gate.data_tag not in e.get("data_tags", [])):
            continue
        test = (e.get("against_baseline") or {}).get(gate.metric)
        if not isinstance(test, dict):
            continue
        d, p = test.get("difference"), test.get("p_value")
        if not isinstance(d, int | float) or not isinstance(p, int | float):
            continue
        better = d > 0 if gate.metric in HIGHER_IS_BETTER else d < 0
        passed = better and p < gate.p_limit
        shown = (
            f"{gate.metric} {d:+.4g} vs version {champion.version}{on} ({test.get('test', 'test')}, p={p:.3g}"
            f"{' <' if p < gate.p_limit else ' >='} {gate.p_limit:g}, evaluation {e.get('id')} "
            f"recorded by {e.get('created_by', '?')})"
        )
        verdict = "better" if passed else ("not significant" if better else "not better")
        return GateResult(gate=gate.text, value=float(d), passed=passed, message=f"{shown}: {verdict}")
    hint = f" --data-tag {gate.data_tag}" if gate.data_tag else ""
    return GateResult(
        gate=gate.text,
        passed=False,
        message=(
            f"no evaluation of version {version.version} against the champion, version {champion.version}, "
            f"measures {gate.metric}{on}: run 'covex compare {baseline} models:/{champion.name or version.name}/"
            f"{version.version} --data FILE --target COLUMN{hint}'"
        ),
    )


def needs_evaluations(gates: Sequence[str]) -> bool:
    return any(g.strip().startswith("evaluation.") for g in gates)


def evaluate_requirement(item: str, version: Candidate) -> GateResult:
    kind, _, key = item.partition(".")
    if item == MONITORING:
        status = version.monitor_status
        if status in FAILING_MONITOR_STATUSES:
            return GateResult(gate="require monitoring", passed=False, message=f"version {version.version} is {status}")
        shown = "not monitored yet" if status is None else f"monitoring says {status}"
        return GateResult(gate="require monitoring", passed=True, message=shown)
    if item == "description":
        present = bool(version.description.strip())
    elif kind == "card" and key:
        present = bool(version.card.get(key))
    elif kind == "tags":
        present = bool(version.tags.get(key))
    else:
        present = kind in version.documents
    what = f"{item} is present" if present else f"version {version.version} has no {item.replace('.', ' ')}"
    return GateResult(gate=f"require {item}", passed=present, message=what)


ROLLBACK_SKIP = "skipped: a rollback returns to a version that held this place before"


def evaluate(
    gates: Sequence[str],
    require: Sequence[str],
    version: Candidate,
    champion: Candidate | None,
    *,
    rollback: bool = False,
) -> list[GateResult]:
    """Every gate and requirement checked against ``version`` (and the champion).

    A rollback skips the gates that compare with the champion: the champion is the version
    being rolled back, usually because it misbehaves in ways offline metrics did not show.
    """
    results = [
        GateResult(gate=g.text, passed=True, message=ROLLBACK_SKIP)
        if rollback and g.uses_champion
        else (
            evaluate_evaluation_gate(g, version, champion)
            if isinstance(g, EvaluationGate)
            else evaluate_gate(g, version, champion)
        )
        for g in map(parse_gate, gates)
    ]
    return results + [evaluate_requirement(r, version) for r in require]


def failures(results: Sequence[GateResult]) -> str:
    """The failed checks in one line: ``metrics.auc >= 0.8 (value 0.71, threshold 0.8)``."""
    parts = []
    for r in results:
        if r.passed:
            continue
        if r.value is not None and r.threshold is not None:
            parts.append(f"{r.gate} (value {r.value:g}, threshold {r.threshold:g})")
        else:
            parts.append(f"{r.gate} ({r.message})")
    return "; ".join(parts)
