"""Policies: setting, applying, listing and deleting them, and which one applies to a model.

A stage or alias has at most one policy per scope: global, one model, one name pattern or one
tag. ``applicable_policy`` picks the one that governs a model (``covex.domain.scopes``); direct
moves (``covex.service.placement``) and requests (``covex.service.requests``) both ask it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from covex.domain import policy as rules
from covex.domain.access import RANK
from covex.domain.errors import InvalidInput, InvalidState, NotFound
from covex.domain.names import validate_alias, validate_target
from covex.domain.policy import Policy, TargetKind
from covex.domain.scopes import AppliedPolicy, order_gaps, resolve
from covex.service.base import Refused, ServiceBase, now_ms
from covex.store.schema import model_aliases, model_tags, models, policies


def policy_from(row: Row[Any]) -> Policy:
    """A ``policies`` row as a ``Policy``."""
    scope = {"model": row.scope} if row.scope_kind in ("model", "pattern") else {}
    if row.scope_kind == "tag":
        scope = {"tag": row.scope}
    return Policy(
        id=row.id,
        target_kind=row.target_kind,
        target=row.target,
        updated_by=row.updated_by,
        last_updated_timestamp=row.last_updated_timestamp,
        **scope,
        **json.loads(row.body),
    )


def load_policies(conn: Connection, kind: str | None = None, target: str | None = None) -> list[Policy]:
    """Every policy, or those of one stage or alias."""
    q = select(policies)
    if kind is not None:
        q = q.where(policies.c.target_kind == kind, policies.c.target == target)
    return [policy_from(r) for r in conn.execute(q.order_by(policies.c.id))]


def model_tag_map(conn: Connection, model_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """The tags of each of ``model_ids``, in one query."""
    found: dict[int, dict[str, str]] = defaultdict(dict)
    ids = sorted(set(model_ids))
    if ids:
        q = select(model_tags.c.model_id, model_tags.c.key, model_tags.c.value).where(model_tags.c.model_id.in_(ids))
        for model_id, key, value in conn.execute(q):
            found[model_id][key] = value
    return found


def resolve_for(conn: Connection, model: Row[Any], kind: TargetKind, target: str) -> AppliedPolicy:
    """Which policy of ``kind``/``target`` governs ``model`` (a ``models`` row), and why."""
    found = load_policies(conn, kind, target)
    tags = model_tag_map(conn, [model.id])[model.id] if any(p.scope == "tag" for p in found) else {}
    return resolve(found, model.name, tags, kind, target)


def applicable_policy(conn: Connection, model: Row[Any], kind: TargetKind, target: str) -> Policy | None:
    """The policy that governs moves of ``model``'s versions into ``kind``/``target`` (None: unprotected)."""
    return resolve_for(conn, model, kind, target).policy


def guard_retag(service: ServiceBase, conn: Connection, model: Row[Any], key: str, value: str | None) -> None:
    """Refuse, unless the principal manages ``model``, a tag change that changes which policy governs it.

    Setting tag ``key`` to ``value`` (None: removing it) is an editor's change, unless a policy is
    scoped by that tag: then it could move the model under a laxer policy, which takes a manager.
    """
    found = load_policies(conn)
    if not any(p.scope == "tag" and p.scope_text.partition("=")[0] == key for p in found):
        return
    before = model_tag_map(conn, [model.id])[model.id]
    after = {k: v for k, v in before.items() if k != key} | ({} if value is None else {key: value})
    for kind, target in sorted({(p.target_kind, p.target) for p in found}):
        was = resolve(found, model.name, before, kind, target).policy
        now = resolve(found, model.name, after, kind, target).policy
        if (was and was.id) != (now and now.id) and service.model_role(conn, model.id) < RANK["manager"]:
            change = f"setting tag {key}={value}" if value is not None else f"removing tag {key}"
            raise Refused(
                f"{service.actor!r} may not change the tags of {model.name!r} this way: {change} moves "
                f"{kind} {target!r} from {_governed_by(was)} to {_governed_by(now)}, "
                f"which takes a manager of {model.name!r}",
                action="model.tag.set" if value is not None else "model.tag.delete",
                target=f"model:{model.name}",
            )


def _governed_by(policy: Policy | None) -> str:
    if policy is None:
        return "no policy"
    return "the global policy" if policy.scope == "global" else f"the policy for {policy.scope_label}"


def _in_policy(policy: Policy) -> str:
    return f"in policy {policy.id} ({policy.scope_label})"


