"""Policies that protect stages and aliases, and the requests they govern. Pure: no I/O.

A policy file is YAML::

    policies:
      - stage: Production                 # the global policy of Production: the default
        approvals: 2
        approvers: [group:ml-leads]
        gates: ["metrics.auc >= 0.80", "metrics.auc >= champion.metrics.auc - 0.005"]
        require: [description, card.intended_use, signature]
        from: [Test]                      # Production is entered only from Test
        archive_existing: true
        approval_ttl_days: 14
      - stage: Archived
        not_while_serving: true           # a version a `covex serve` process serves is not archived
      - stage: Production
        model: store-sales                # this model only; also a pattern (network/*) or tag: team=retail
        gates: ["metrics.rmse <= 12"]

Every problem names its line; a file with any problem is rejected whole. Which of several
policies applies to a model is decided in ``covex.domain.scopes``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from covex.domain.access import parse_subject
from covex.domain.documents import check_json
from covex.domain.errors import InvalidInput
from covex.domain.gates import GateResult, check_requirement, parse_gate
from covex.domain.names import MAX_KEY_LENGTH, MAX_NAME_LENGTH, validate_key, validate_model_name
from covex.domain.scans import check_scan_rule
from covex.domain.yaml_reader import Limits, Loc, YamlProblem, read_yaml

TargetKind = Literal["stage", "alias"]
ScopeKind = Literal["model", "pattern", "tag", "global"]
RequestStatus = Literal["OPEN", "APPLIED", "REJECTED", "CANCELLED", "STALE"]
MAX_APPROVALS = 100
MAX_TTL_DAYS = 3650
# A policy file is small: these bounds keep hostile YAML from costing memory, CPU or the stack.
MAX_POLICY_FILE = 1024 * 1024
MAX_NODES = 10_000
MAX_DEPTH = 32
INT64_MAX = 2**63 - 1
GLOB = re.compile(r"[*?\[]")
_PATTERN = re.compile(r"[A-Za-z0-9_.\-/*?\[\]!]+")
# Keys that make a policy more than an order: without them a policy with ``from:`` needs no approvals.
_REVIEW_KEYS = ("approvals", "approvers", "gates", "require")


# -- scopes -----------------------------------------------------------------------------


def check_model_scope(value: object) -> str:
    """A model name (``store-sales``) or a glob pattern of names (``network/*``); ``InvalidInput`` says why."""
    if isinstance(value, str) and GLOB.search(value):
        if len(value) > MAX_NAME_LENGTH:
            raise InvalidInput(f"'model' pattern is longer than {MAX_NAME_LENGTH} characters")
        if not _PATTERN.fullmatch(value):
            raise InvalidInput(f"'model' pattern {value!r} may hold only the characters of model names and * ? [ ] !")
        return value
    return validate_model_name(value, "model")


def check_tag_scope(value: object) -> str:
    """A model tag as ``key=value`` (``team=retail``); ``InvalidInput`` says why."""
    if not isinstance(value, str) or "=" not in value:
        raise InvalidInput(f"'tag' must be written key=value (e.g. team=retail), got {value!r}")
    key, _, tag_value = value.partition("=")
    validate_key(key, "tag")
    if not tag_value or len(tag_value) > MAX_KEY_LENGTH or re.search(r"[\x00-\x1f\x7f]", tag_value):
        raise InvalidInput(
            f"'tag' {value!r} needs a value after '=' of at most {MAX_KEY_LENGTH} characters, no control characters"
        )
    return value


def scope_of(model: str | None, tag: str | None) -> tuple[ScopeKind, str]:
    """The scope ``model``/``tag`` name: (``model``|``pattern``|``tag``|``global``, its text)."""
    if model is not None and tag is not None:
        raise InvalidInput("give at most one of 'model' or 'tag': a policy has one scope")
    if model is not None:
        checked = check_model_scope(model)
        return ("pattern" if GLOB.search(checked) else "model"), checked
    if tag is not None:
        return "tag", check_tag_scope(tag)
    return "global", ""


def scope_label(kind: str, scope: str) -> str:
    """How messages name a scope: ``model 'churn'``, ``pattern 'network/*'``, ``tag team=retail``, ``global``."""
    return {"model": f"model {scope!r}", "pattern": f"pattern {scope!r}", "tag": f"tag {scope}"}.get(kind, "global")


# -- the policy -------------------------------------------------------------------------


def _subject(value: str) -> str:
    return parse_subject(value, "approvers")


def _gate_text(value: str) -> str:
    return parse_gate(value).text


class PolicyRules(BaseModel):
    """What a policy asks of a move into its stage or alias."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    approvals: StrictInt = Field(default=1, ge=0, le=MAX_APPROVALS)
    approvers: list[Annotated[StrictStr, AfterValidator(_subject)]] = []
    forbid_self_approval: StrictBool = True
    gates: list[Annotated[StrictStr, AfterValidator(_gate_text)]] = []
    require: list[Annotated[StrictStr, AfterValidator(check_requirement)]] = []
    from_: list[StrictStr] = Field(default=[], alias="from")
    archive_existing: StrictBool = False
    not_while_serving: StrictBool = False
    approval_ttl_days: StrictInt | None = Field(default=None, ge=1, le=MAX_TTL_DAYS)
    # ``clean`` or ``max_severity: <low|medium|high>``: what the version's latest file scan may have found.
    scan: Annotated[str, BeforeValidator(check_scan_rule)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _order_only(cls, data: Any) -> Any:
        """A policy with only ``from:`` and ``not_while_serving`` needs no approvals unless it says so."""
        ordering = ("from", "from_", "scan")
        if isinstance(data, dict) and (any(k in data for k in ordering) or data.get("not_while_serving") is True):
            if not any(key in data for key in _REVIEW_KEYS):
                return {**data, "approvals": 0}
        return data

    @property
    def direct(self) -> bool:
        """Whether editors move versions in directly: the policy asks nothing but the order (``from:``), that
        the version is not serving (``not_while_serving``) or that its files scanned well (``scan:``)."""
        only = bool(self.from_) or self.not_while_serving or self.scan is not None
        return only and self.approvals == 0 and not self.gates and not self.require


class Policy(PolicyRules):
    """A policy as stored: the rules, the stage or alias they protect, and the models they cover."""

    id: int = 0
    target_kind: TargetKind
    target: str
    model: str | None = None
    tag: str | None = None
    scope: ScopeKind = "global"
    updated_by: str = ""
    last_updated_timestamp: int = 0

    @model_validator(mode="before")
    @classmethod
    def _scope(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {**data, "scope": scope_of(data.get("model"), data.get("tag"))[0]}
        return data

    @property
    def scope_text(self) -> str:
        """The scope's text: the model name, pattern or ``key=value`` (empty for the global policy)."""
        return self.model or self.tag or ""

    @property
    def scope_label(self) -> str:
        return scope_label(self.scope, self.scope_text)

    @property
    def scope_ref(self) -> str:
        """The scope in one word: ``global``, ``model:churn``, ``pattern:network/*``, ``tag:team=retail``."""
        return self.scope if self.scope == "global" else f"{self.scope}:{self.scope_text}"

    @property
    def label(self) -> str:
        where = "" if self.scope == "global" else f" for {self.scope_label}"
        return f"{self.target_kind} {self.target!r}{where}"

    def rules(self) -> dict[str, Any]:
        """The body stored in ``policies.body`` (without ``scan`` when the policy asks for no scan)."""
        body = self.model_dump(include=set(PolicyRules.model_fields))
        if body.get("scan") is None:
            body.pop("scan", None)
        return body


_HINTS = {
    "approvals": f"must be an integer from 0 to {MAX_APPROVALS}",
    "approval_ttl_days": f"must be an integer from 1 to {MAX_TTL_DAYS} (days)",
    "forbid_self_approval": "must be true or false",
    "archive_existing": "must be true or false",
    "not_while_serving": "must be true or false",
    "approvers": "must be a list such as [group:ml-leads, user:bob]",
    "gates": "must be a list of comparisons",
    "require": "must be a list such as [description, card.intended_use, signature]",
    "from": "must be a list of stages such as [Test]",
    "scan": "must be clean or {max_severity: low|medium|high}",
}
KNOWN_KEYS = (
    *("stage", "alias", "model", "tag", "approvals", "approvers", "forbid_self_approval", "gates", "require", "scan"),
    *("from", "archive_existing", "not_while_serving", "approval_ttl_days"),
)


def _where(loc: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))


def _problem(error: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    """A pydantic error as (where, a message naming the key)."""
    loc = tuple(error["loc"])
    key = _where(loc)
    if error["type"] == "extra_forbidden":
        return loc, f"unknown key {key!r}; known keys: {', '.join(KNOWN_KEYS)}"
    if error["type"] == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
        return loc, message if message.startswith("'") else f"{key!r}: {message}"
    if len(loc) == 1 and str(loc[0]) in _HINTS:
        return loc, f"{key!r} {_HINTS[str(loc[0])]}"
    if len(loc) > 1:
        return loc, f"{key!r} must be a string"
    return loc, f"{key!r}: {error['msg']}"


def _finish(
    rules: PolicyRules, kind: TargetKind, target: str, stage: Callable[[str], str], initial: str | None
) -> tuple[PolicyRules, str | None, str]:
    """Rules with their ``from`` stages normalised, or (rules, the key at fault, why)."""
    if kind == "alias" and rules.archive_existing:
        return rules, "archive_existing", "'archive_existing' applies to stages only"
    if kind == "alias" and rules.not_while_serving:
        return rules, "not_while_serving", "'not_while_serving' applies to stages only (such as Archived)"
    if kind == "alias" and rules.from_:
        return rules, "from", "'from' applies to stages only: it says which stages a stage is entered from"
    if rules.from_ and target == initial:
        why = f"'from' cannot be set on stage {target!r}: it is the first stage, where versions are created, not"
        return rules, "from", f"{why} one they enter from another (a policy there may still govern moves back to it)"
    order: list[str] = []
    for i, name in enumerate(rules.from_):
        try:
            normal = stage(name)
        except InvalidInput as exc:
            return rules, f"from[{i}]", exc.message.replace("'stage'", f"'from[{i}]'", 1)
        if normal == target:
            why = f"'from[{i}]' names stage {target!r} itself: a stage is entered from another one"
            return rules, f"from[{i}]", why
        if normal not in order:
            order.append(normal)
    return rules.model_copy(update={"from_": order}), None, ""


def validate_rules(
    body: Mapping[str, Any],
    *,
    kind: TargetKind,
    target: str = "",
    stage: Callable[[str], str] = lambda s: s,
    stages: Sequence[str] = (),
) -> PolicyRules:
    """Check a policy's rules (API callers); ``InvalidInput`` names the first bad key.

    ``stages`` are the registry's stages in order: the first, where versions start, takes no ``from``.
    """
    if not isinstance(body, Mapping):
        raise InvalidInput("a policy must be a mapping of rules (approvals, approvers, gates ...)")
    check_json(body, "policy")
    try:
        rules = PolicyRules.model_validate(dict(body))
    except ValidationError as exc:
        raise InvalidInput(_problem(exc.errors()[0])[1]) from None
    rules, fault, why = _finish(rules, kind, target, stage, stages[0] if stages else None)
    if fault is not None:
        raise InvalidInput(why)
    return rules


def serving_problem(rules: PolicyRules, target: str, current: str, what: str, serving: Sequence[str]) -> str | None:
    """Why ``what``, served at ``serving`` (deployment descriptions), may not enter ``target`` (None: it may)."""
    if not rules.not_while_serving or current == target or not serving:
        return None
    return f"{what} is serving ({', '.join(serving)}); stage {target!r} is not entered while a version serves"


def order_problem(rules: PolicyRules, target: str, current: str, what: str) -> str | None:
    """Why ``what`` (``version 3 of 'churn'``), now in stage ``current``, may not enter ``target`` (None: it may)."""
    if not rules.from_ or current == target or current in rules.from_:
        return None
    return f"{what} is in stage {current!r}; stage {target!r} may be entered only from {', '.join(rules.from_)}"


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
    stages: Sequence[str] = (),
    beside: Sequence[Policy] = (),
) -> list[Policy]:
    """Read a policy file; ``stage``/``alias`` normalise and check target names (raising ``InvalidInput``).

    Every problem in the file is reported at once, each with its line; any problem rejects the whole file.
    With ``stages`` (the registry's, in order) a ``from`` that leaves stages no version could enter is
    a problem too, the file's policies taken with ``beside`` (the policies in place they join).
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
    lines: dict[int, int] = {}  # id() of a policy read -> the line of its 'from' (or of the policy)
    seen: dict[tuple[str, str, str, str], int] = {}
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
        scoped = [k for k in ("model", "tag") if k in item]
        try:
            scope, scope_text = scope_of(item.pop("model", None), item.pop("tag", None))
        except InvalidInput as exc:
            problems.add(document.line((*loc, scoped[-1])), exc.message)
            continue
        key = (scope, scope_text, kind, target)
        where = document.line((*loc, kind))
        if key in seen:
            whose = "" if scope == "global" else f" for {scope_label(scope, scope_text)}"
            problems.add(where, f"{kind} {target!r} has a policy{whose} already, at line {seen[key]}")
            continue
        seen[key] = where
        try:
            rules = PolicyRules.model_validate(item)
        except ValidationError as exc:
            for error in exc.errors():
                sub, message = _problem(error)
                problems.add(document.line((*loc, *sub)), message)
            continue
        rules, fault, why = _finish(rules, kind, target, stage, stages[0] if stages else None)
        if fault is not None:
            sub = tuple(int(p) if p.isdigit() else p for p in re.split(r"[\[\]]+", fault) if p)
            problems.add(document.line((*loc, *sub)), why)
            continue
        scope_keys = (
            {"model": scope_text} if scope in ("model", "pattern") else {"tag": scope_text} if scope == "tag" else {}
        )
        out.append(Policy(target_kind=kind, target=target, **scope_keys, **rules.model_dump(by_alias=False)))
        lines[id(out[-1])] = document.line((*loc, "from"))
    if stages and not problems.found:
        _order_problems(out, beside, stages, lines, problems)
    problems.raise_any()
    return out


def _order_problems(
    parsed: list[Policy], beside: Sequence[Policy], stages: Sequence[str], lines: dict[int, int], problems: _Problems
) -> None:
    """Add, at the line of a ``from`` at fault, each stage the file leaves no version could enter."""
    from covex.domain.scopes import order_gaps  # scopes builds on this module

    def where(p: Policy) -> str:
        return f"at line {lines[id(p)]}" if id(p) in lines else f"in policy {p.id} ({p.scope_label})"

    replaced = {(p.target_kind, p.target, p.scope_ref) for p in parsed}
    kept = [p for p in beside if (p.target_kind, p.target, p.scope_ref) not in replaced]
    for gap in order_gaps(beside, [*kept, *parsed], stages, where):
        problems.add(min((lines[id(p)] for p in gap.culprits if id(p) in lines), default=1), gap.message)


def dump_policies(policies: Sequence[Policy]) -> str:
    """The policies as a file ``parse_policy_file`` reads back."""
    items = []
    for p in policies:
        scope = {"model": p.model} if p.model else {"tag": p.tag} if p.tag else {}
        items.append({p.target_kind: p.target, **scope, **p.rules()})
    return yaml.safe_dump({"policies": items}, sort_keys=False)


# -- requests, comments, placements -------------------------------------------------------


class _Entity(BaseModel):
    model_config = ConfigDict(frozen=True)


class Review(_Entity):
    reviewer: str
    decision: Literal["approve", "reject"]
    comment: str = ""
    timestamp: int


class TransitionRequest(_Entity):
    """A request to move a version into a protected stage or alias.

    ``policy`` is the policy it was judged by, as it was then; ``policy_id`` and ``policy_scope``
    (``global``, ``model:<name>``, ``pattern:<glob>``, ``tag:<key>=<value>``) say which one that was.
    """

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
    policy_id: int | None = None
    policy_scope: str = "global"
    policy: PolicyRules | None = None
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
