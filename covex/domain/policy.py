"""Policies that protect stages and aliases, their gates, and the requests they govern. Pure: no I/O.

A policy file is YAML::

    policies:
      - stage: Production
        approvals: 2
        approvers: [group:ml-leads]
        gates: ["metrics.auc >= 0.80", "metrics.auc >= champion.metrics.auc - 0.005"]
        require: [description, card.intended_use, signature]
        archive_existing: true
        approval_ttl_days: 14

Every problem names its line; a file with any problem is rejected whole.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from covex.domain.access import parse_subject
from covex.domain.cards import CARD_FIELDS
from covex.domain.documents import check_json
from covex.domain.errors import InvalidInput
from covex.domain.yaml_reader import Limits, Loc, YamlProblem, read_yaml

TargetKind = Literal["stage", "alias"]
RequestStatus = Literal["OPEN", "APPLIED", "REJECTED", "CANCELLED", "STALE"]
OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}
DOCUMENT_REQUIREMENTS = ("description", "signature", "lineage", "card")
MAX_APPROVALS = 100
MAX_TTL_DAYS = 3650
# A policy file is small: these bounds keep hostile YAML from costing memory, CPU or the stack.
MAX_POLICY_FILE = 1024 * 1024
MAX_NODES = 10_000
MAX_DEPTH = 32
INT64_MAX = 2**63 - 1


# -- gates ------------------------------------------------------------------------------


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


def parse_gate(text: object) -> Gate:
    """Parse ``metrics.auc >= champion.metrics.auc - 0.005``; ``InvalidInput`` names the gate."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"gate {text!r} is not a comparison: {_GRAMMAR}")
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
        if item in DOCUMENT_REQUIREMENTS:
            return item
        kind, _, key = item.partition(".")
        if kind == "card" and key in CARD_FIELDS:
            return item
        if kind == "tags" and key:
            return item
    raise InvalidInput(
        f"requirement {item!r} is not known: use description, signature, lineage, card, "
        f"card.<field> (one of {', '.join(CARD_FIELDS)}) or tags.<key>"
    )


# -- the policy -------------------------------------------------------------------------


def _subject(value: str) -> str:
    return parse_subject(value, "approvers")


def _gate_text(value: str) -> str:
    return parse_gate(value).text


class PolicyRules(BaseModel):
    """What a policy asks of a move into its stage or alias."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    approvals: StrictInt = Field(default=1, ge=0, le=MAX_APPROVALS)
    approvers: list[Annotated[StrictStr, AfterValidator(_subject)]] = []
    forbid_self_approval: StrictBool = True
    gates: list[Annotated[StrictStr, AfterValidator(_gate_text)]] = []
    require: list[Annotated[StrictStr, AfterValidator(check_requirement)]] = []
    archive_existing: StrictBool = False
    approval_ttl_days: StrictInt | None = Field(default=None, ge=1, le=MAX_TTL_DAYS)

    @property
    def parsed_gates(self) -> list[Gate]:
        return [parse_gate(g) for g in self.gates]


class Policy(PolicyRules):
    """A policy as stored: the rules plus the stage or alias they protect."""

    target_kind: TargetKind
    target: str
    updated_by: str = ""
    last_updated_timestamp: int = 0

    @property
    def label(self) -> str:
        return f"{self.target_kind} {self.target!r}"

    def rules(self) -> dict[str, Any]:
        """The body stored in ``policies.body``."""
        return self.model_dump(include=set(PolicyRules.model_fields))


_HINTS = {
    "approvals": f"must be an integer from 0 to {MAX_APPROVALS}",
    "approval_ttl_days": f"must be an integer from 1 to {MAX_TTL_DAYS} (days)",
    "forbid_self_approval": "must be true or false",
    "archive_existing": "must be true or false",
    "approvers": "must be a list such as [group:ml-leads, user:bob]",
    "gates": "must be a list of comparisons",
    "require": "must be a list such as [description, card.intended_use, signature]",
}


def _where(loc: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))


def _problem(error: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    """A pydantic error as (where, a message naming the key)."""
    loc = tuple(error["loc"])
    key = _where(loc)
    if error["type"] == "extra_forbidden":
        known = ", ".join(["stage", "alias", *PolicyRules.model_fields])
        return loc, f"unknown key {key!r}; known keys: {known}"
    if error["type"] == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
        return loc, message if message.startswith("'") else f"{key!r}: {message}"
    if len(loc) == 1 and str(loc[0]) in _HINTS:
        return loc, f"{key!r} {_HINTS[str(loc[0])]}"
    if len(loc) > 1:
        return loc, f"{key!r} must be a string"
    return loc, f"{key!r}: {error['msg']}"


def validate_rules(body: Mapping[str, Any], *, kind: TargetKind) -> PolicyRules:
    """Check a policy's rules (API callers); ``InvalidInput`` names the first bad key."""
    if not isinstance(body, Mapping):
        raise InvalidInput("a policy must be a mapping of rules (approvals, approvers, gates ...)")
    check_json(body, "policy")
    try:
        rules = PolicyRules.model_validate(dict(body))
    except ValidationError as exc:
        raise InvalidInput(_problem(exc.errors()[0])[1]) from None
    if kind == "alias" and rules.archive_existing:
        raise InvalidInput("'archive_existing' applies to stages only")
    return rules