def _order_subjects(conn: Connection, found: Iterable[Policy]) -> list[tuple[str, dict[str, str]]]:
    """Every model (name, tags: those a stage policy is scoped by), when a stage policy has a scope."""
    scoped = [p for p in found if p.target_kind == "stage" and p.scope != "global"]
    if not scoped:
        return []
    names = dict(conn.execute(select(models.c.id, models.c.name)).all())
    keys = {p.scope_text.partition("=")[0] for p in scoped if p.scope == "tag"}
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    if keys:
        q = select(model_tags.c.model_id, model_tags.c.key, model_tags.c.value).where(model_tags.c.key.in_(keys))
        for model_id, key, value in conn.execute(q):
            tags[model_id][key] = value
    return [(name, tags[model_id]) for model_id, name in names.items()]


def _audit_label(kind: str, target: str, scope_kind: str, scope: str) -> str:
    """How the audit trail names a policy: ``stage:Production``, ``stage:Production model:churn``."""
    return f"{kind}:{target}" + ("" if scope_kind == "global" else f" {scope_kind}:{scope}")


def _no_policy(kind: str, target: str, scope_kind: str, scope: str) -> NotFound:
    whose = "" if scope_kind == "global" else f" for {rules.scope_label(scope_kind, scope)}"
    return NotFound(f"{kind} {target!r} has no policy{whose}")


