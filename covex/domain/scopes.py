"""Which policy applies to a model, and why. Pure: no I/O.

A stage or alias may have several policies, each for a scope of models. For one model the most
specific that covers it applies:

1. a policy for the model itself (``model: store-sales``);
2. else a policy for a name pattern that matches it (``model: network/*``, a glob), the longest
   pattern first; patterns of equal length in alphabetical order;
3. else a policy for a tag the model has (``tag: team=retail``), in alphabetical order of
   ``key=value`` when the model has several such tags;
4. else the global policy (no ``model:`` or ``tag:``), if there is one.

Policies do not merge: the one that applies is the whole policy. So the stage order a model
follows (``from:``) may come from several scopes: ``scope_order_gaps`` and ``model_order_gaps``
find stages it leaves no version could ever enter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
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


def _first(winner: Policy, other: Policy) -> str:
    """Why ``winner`` applies before ``other``, which covers the model too."""
    if winner.scope != other.scope:
        return f"{winner.scope_label} is more specific"
    if winner.scope == "pattern" and len(winner.scope_text) > len(other.scope_text):
        return f"{winner.scope_label} is longer"
    return f"{winner.scope_label} comes first in alphabetical order"


def _behind(winner: Policy, other: Policy) -> str:
    longer = winner.scope == other.scope == "pattern" and len(winner.scope_text) > len(other.scope_text)
    return f"{'matches' if longer else 'covers it'} too, but {_first(winner, other)}"


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


# -- stages no version could enter -------------------------------------------------------

ORDER_RULE = "a stage can be entered when no 'from' governs it or its 'from' names a stage that can be"


def unreachable(stages: Sequence[str], froms: Mapping[str, Sequence[str]]) -> list[str]:
    """The stages no version could ever enter, in order; ``froms`` maps a stage to those it is entered from.

    Versions start in the first stage; a stage without ``from`` is entered from any stage, so from
    the first; a stage with ``from`` once a stage it names can be. Rollbacks and the archiving
    ``archive_existing`` does are not counted: they put back or push out, nobody enters that way.
    """
    reached = {stages[0], *(s for s in stages if not froms.get(s))}
    while grown := {s for s in stages if s not in reached and reached.intersection(froms[s])}:
        reached |= grown
    return [s for s in stages if s not in reached]


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


@dataclass(frozen=True)
class OrderGap:
    """Stages some models' versions could never enter: whose (``global``, ``model:churn`` ...), which, why.

    ``culprits`` are the policies whose ``from`` leaves them so.
    """

    subject: str
    stuck: tuple[str, ...]
    message: str
    culprits: tuple[Policy, ...]


def order_gap(
    subject: str, governing: Mapping[str, Policy], stages: Sequence[str], where: Callable[[Policy], str]
) -> OrderGap | None:
    """The stages ``governing`` (a stage -> the policy that governs it) leaves no version could enter, and why.

    ``subject`` says whose policies these are; ``where`` says where a policy is set (``at line 4``).
    """
    froms = {s: p.from_ for s, p in governing.items() if p.from_ and s in stages}
    stuck = unreachable(stages, froms)
    if not stuck:
        return None
    behind: dict[str, set[str]] = {}  # a stuck stage -> the stuck stages it waits for, directly or not
    for s in stuck:
        todo, seen = [s], set()
        while todo:
            for f in froms.get(todo.pop(), ()):
                if f in froms and f not in seen:
                    seen.add(f)
                    todo.append(f)
        behind[s] = seen
    # A cycle no other stage leads into: stages that wait only for one another.
    cycles: list[list[str]] = []
    for s in stuck:
        if s in behind[s] and all(s in behind[t] for t in behind[s]) and not any(s in c for c in cycles):
            cycles.append([t for t in stuck if t in behind[s]])
    rest = [s for s in stuck if not any(s in c for c in cycles)]

    def rules(names: list[str]) -> str:
        return "; ".join(f"{s} from {', '.join(froms[s])} {where(governing[s])}".rstrip() for s in names)

    said = [
        f"{_and(c)} {'is' if len(c) == 1 else 'are'} entered only from "
        f"{'itself' if len(c) == 1 else 'each other' if len(c) == 2 else 'one another'} ({rules(c)})"
        for c in cycles
    ]
    if rest:
        said.append(f"{_and(rest)} only from stages that cannot be entered ({rules(rest)})")
    kind, _, text = subject.partition(":")
    whose = {"model": f"for model {text!r}", "pattern": f"for models matching {text!r}"}.get(kind)
    whose = whose or (f"for models tagged {text}" if kind == "tag" else "under the global policies")
    return OrderGap(
        subject=subject,
        stuck=tuple(stuck),
        message=f"{whose}, no version could ever enter {_and(stuck)}: {'; '.join(said)}. "
        f"Versions start in {stages[0]!r}; {ORDER_RULE}",
        culprits=tuple(governing[s] for s in stuck),
    )


def _scope_gaps(policies: Sequence[Policy], stages: Sequence[str], where: Callable[[Policy], str]) -> list[OrderGap]:
    """Under the global stage policies, and under each pattern's or tag's over them."""
    base = {p.target: p for p in policies if p.scope == "global"}
    found = []
    for subject in ["global", *sorted({p.scope_ref for p in policies if p.scope in ("pattern", "tag")})]:
        gap = order_gap(subject, base | {p.target: p for p in policies if p.scope_ref == subject}, stages, where)
        # A gap the scope's own policies play no part in is the global policies' to name.
        if gap is not None and any(p.scope_ref == subject for p in gap.culprits):
            found.append(gap)
    return found


def _model_gaps(
    policies: Sequence[Policy],
    stages: Sequence[str],
    models: Iterable[tuple[str, Mapping[str, str]]],
    where: Callable[[Policy], str],
    every: bool,
) -> list[OrderGap]:
    """Under the policies that govern each model (name, tags): with ``every`` False, only the models a
    policy of their own or policies of two scopes govern (the others are a scope's case)."""
    found = []
    for name, tags in models:
        covering = [p for p in policies if covers(p, name, tags)]
        scoped = {p.scope_ref for p in covering} - {"global"}
        if not every and f"model:{name}" not in scoped and len(scoped) < 2:
            continue
        # The most specific last, so that it is the one kept for its stage.
        governing = {p.target: p for p in sorted(covering, key=_order, reverse=True)}
        gap = order_gap(f"model:{name}", governing, stages, where)
        at_fault = {p.scope_ref for p in gap.culprits if p.scope != "global"} if gap is not None else set()
        # The global policies' gap, or one pattern's or tag's, is named under their own scope.
        if gap is not None and (len(at_fault) > 1 or at_fault == {f"model:{name}"}):
            found.append(gap)
    return found


def order_gaps(
    before: Sequence[Policy],
    after: Sequence[Policy],
    stages: Sequence[str],
    where: Callable[[Policy], str],
    models: Iterable[tuple[str, Mapping[str, str]]] = (),
) -> list[OrderGap]:
    """Stages the policies ``after`` a change leave no version could ever enter, that ``before`` it did not.

    Looked at: the global stage policies; each pattern's and tag's over them; each model of
    ``models`` (name, tags) that policies of two scopes or one of its own govern; each model a
    policy names, as a model without tags when ``models`` does not hold it. Stages left so
    ``before`` are not held against the change: they were set before they were checked.
    """
    models = list(models)
    old_rules = [p for p in before if p.target_kind == "stage"]
    new_rules = [p for p in after if p.target_kind == "stage"]
    known = {name for name, _ in models}
    named = sorted({p.scope_text for p in new_rules if p.scope == "model"} - known)
    found = _scope_gaps(new_rules, stages, where)
    found += _model_gaps(new_rules, stages, [*models, *((name, {}) for name in named)], where, every=False)
    tags = dict(models)
    again = [name for kind, _, name in (gap.subject.partition(":") for gap in found) if kind == "model"]
    old = _scope_gaps(old_rules, stages, where)
    old += _model_gaps(old_rules, stages, [(name, tags.get(name, {})) for name in again], where, every=True)
    seen = {(gap.subject, s) for gap in old for s in gap.stuck}
    return [gap for gap in found if any((gap.subject, s) not in seen for s in gap.stuck)]


def why_not_governing(policy: Policy, winner: Policy | None, name: str, tags: Mapping[str, str]) -> str:
    """Why ``policy`` does not govern the model ``name`` with ``tags``; ``winner`` is the one that does, if any."""
    if policy.scope == "model" and policy.model != name:
        return f"it is for model {policy.model!r}"
    if not covers(policy, name, tags):
        return _why_not(policy, name, tags)
    if winner is None or winner.id == policy.id:
        return "it covers the model"
    return f"it still covers the model, but {_first(winner, policy)}"