# -- reading a policy file, keeping lines ------------------------------------------------

# A policy file never needs anchors and aliases: refused, a few bytes cannot expand into millions of values.
POLICY_YAML = Limits(max_nodes=MAX_NODES, max_depth=MAX_DEPTH, aliases=False, name="policy files")


@dataclass
class _Problems:
    found: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.found.append((line, message))

    def raise_any(self) -> None:
        if self.found:
            self.found.sort()
            shown = "; ".join(f"line {line}: {message}" for line, message in self.found[:10])
            more = f" (and {len(self.found) - 10} more)" if len(self.found) > 10 else ""
            raise InvalidInput(f"policy file rejected, nothing applied: {shown}{more}")


def parse_policy_file(
    text: str,
    *,
    stage: Callable[[str], str],
    alias: Callable[[str], str],
) -> list[Policy]:
    """Read a policy file; ``stage``/``alias`` normalise and check target names (raising ``InvalidInput``).

    Every problem in the file is reported at once, each with its line; any problem rejects the whole file.
    """
    if not isinstance(text, str):
        raise InvalidInput("a policy file must be YAML text")
    if len(text) > MAX_POLICY_FILE or len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_FILE:
        raise InvalidInput(f"policy file rejected: it is larger than {MAX_POLICY_FILE} bytes")
    try:
        document = read_yaml(text, limits=POLICY_YAML)
    except YamlProblem as exc:
        raise InvalidInput(f"policy file rejected, nothing applied: {exc.message}") from None
    if document.value is None:
        raise InvalidInput("policy file rejected: it is empty; it needs a 'policies:' list")
    data = document.value
    if not isinstance(data, dict) or set(data) != {"policies"} or not isinstance(data["policies"], list):
        raise InvalidInput(
            "policy file rejected, nothing applied: line 1: the file must hold one key, 'policies:', a list"
        )
    problems = _Problems()
    out: list[Policy] = []
    seen: dict[tuple[str, str], int] = {}
    for i, item in enumerate(data["policies"]):
        loc: Loc = ("policies", i)
        line = document.line(loc)
        if not isinstance(item, dict):
            problems.add(line, "each policy must be a mapping with 'stage:' or 'alias:'")
            continue
        kinds = [k for k in ("stage", "alias") if k in item]
        if len(kinds) != 1:
            problems.add(line, "give exactly one of 'stage:' or 'alias:'")
            continue
        kind: TargetKind = kinds[0]  # type: ignore[assignment]
        raw_target = item.pop(kind)
        try:
            target = (stage if kind == "stage" else alias)(raw_target if isinstance(raw_target, str) else "")
        except InvalidInput as exc:
            problems.add(document.line((*loc, kind)), exc.message)
            continue
        if (kind, target) in seen:
            problems.add(
                document.line((*loc, kind)), f"{kind} {target!r} has a policy already, at line {seen[(kind, target)]}"
            )
            continue
        seen[(kind, target)] = document.line((*loc, kind))
        try:
            rules = PolicyRules.model_validate(item)
        except ValidationError as exc:
            for error in exc.errors():
                sub, message = _problem(error)
                problems.add(document.line((*loc, *sub)), message)
            continue
        if kind == "alias" and rules.archive_existing:
            problems.add(document.line((*loc, "archive_existing")), "'archive_existing' applies to stages only")
            continue
        out.append(Policy(target_kind=kind, target=target, **rules.model_dump()))
    problems.raise_any()
    return out