class PolicyService(ServiceBase):
    """Policies of stages and aliases, each global or for a model, a name pattern or a tag."""

    # -- targets --------------------------------------------------------------------

    def _target(self, kind: str, target: str) -> tuple[TargetKind, str]:
        return validate_target(kind, target, self.stages)  # type: ignore[return-value]

    def _one_target(self, stage: str | None, alias: str | None) -> tuple[TargetKind, str]:
        if (stage is None) == (alias is None):
            raise InvalidInput("give exactly one of 'stage' or 'alias'")
        return self._target("stage", stage) if stage is not None else self._target("alias", str(alias))

    def _alias(self, name: str) -> str:
        return validate_alias(name, self.stages, "alias")

    # -- storage --------------------------------------------------------------------

    @staticmethod
    def _where(kind: str, target: str, scope_kind: str, scope: str) -> Any:
        return (
            (policies.c.target_kind == kind)
            & (policies.c.target == target)
            & (policies.c.scope_kind == scope_kind)
            & (policies.c.scope == scope)
        )

    def _find(self, conn: Connection, kind: str, target: str, scope_kind: str, scope: str) -> Policy | None:
        row = conn.execute(select(policies).where(self._where(kind, target, scope_kind, scope))).one_or_none()
        return None if row is None else policy_from(row)

    @staticmethod
    def _audit_target(p: Policy) -> str:
        return _audit_label(p.target_kind, p.target, p.scope, p.scope_text)

    def _upsert(self, conn: Connection, new: Policy, now: int) -> Policy:
        where = (new.target_kind, new.target, new.scope, new.scope_text)
        before = self._find(conn, *where)
        values = {"body": json.dumps(new.rules()), "updated_by": self.actor, "last_updated_timestamp": now}
        if before is None:
            conn.execute(
                insert(policies).values(
                    target_kind=new.target_kind, target=new.target, scope_kind=new.scope, scope=new.scope_text, **values
                )
            )
        else:
            conn.execute(update(policies).where(self._where(*where)).values(**values))
        self._audit(
            conn, "policy.set", self._audit_target(new), None if before is None else before.rules(), new.rules()
        )
        stored = self._find(conn, *where)
        assert stored is not None
        return stored

    def _order_gaps(self, conn: Connection, before: list[Policy]) -> str | None:
        """Why the policies now in ``conn`` leave stages no version could enter that ``before`` did not (None: ok)."""
        after = load_policies(conn)
        if not any(p.target_kind == "stage" and p.from_ for p in after):
            return None
        found = order_gaps(before, after, self.stages, _in_policy, _order_subjects(conn, [*before, *after]))
        if not found:
            return None
        said = [gap.message for gap in found[:3]]
        return "; ".join(said) + (f" (and {len(found) - 3} more)" if len(found) > 3 else "")

    # -- use cases ------------------------------------------------------------------

    def set_policy(
        self, kind: str, target: str, body: Mapping[str, Any], *, model: str | None = None, tag: str | None = None
    ) -> Policy:
        """Create or replace the policy of a stage or alias (admins only): global, or for ``model`` or ``tag``.

        ``model`` is a model's name or a glob pattern of names (``network/*``); ``tag`` is ``key=value``.
        """
        kind, target = self._target(kind, target)
        scope_kind, scope = rules.scope_of(model, tag)
        with self._tx(write=True) as conn:
            self.require_admin("policy.set", _audit_label(kind, target, scope_kind, scope))
            checked = rules.validate_rules(body, kind=kind, target=target, stage=self.stage, stages=self.stages)
            scope_keys = {"model": model} if model is not None else {"tag": tag} if tag is not None else {}
            new = Policy(target_kind=kind, target=target, **scope_keys, **checked.model_dump(by_alias=False))
            before = load_policies(conn)
            stored = self._upsert(conn, new, now_ms())
            gap = self._order_gaps(conn, before) if checked.from_ else None
            if gap is not None:
                raise InvalidInput(f"'from': {gap}")  # the transaction is rolled back: nothing is set
            return stored

    def apply_policy_file(self, text: str, replace: bool = False) -> list[Policy]:
        """Apply every policy of a YAML file, or none if any has an error; ``replace`` deletes the others."""
        # Authenticate and check rights before reading the file: only admins make the server parse YAML.
        with self._tx(write=False) as conn:
            self.require_admin("policy.set", "policies")
            beside = [] if replace else load_policies(conn)
        parsed = rules.parse_policy_file(text, stage=self.stage, alias=self._alias, stages=self.stages, beside=beside)
        now = now_ms()
        with self._tx(write=True) as conn:
            self.require_admin("policy.set", "policies")
            before = load_policies(conn)
            out = [self._upsert(conn, p, now) for p in parsed]
            if replace:
                keep = {(p.target_kind, p.target, p.scope, p.scope_text) for p in parsed}
                for row in conn.execute(select(policies)).all():
                    if (row.target_kind, row.target, row.scope_kind, row.scope) not in keep:
                        gone = policy_from(row)
                        conn.execute(delete(policies).where(policies.c.id == row.id))
                        self._audit(conn, "policy.delete", self._audit_target(gone), gone.rules(), None)
            gap = self._order_gaps(conn, before)
            if gap is not None:
                raise InvalidInput(f"policy file rejected, nothing applied: {gap}")
            return out

    def get_policy(self, kind: str, target: str, *, model: str | None = None, tag: str | None = None) -> Policy:
        """The policy of a stage or alias for one scope (default: the global one)."""
        kind, target = self._target(kind, target)
        scope_kind, scope = rules.scope_of(model, tag)
        with self._tx(write=False) as conn:
            found = self._find(conn, kind, target, scope_kind, scope)
        if found is None:
            raise _no_policy(kind, target, scope_kind, scope)
        return found

    def list_policies(self) -> list[Policy]:
        """Every policy: stages first, then aliases; within one, global, then by scope."""
        with self._tx(write=False) as conn:
            found = load_policies(conn)
        order = {"global": 0, "model": 1, "pattern": 2, "tag": 3}
        return sorted(found, key=lambda p: (p.target_kind != "stage", p.target, order[p.scope], p.scope_text))

    def delete_policy(self, kind: str, target: str, *, model: str | None = None, tag: str | None = None) -> None:
        """Remove a policy (admins only); the models it covered fall back to the next policy that covers them."""
        kind, target = self._target(kind, target)
        scope_kind, scope = rules.scope_of(model, tag)
        with self._tx(write=True) as conn:
            self.require_admin("policy.delete", _audit_label(kind, target, scope_kind, scope))
            before = self._find(conn, kind, target, scope_kind, scope)
            if before is None:
                raise _no_policy(kind, target, scope_kind, scope)
            every = load_policies(conn)
            conn.execute(delete(policies).where(self._where(kind, target, scope_kind, scope)))
            self._audit(conn, "policy.delete", self._audit_target(before), before.rules(), None)
            gap = self._order_gaps(conn, every) if kind == "stage" else None
            if gap is not None:
                raise InvalidState(f"the policy of {before.label} was not deleted: without it, {gap}")

    def applicable_policies(self, name: str) -> list[AppliedPolicy]:
        """For each stage, and each alias the model has or a policy names: the policy that applies, and why.

        Readers of the model may ask.
        """
        with self._tx(write=False) as conn:
            model = self._model_for(conn, name, "reader", "model.read", lock=False)
            found = load_policies(conn)
            tags = model_tag_map(conn, [model.id])[model.id]
            held = conn.execute(select(model_aliases.c.alias).where(model_aliases.c.model_id == model.id)).scalars()
            aliases = sorted({*held, *(p.target for p in found if p.target_kind == "alias")})
        places: list[tuple[TargetKind, str]] = [("stage", s) for s in self.stages]
        places += [("alias", a) for a in aliases]
        return [resolve(found, model.name, tags, kind, target) for kind, target in places]
