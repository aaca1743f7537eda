"""Which policy applies to a model, and why. Pure: no I/O.

A stage or alias may have several policies, each for a scope of models. For one model the most
specific that covers it applies:

1. a policy for the model itself (``model: store-sales``);
2. else a policy for a name pattern that matches it (``model: network/*``, a glob), the longest
   pattern first; patterns of equal length in alphabetical order;
3. else a policy for a tag the model has (``tag: team=retail``), in alphabetical order of
   ``key=value`` when the model has several such tags;
4. else the global policy (no ``model:`` or ``tag:``), if there is one.

Policies do not merge: the one that applies is the whole policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict

from covex.domain.policy import Policy, TargetKind

_RANK = {"model": 0, "pattern": 1, "tag": 2, "global": 3}


class ScopeMatch(BaseModel):
    """One policy of a stage or alias, looked at for a model: whether it covers the model, and why."""

    model_config = ConfigDict(frozen=True)

    policy_id: int
    scope: str
    covers: bool
    reason: str


class AppliedPolicy(BaseModel):
    """The policy that governs moves of a model's versions into one stage or alias, and why that one."""

    model_config = ConfigDict(frozen=True)

    model: str
    target_kind: TargetKind
    target: str
    policy: Policy | None = None
    reason: str
    passed_over: list[ScopeMatch] = []


def covers(policy: Policy, name: str, tags: Mapping[str, str]) -> bool:
    """Whether ``policy`` covers the model called ``name`` with ``tags``."""
    if policy.scope == "model":
        return policy.model == name
    if policy.scope == "pattern":
        return fnmatchcase(name, policy.scope_text)
    if policy.scope == "tag":
        key, _, value = policy.scope_text.partition("=")
        return tags.get(key) == value
    return True


def _order(policy: Policy) -> tuple[int, int, str]:
    """Most specific first: model, longest pattern, tag, global; ties in alphabetical order."""
    length = -len(policy.scope_text) if policy.scope == "pattern" else 0
    return _RANK[policy.scope], length, policy.scope_text


def _why_not(policy: Policy, name: str, tags: Mapping[str, str]) -> str:
    if policy.scope == "pattern":
        return f"pattern {policy.scope_text!r} does not match {name!r}"
    key, _, value = policy.scope_text.partition("=")
    if key in tags:
        return f"the model's tag {key} is {tags[key]!r}, not {value!r}"
    return f"the model has no tag {key}"


def _why(policy: Policy, name: str) -> str:
    if policy.scope == "model":
        return f"the policy for model {name!r} itself"
    if policy.scope == "pattern":
        return f"the name matches pattern {policy.scope_text!r}"
    if policy.scope == "tag":
        return f"the model has tag {policy.scope_text}"
    return "the global policy: no policy for this model, a pattern of its name or its tags"


def _behind(winner: Policy, other: Policy) -> str:
    if winner.scope != other.scope:
        return f"covers it too, but {winner.scope_label} is more specific"
    if winner.scope == "pattern" and len(winner.scope_text) > len(other.scope_text):
        return f"matches too, but {winner.scope_label} is longer"
    return f"covers it too, but {winner.scope_label} comes first in alphabetical order"


def resolve(
    policies: Iterable[Policy], name: str, tags: Mapping[str, str], kind: TargetKind, target: str
) -> AppliedPolicy:
    """The policy of ``kind``/``target`` that applies to model ``name`` (with ``tags``), and the others passed over.

    Policies of other models are left out of ``passed_over``; patterns and tags that do not
    cover the model are listed with the reason.
    """
    mine = [p for p in policies if (p.target_kind, p.target) == (kind, target)]
    covering = sorted((p for p in mine if covers(p, name, tags)), key=_order)
    passed: list[ScopeMatch] = []
    if covering:
        winner = covering[0]
        passed += [
            ScopeMatch(policy_id=p.id, scope=p.scope_ref, covers=True, reason=_behind(winner, p)) for p in covering[1:]
        ]
    passed += [
        ScopeMatch(policy_id=p.id, scope=p.scope_ref, covers=False, reason=_why_not(p, name, tags))
        for p in sorted(mine, key=_order)
        if p.scope in ("pattern", "tag") and not covers(p, name, tags)
    ]
    if not covering:
        return AppliedPolicy(
            model=name,
            target_kind=kind,
            target=target,
            reason="no policy covers this model; editors move versions in directly",
            passed_over=passed,
        )
    return AppliedPolicy(
        model=name,
        target_kind=kind,
        target=target,
        policy=covering[0],
        reason=_why(covering[0], name),
        passed_over=passed,
    )