def dump_policies(policies: Sequence[Policy]) -> str:
    """The policies as a file ``parse_policy_file`` reads back."""
    items = [{p.target_kind: p.target, **p.rules()} for p in policies]
    return yaml.safe_dump({"policies": items}, sort_keys=False)


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


def evaluate_requirement(item: str, version: Candidate) -> GateResult:
    kind, _, key = item.partition(".")
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
    rules: PolicyRules, version: Candidate, champion: Candidate | None, *, rollback: bool = False
) -> list[GateResult]:
    """Every gate and requirement of ``rules`` checked against ``version`` (and the champion).

    A rollback skips the gates that compare with the champion: the champion is the version
    being rolled back, usually because it misbehaves in ways offline metrics did not show.
    """
    results = [
        GateResult(gate=g.text, passed=True, message=ROLLBACK_SKIP)
        if rollback and g.uses_champion
        else evaluate_gate(g, version, champion)
        for g in rules.parsed_gates
    ]
    return results + [evaluate_requirement(r, version) for r in rules.require]


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


# -- requests, comments, placements -------------------------------------------------------


class _Entity(BaseModel):
    model_config = ConfigDict(frozen=True)


class Review(_Entity):
    reviewer: str
    decision: Literal["approve", "reject"]
    comment: str = ""
    timestamp: int


class TransitionRequest(_Entity):
    """A request to move a version into a protected stage or alias."""

    id: int
    model: str
    version: int
    target_kind: TargetKind
    target: str
    status: RequestStatus
    status_message: str = ""
    kind: Literal["promotion", "rollback"] = "promotion"
    requester: str
    comment: str = ""
    champion: int | None = None
    gates: list[GateResult] = []
    reviews: list[Review] = []
    approvals_needed: int = 0
    creation_timestamp: int
    last_updated_timestamp: int

    @property
    def approvals(self) -> int:
        return sum(1 for r in self.reviews if r.decision == "approve")


class Comment(_Entity):
    id: int
    model: str
    version: int
    author: str
    body: str
    request_id: int | None = None
    timestamp: int


class Placement(_Entity):
    """Which versions held a stage or alias at a moment, since when, and who put them there and why."""

    model: str
    target_kind: TargetKind
    target: str
    at: int
    versions: list[int] = []
    since: int | None = None
    actor: str = ""
    comment: str = ""
    request_id: int | None = None


class Rollback(_Entity):
    """A rollback: the version put back, and the request it opened (None: moved directly, no policy)."""

    model: str
    target_kind: TargetKind
    target: str
    from_version: int | None
    to_version: int
    applied: bool
    request: TransitionRequest | None = None


def to_ms(at: int | float | str | datetime | None, now: int) -> int:
    """A moment as milliseconds since the epoch: ms, an ISO date-time (naive: local time) or a datetime."""
    if at is None:
        return now
    shown = repr(at) if len(repr(at)) <= 60 else repr(at)[:57] + "..."
    bad = InvalidInput(
        f"'at' must be milliseconds since the epoch or an ISO date-time such as 2026-11-20T10:00, got {shown}"
    )
    if isinstance(at, bool) or not isinstance(at, int | float | str | datetime):
        raise bad
    try:
        if isinstance(at, str):
            text = at.strip()
            at = int(text) if re.fullmatch(r"[0-9]{1,19}", text) else datetime.fromisoformat(text)
        ms = int(at) if isinstance(at, int | float) else int(at.timestamp() * 1000)
    except (ValueError, OverflowError, OSError):
        # Years the platform cannot convert, NaN and infinite numbers.
        raise bad from None
    if not -INT64_MAX <= ms <= INT64_MAX:
        raise InvalidInput(f"'at' is out of range (it must fit in 64 bits), got {shown}")
    return ms
