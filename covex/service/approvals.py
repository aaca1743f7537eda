"""Governance: policies on stages and aliases, approval requests, comments, rollback and placement history.

A request's gates are evaluated when it is made and again, under the model's row
lock, each time it is approved: the move happens in the transaction of the
approval that completes it, so two racing approvals apply it once.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from covex.domain import policy as rules
from covex.domain.access import EVERYONE, RANK
from covex.domain.errors import AlreadyExists, InvalidInput, InvalidState, NotFound
from covex.domain.names import MAX_COMMENT_LENGTH, validate_alias, validate_id, validate_target, validate_text
from covex.domain.policy import (
    Candidate,
    Comment,
    GateResult,
    Placement,
    Policy,
    Review,
    Rollback,
    TargetKind,
    TransitionRequest,
)
from covex.service.base import Refused, ServiceBase, now_ms
from covex.service.placement import PlacementService
from covex.store import queries
from covex.store.schema import (
    grants,
    group_members,
    groups,
    model_aliases,
    model_events,
    model_versions,
    models,
    policies,
    request_reviews,
    transition_requests,
    users,
    version_comments,
    version_documents,
)

DAY_MS = 86_400_000
STATUSES = ("OPEN", "APPLIED", "REJECTED", "CANCELLED", "STALE")


def _text(value: object, field: str, *, required: bool = False) -> str:
    return validate_text(value, field, MAX_COMMENT_LENGTH, required=required)


def _number(value: object, field: str) -> int:
    return validate_id(value, field)


def _results(text: str) -> list[GateResult]:
    return [GateResult.model_validate(g) for g in json.loads(text or "[]")]


def _dump(results: Sequence[GateResult]) -> str:
    return json.dumps([r.model_dump() for r in results])


class ApprovalService(ServiceBase):
    """Policies, requests, reviews, comments, rollback and placement at a moment."""

    @property
    def _registry(self) -> PlacementService:
        return self._sibling(PlacementService)

    # -- targets --------------------------------------------------------------------

    def _target(self, kind: str, target: str) -> tuple[TargetKind, str]:
        return validate_target(kind, target, self.stages)  # type: ignore[return-value]

    def _one_target(self, stage: str | None, alias: str | None) -> tuple[TargetKind, str]:
        if (stage is None) == (alias is None):
            raise InvalidInput("give exactly one of 'stage' or 'alias'")
        return self._target("stage", stage) if stage is not None else self._target("alias", str(alias))

    # -- policies -------------------------------------------------------------------

    def _policy(self, conn: Connection, kind: str, target: str) -> Policy | None:
        row = conn.execute(
            select(policies).where(policies.c.target_kind == kind, policies.c.target == target)
        ).one_or_none()
        return None if row is None else self._policy_from(row)

    @staticmethod
    def _policy_from(row: Row[Any]) -> Policy:
        return Policy(
            target_kind=row.target_kind,
            target=row.target,
            updated_by=row.updated_by,
            last_updated_timestamp=row.last_updated_timestamp,
            **json.loads(row.body),
        )

    def _upsert(self, conn: Connection, new: Policy, now: int) -> Policy:
        before = self._policy(conn, new.target_kind, new.target)
        values = {"body": json.dumps(new.rules()), "updated_by": self.actor, "last_updated_timestamp": now}
        where = (policies.c.target_kind == new.target_kind) & (policies.c.target == new.target)
        if before is None:
            conn.execute(insert(policies).values(target_kind=new.target_kind, target=new.target, **values))
        else:
            conn.execute(update(policies).where(where).values(**values))
        label = f"{new.target_kind}:{new.target}"
        self._audit(conn, "policy.set", label, None if before is None else before.rules(), new.rules())
        stored = self._policy(conn, new.target_kind, new.target)
        assert stored is not None
        return stored

    def set_policy(self, kind: str, target: str, body: Mapping[str, Any]) -> Policy:
        """Create or replace the policy of a stage or alias (admins only)."""
        kind, target = self._target(kind, target)
        with self._tx(write=True) as conn:
            self.require_admin("policy.set", f"{kind}:{target}")
            checked = rules.validate_rules(body, kind=kind)
            return self._upsert(conn, Policy(target_kind=kind, target=target, **checked.model_dump()), now_ms())

    def apply_policy_file(self, text: str, replace: bool = False) -> list[Policy]:
        """Apply every policy of a YAML file, or none if any has an error; ``replace`` deletes the others."""
        # Authenticate and check rights before reading the file: only admins make the server parse YAML.
        with self._tx(write=False):
            self.require_admin("policy.set", "policies")
        parsed = rules.parse_policy_file(
            text, stage=self.stage, alias=lambda a: validate_alias(a, self.stages, "alias")
        )
        now = now_ms()
        with self._tx(write=True) as conn:
            self.require_admin("policy.set", "policies")
            out = [self._upsert(conn, p, now) for p in parsed]
            if replace:
                keep = {(p.target_kind, p.target) for p in parsed}
                for row in conn.execute(select(policies)).all():
                    if (row.target_kind, row.target) not in keep:
                        conn.execute(delete(policies).where(policies.c.id == row.id))
                        label = f"{row.target_kind}:{row.target}"
                        self._audit(conn, "policy.delete", label, self._policy_from(row).rules(), None)
            return out

    def get_policy(self, kind: str, target: str) -> Policy:
        kind, target = self._target(kind, target)
        with self._tx(write=False) as conn:
            found = self._policy(conn, kind, target)
        if found is None:
            raise NotFound(f"{kind} {target!r} has no policy")
        return found

    def list_policies(self) -> list[Policy]:
        with self._tx(write=False) as conn:
            rows = conn.execute(select(policies).order_by(policies.c.target_kind.desc(), policies.c.target)).all()
        return [self._policy_from(r) for r in rows]

    def delete_policy(self, kind: str, target: str) -> None:
        """Remove a policy (admins only): the stage or alias is then moved directly by editors."""
        kind, target = self._target(kind, target)
        with self._tx(write=True) as conn:
            self.require_admin("policy.delete", f"{kind}:{target}")
            before = self._policy(conn, kind, target)
            if before is None:
                raise NotFound(f"{kind} {target!r} has no policy")
            conn.execute(delete(policies).where(policies.c.target_kind == kind, policies.c.target == target))
            self._audit(conn, "policy.delete", f"{kind}:{target}", before.rules(), None)

    # -- what gates look at ---------------------------------------------------------

    def _candidate(self, conn: Connection, row: Row[Any]) -> Candidate:
        version = queries.load_versions(conn, [row])[0]
        docs = dict(
            conn.execute(
                select(version_documents.c.kind, version_documents.c.body).where(
                    version_documents.c.version_id == row.id
                )
            ).all()
        )
        return Candidate(
            version=version.version,
            metrics=version.metrics,
            params=version.params,
            description=version.description,
            tags=version.tags,
            card=json.loads(docs["card"]) if "card" in docs else {},
            documents=frozenset(docs),
        )

    def _holder(self, conn: Connection, model_id: int, kind: str, target: str) -> Row[Any] | None:
        """The champion: the version holding the alias, or the newest READY version in the stage."""
        q = queries.version_select().where(model_versions.c.model_id == model_id)
        if kind == "alias":
            q = q.join(model_aliases, model_aliases.c.version_id == model_versions.c.id).where(
                model_aliases.c.alias == target
            )
        else:
            q = q.where(model_versions.c.stage == target, model_versions.c.status == "READY")
        return conn.execute(q.order_by(model_versions.c.version.desc()).limit(1)).first()

    def _evaluate(
        self, conn: Connection, policy: Policy, row: Row[Any], champion: Row[Any] | None, *, rollback: bool = False
    ) -> list[GateResult]:
        return rules.evaluate(
            policy,
            self._candidate(conn, row),
            None if champion is None or champion.id == row.id else self._candidate(conn, champion),
            rollback=rollback,
        )

    # -- who may approve ------------------------------------------------------------

    def _approver_scopes(self, conn: Connection) -> list[tuple[int | None, str]]:
        rows = conn.execute(
            select(grants.c.model_id, grants.c.scope).where(
                grants.c.subject.in_(self.principal.subjects), grants.c.role == "approver"
            )
        ).all()
        return [(model_id, normal) for model_id, scope in rows if (normal := self._scope(scope)) is not None]

    def _scope(self, scope: str) -> str | None:
        """An approver grant's scope as ``kind:target`` with the stage's configured spelling (None: unknown)."""
        kind, _, target = scope.partition(":")
        try:
            return ":".join(self._target(kind, target))
        except InvalidInput:
            return None

    def _ineligible(
        self,
        policy: Policy,
        request: Row[Any],
        author: str | None,
        scopes: list[tuple[int | None, str]],
    ) -> str | None:
        """Why the principal may not review ``request`` (None: it may)."""
        p = self.principal
        label = f"{request.target_kind} {request.target!r}"
        if p.kind == "service":
            return f"{p.name!r} is a service account; service accounts never approve"
        if policy.forbid_self_approval and p.name == request.requester:
            return f"{p.name!r} made request {request.id} and may not approve it"
        if policy.forbid_self_approval and p.name == author:
            return f"{p.name!r} created version {request.version} and may not approve its promotion"
        if policy.approvers and not set(policy.approvers) & set(p.subjects):
            return f"{p.name!r} is not among the approvers of {label} ({', '.join(policy.approvers)})"
        wanted = f"{request.target_kind}:{request.target}"
        if not p.is_admin and not any(s == wanted and m in (None, request.model_id) for m, s in scopes):
            return f"{p.name!r} may not approve moves into {label}: it needs the approver role with scope {wanted}"
        return None

    # -- requests -------------------------------------------------------------------

    def _load(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[TransitionRequest]:
        reviews: dict[int, list[Review]] = defaultdict(list)
        if rows:
            for r in conn.execute(
                select(request_reviews)
                .where(request_reviews.c.request_id.in_([row.id for row in rows]))
                .order_by(request_reviews.c.id)
            ):
                reviews[r.request_id].append(
                    Review(reviewer=r.reviewer, decision=r.decision, comment=r.comment, timestamp=r.timestamp)
                )
        return [
            TransitionRequest(
                id=r.id,
                model=r.name,
                version=r.version,
                target_kind=r.target_kind,
                target=r.target,
                status=r.status,
                status_message=r.status_message,
                kind=r.kind,
                requester=r.requester,
                comment=r.comment,
                champion=r.champion,
                gates=_results(r.gates),
                reviews=reviews.get(r.id, []),
                approvals_needed=int(json.loads(r.policy or "{}").get("approvals", 0)),
                creation_timestamp=r.creation_timestamp,
                last_updated_timestamp=r.last_updated_timestamp,
            )
            for r in rows
        ]

    @staticmethod
    def _select() -> Any:
        return select(transition_requests, models.c.name).join(models, models.c.id == transition_requests.c.model_id)

    def _request_row(self, conn: Connection, request_id: int) -> Row[Any]:
        _number(request_id, "id")
        row = conn.execute(self._select().where(transition_requests.c.id == request_id)).one_or_none()
        if row is None:
            raise NotFound(f"request {request_id} does not exist")
        return row

    def _locked(self, conn: Connection, request_id: int) -> tuple[Row[Any], Row[Any]]:
        """The request and its model, with the model's row locked, the request read after the lock."""
        first = self._request_row(conn, request_id)
        model = self._model_row(conn, first.name, lock=True)
        return self._request_row(conn, request_id), model

    def _comment(self, conn: Connection, version_id: int, body: str, request_id: int | None, now: int) -> None:
        if body.strip():
            conn.execute(
                insert(version_comments).values(
                    version_id=version_id, author=self.actor, body=body, request_id=request_id, timestamp=now
                )
            )

    def _set_status(self, conn: Connection, request_id: int, status: str, message: str, **values: Any) -> None:
        conn.execute(
            update(transition_requests)
            .where(transition_requests.c.id == request_id)
            .values(status=status, status_message=message, last_updated_timestamp=now_ms(), **values)
        )

    def _apply(self, conn: Connection, model: Row[Any], request: Row[Any], policy: Policy, version: Row[Any]) -> None:
        """Move the version into the target, record why, and close the request as APPLIED."""
        comment = request.comment or f"request {request.id}"
        if request.target_kind == "stage":
            self._registry.move_stage(
                conn,
                model,
                version,
                request.target,
                archive_existing=policy.archive_existing,
                comment=comment,
                request_id=request.id,
            )
        else:
            self._registry.move_alias(conn, model, version, request.target, comment=comment, request_id=request.id)
        self._set_status(conn, request.id, "APPLIED", f"applied by {self.actor}")
        where = f"model:{model.name}/{request.version}"
        self._audit(conn, "request.apply", where, {"request": request.id}, {request.target_kind: request.target})
        data = self._event_data(model, request)
        self._emit(conn, "request.applied", data, model.id)

    @staticmethod
    def _event_data(model: Row[Any], request: Row[Any]) -> dict[str, Any]:
        return {
            "request": request.id,
            "model": model.name,
            "version": request.version,
            request.target_kind: request.target,
            "requester": request.requester,
            "kind": request.kind,
        }

    def create_request(
        self, name: str, version: int, *, stage: str | None = None, alias: str | None = None, comment: str = ""
    ) -> TransitionRequest:
        """Ask to move ``version`` into a protected stage or alias; its gates must pass now.

        With a policy needing no approvals the move happens at once (status APPLIED).
        """
        return self._create_request(name, version, stage=stage, alias=alias, comment=comment)

    def _create_request(
        self,
        name: str,
        version: int,
        *,
        stage: str | None,
        alias: str | None,
        comment: str,
        rollback: bool = False,
    ) -> TransitionRequest:
        kind, target = self._one_target(stage, alias)
        comment = _text(comment, "comment")
        _number(version, "version")
        now = now_ms()
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            self.require(conn, model, "editor", "request.create")
            row = self._registry._version_row(conn, model, version)
            policy = self._policy(conn, kind, target)
            label = f"{kind} {target!r}"
            if policy is None:
                how = "covex stages set" if kind == "stage" else "covex aliases set"
                raise InvalidInput(f"{label} has no policy: move version {version} there directly ({how})")
            if row.status != "READY":
                raise InvalidState(f"version {version} of {name!r} is {row.status}; only READY versions move")
            champion = self._holder(conn, model.id, kind, target)
            if (kind == "stage" and row.stage == target) or (champion is not None and champion.id == row.id):
                raise InvalidState(f"version {version} of {name!r} is already in {label}")
            duplicate = conn.execute(
                select(transition_requests.c.id).where(
                    transition_requests.c.model_id == model.id,
                    transition_requests.c.version == version,
                    transition_requests.c.target_kind == kind,
                    transition_requests.c.target == target,
                    transition_requests.c.status == "OPEN",
                )
            ).scalar_one_or_none()
            if duplicate is not None:
                raise AlreadyExists(f"request {duplicate} to move version {version} of {name!r} into {label} is open")
            results = self._evaluate(conn, policy, row, champion, rollback=rollback)
            if not all(r.passed for r in results):
                raise InvalidState(
                    f"version {version} of {name!r} does not meet the policy of {label}: {rules.failures(results)}"
                )
            request_id = conn.execute(
                insert(transition_requests)
                .values(
                    model_id=model.id,
                    version=version,
                    target_kind=kind,
                    target=target,
                    status="OPEN",
                    status_message="",
                    kind="rollback" if rollback else "promotion",
                    requester=self.actor,
                    comment=comment,
                    champion=None if champion is None else champion.version,
                    gates=_dump(results),
                    policy=json.dumps(policy.rules()),
                    creation_timestamp=now,
                    last_updated_timestamp=now,
                )
                .returning(transition_requests.c.id)
            ).scalar_one()
            self._comment(conn, row.id, comment, request_id, now)
            request = self._request_row(conn, request_id)
            after = {
                "request": request_id,
                kind: target,
                "champion": request.champion,
                "gates": len(results),
                "kind": request.kind,
            }
            self._audit(conn, "request.create", f"model:{name}/{version}", None, after)
            self._emit(conn, "request.created", {**self._event_data(model, request), "comment": comment}, model.id)
            if policy.approvals == 0:
                self._apply(conn, model, request, policy, row)
            return self._load(conn, [self._request_row(conn, request_id)])[0]

    def get_request(self, request_id: int) -> TransitionRequest:
        with self._tx(write=False) as conn:
            row = self._request_row(conn, request_id)
            self.require(conn, self._model_row(conn, row.name), "reader", "model.read")
            return self._load(conn, [row])[0]

    def list_requests(
        self,
        model: str | None = None,
        status: str | None = None,
        *,
        version: int | None = None,
        max_results: int = 100,
    ) -> list[TransitionRequest]:
        """Requests, newest first, of one model or of every model the principal may read."""
        if status is not None and status.upper() not in STATUSES:
            raise InvalidInput(f"'status' must be one of {', '.join(STATUSES)}, got {status!r}")
        if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= 1000:
            raise InvalidInput("'max_results' must be between 1 and 1000")
        if version is not None:
            _number(version, "version")
        q = self._select()
        if status is not None:
            q = q.where(transition_requests.c.status == status.upper())
        readable = None if model is not None else self.readable_model_ids()
        if readable is not None:
            q = q.where(transition_requests.c.model_id.in_(readable))
        with self._tx(write=False) as conn:
            if model is not None:
                model_row = self._model_row(conn, model)
                self.require(conn, model_row, "reader", "model.read")
                q = q.where(transition_requests.c.model_id == model_row.id)
                if version is not None:
                    q = q.where(transition_requests.c.version == version)
            rows = conn.execute(q.order_by(transition_requests.c.id.desc()).limit(max_results)).all()
            return self._load(conn, rows)

    def inbox(self) -> list[TransitionRequest]:
        """OPEN requests the principal may approve and has not reviewed yet, oldest first."""
        with self._tx(write=False) as conn:
            reviewed = select(request_reviews.c.request_id).where(request_reviews.c.reviewer == self.actor)
            q = self._select().where(transition_requests.c.status == "OPEN", transition_requests.c.id.not_in(reviewed))
            readable = self.readable_model_ids(conn)
            if readable is not None:
                q = q.where(transition_requests.c.model_id.in_(readable))
            rows = conn.execute(q.order_by(transition_requests.c.id)).all()
            if not rows:
                return []
            scopes = self._approver_scopes(conn)
            authors = {
                (m, v): a
                for m, v, a in conn.execute(
                    select(model_versions.c.model_id, model_versions.c.version, model_versions.c.created_by).where(
                        model_versions.c.model_id.in_({r.model_id for r in rows})
                    )
                )
            }
            mine = []
            for r in rows:
                policy = self._policy(conn, r.target_kind, r.target)
                if (
                    policy is not None
                    and self._ineligible(policy, r, authors.get((r.model_id, r.version)), scopes) is None
                ):
                    mine.append(r)
            return self._load(conn, mine)

    def _review(self, request_id: int, decision: str, comment: str) -> TransitionRequest:
        """Record an approval or rejection; an approval that completes the request applies it."""
        comment = _text(comment, "comment")
        stale: str | None = None
        with self._tx(write=True) as conn:
            request, model = self._locked(conn, request_id)
            action = f"request.{decision}"
            target = f"model:{model.name}/{request.version}"
            self.require(conn, model, "reader", action)
            if request.status != "OPEN":
                raise InvalidState(
                    f"request {request_id} is {request.status}"
                    + (f" ({request.status_message})" if request.status_message else "")
                    + f"; only OPEN requests can be {decision}d"
                )
            policy = self._policy(conn, request.target_kind, request.target)
            version = conn.execute(
                queries.version_select().where(
                    model_versions.c.model_id == model.id, model_versions.c.version == request.version
                )
            ).one_or_none()
            if policy is None:
                stale = self._close_unprotected(conn, model, request, action, target)
                if decision == "reject":
                    return self._load(conn, [self._request_row(conn, request_id)])[0]
            else:
                why = self._ineligible(
                    policy, request, None if version is None else version.created_by, self._approver_scopes(conn)
                )
                if why is not None:
                    raise Refused(why, action=action, target=target)
                done = conn.execute(
                    select(request_reviews.c.decision).where(
                        request_reviews.c.request_id == request_id, request_reviews.c.reviewer == self.actor
                    )
                ).scalar_one_or_none()
                if done is not None:
                    raise InvalidState(f"{self.actor!r} already {done}d request {request_id}")
                if decision == "reject":
                    return self._reject(conn, model, request, version, comment)
                stale, fresh = self._staleness(conn, model, request, policy, version)
                if stale is not None:
                    self._set_status(conn, request_id, "STALE", stale, gates=_dump(fresh))
                    self._audit(conn, "request.stale", target, {"status": "OPEN"}, {"status": "STALE", "reason": stale})
                else:
                    assert version is not None
                    return self._approve(conn, model, request, policy, version, comment)
        # The STALE mark is committed above; the approval itself is refused.
        raise InvalidState(f"request {request_id} is stale and was closed: {stale}; open a new request")

    def _close_unprotected(self, conn: Connection, model: Row[Any], request: Row[Any], action: str, target: str) -> str:
        """Close a request whose target lost its policy (STALE): its requester, a manager or an admin may."""
        label = f"{request.target_kind} {request.target!r}"
        if request.requester != self.actor and self.model_role(conn, model.id) < RANK["manager"]:
            raise Refused(
                f"{self.actor!r} may not review request {request.id}: {label} has no policy any more, so only "
                f"its requester ({request.requester!r}), a manager of {model.name!r} or an admin may close it",
                action=action,
                target=target,
            )
        why = f"{label} has no policy any more (closed by {self.actor}); move the version directly"
        self._set_status(conn, request.id, "STALE", why)
        self._audit(conn, "request.stale", target, {"status": "OPEN"}, {"status": "STALE", "reason": why})
        return why

    def _reject(
        self, conn: Connection, model: Row[Any], request: Row[Any], version: Row[Any] | None, comment: str
    ) -> TransitionRequest:
        now = now_ms()
        target = f"model:{model.name}/{request.version}"
        conn.execute(
            insert(request_reviews).values(
                request_id=request.id, reviewer=self.actor, decision="reject", comment=comment, timestamp=now
            )
        )
        self._set_status(
            conn, request.id, "REJECTED", f"rejected by {self.actor}" + (f": {comment}" if comment else "")
        )
        if version is not None:
            self._comment(conn, version.id, comment, request.id, now)
        self._audit(conn, "request.reject", target, {"status": "OPEN"}, {"status": "REJECTED", "comment": comment})
        self._emit(conn, "request.rejected", {**self._event_data(model, request), "comment": comment}, model.id)
        return self._load(conn, [self._request_row(conn, request.id)])[0]

    def _approve(
        self, conn: Connection, model: Row[Any], request: Row[Any], policy: Policy, version: Row[Any], comment: str
    ) -> TransitionRequest:
        now = now_ms()
        target = f"model:{model.name}/{request.version}"
        conn.execute(
            insert(request_reviews).values(
                request_id=request.id, reviewer=self.actor, decision="approve", comment=comment, timestamp=now
            )
        )
        self._comment(conn, version.id, comment, request.id, now)
        self._audit(conn, "request.approve", target, None, {"request": request.id, "comment": comment})
        self._emit(conn, "request.approved", {**self._event_data(model, request), "comment": comment}, model.id)
        if self._approvals(conn, request, policy, version.created_by, now) >= policy.approvals:
            self._apply(conn, model, request, policy, version)
        else:
            conn.execute(
                update(transition_requests)
                .where(transition_requests.c.id == request.id)
                .values(last_updated_timestamp=now)
            )
        return self._load(conn, [self._request_row(conn, request.id)])[0]

    def _staleness(
        self,
        conn: Connection,
        model: Row[Any],
        request: Row[Any],
        policy: Policy,
        version: Row[Any] | None,
    ) -> tuple[str | None, list[GateResult]]:
        """What changed since the request was made (None: nothing), and the gates as they are now."""
        label = f"{request.target_kind} {request.target!r}"
        if version is None:
            return f"version {request.version} of {model.name!r} no longer exists", []
        if version.status != "READY":
            return f"version {request.version} is {version.status}", []
        champion = self._holder(conn, model.id, request.target_kind, request.target)
        now_holder = None if champion is None else champion.version
        if request.target_kind == "stage" and version.stage == request.target:
            return f"version {request.version} is already in {label}", []
        if now_holder != request.champion:
            was = "none" if request.champion is None else f"version {request.champion}"
            now = "none" if now_holder is None else f"version {now_holder}"
            return f"the champion of {request.target} is now {now} (was {was})", []
        fresh = self._evaluate(conn, policy, version, champion, rollback=request.kind == "rollback")
        failed = rules.failures(fresh)
        if failed:
            return f"the policy of {label} no longer holds: {failed}", fresh
        before = {(g.gate, g.value, g.threshold) for g in _results(request.gates)}
        if before != {(g.gate, g.value, g.threshold) for g in fresh}:
            changed = [
                f"{g.gate} now {g.value:g}"
                for g in fresh
                if (g.gate, g.value, g.threshold) not in before and g.value is not None
            ]
            return "the values the gates saw have changed" + (f" ({'; '.join(changed)})" if changed else ""), fresh
        return None, fresh

    def _approvals(self, conn: Connection, request: Row[Any], policy: Policy, author: str, now: int) -> int:
        """Approvals that count now: younger than ``approval_ttl_days`` and by reviewers still eligible.

        The caller's own approval was checked in this transaction; every other reviewer is checked
        again as the user is now (disabled, groups, grants), so a revoked approver's approval lapses.
        """
        q = (
            select(request_reviews.c.reviewer, users.c.id, users.c.kind, users.c.is_admin, users.c.disabled)
            .select_from(request_reviews.outerjoin(users, users.c.name == request_reviews.c.reviewer))
            .where(request_reviews.c.request_id == request.id, request_reviews.c.decision == "approve")
            .where(request_reviews.c.reviewer != self.actor)
        )
        if policy.approval_ttl_days:
            q = q.where(request_reviews.c.timestamp >= now - policy.approval_ttl_days * DAY_MS)
        reviewers: dict[str, tuple[bool, list[str]]] = {}  # name -> (admin, grant subjects)
        rows = conn.execute(q).all()
        member_of: dict[int, list[str]] = defaultdict(list)
        user_ids = [r.id for r in rows if r.id is not None]
        if user_ids:
            for user_id, group in conn.execute(
                select(group_members.c.user_id, groups.c.name)
                .join(groups, groups.c.id == group_members.c.group_id)
                .where(group_members.c.user_id.in_(user_ids))
            ):
                member_of[user_id].append(group)
        for r in rows:
            if r.id is None:
                # No such user: deleted, or a local admin of an embedded process without tokens. Only
                # a local admin, who could lift the policy anyway, counts those (as admins, no groups).
                if self.principal.kind == "local":
                    reviewers[r.reviewer] = (True, [f"user:{r.reviewer}", EVERYONE])
            elif not r.disabled and r.kind != "service":
                subjects = [f"user:{r.reviewer}", *(f"group:{g}" for g in member_of[r.id]), EVERYONE]
                reviewers[r.reviewer] = (bool(r.is_admin), subjects)
        wanted = f"{request.target_kind}:{request.target}"
        holders: set[str] = set()
        if reviewers:
            for subject, scope in conn.execute(
                select(grants.c.subject, grants.c.scope).where(
                    grants.c.role == "approver",
                    grants.c.subject.in_({s for _, subjects in reviewers.values() for s in subjects}),
                    grants.c.model_id.is_(None) | (grants.c.model_id == request.model_id),
                )
            ):
                if self._scope(scope) == wanted:
                    holders.add(subject)
        counted = 1  # the caller's approval, just checked
        for name, (admin, subjects) in reviewers.items():
            if policy.forbid_self_approval and name in (request.requester, author):
                continue
            if policy.approvers and not set(policy.approvers) & set(subjects):
                continue
            if admin or holders & set(subjects):
                counted += 1
        return counted

    def approve(self, request_id: int, comment: str = "") -> TransitionRequest:
        """Approve a request; the approval that completes it moves the version (gates re-checked first)."""
        return self._review(request_id, "approve", comment)

    def reject(self, request_id: int, comment: str = "") -> TransitionRequest:
        """Reject a request (eligible approvers): it closes as REJECTED."""
        return self._review(request_id, "reject", comment)

    def cancel(self, request_id: int, comment: str = "") -> TransitionRequest:
        """Withdraw an OPEN request (its requester or an admin)."""
        comment = _text(comment, "comment")
        with self._tx(write=True) as conn:
            request, model = self._locked(conn, request_id)
            target = f"model:{model.name}/{request.version}"
            if request.requester != self.actor and not self.principal.is_admin:
                raise Refused(
                    f"{self.actor!r} may not cancel request {request_id}: only its requester "
                    f"({request.requester!r}) or an admin may",
                    action="request.cancel",
                    target=target,
                )
            if request.status != "OPEN":
                raise InvalidState(f"request {request_id} is {request.status}; only OPEN requests can be cancelled")
            self._set_status(
                conn, request_id, "CANCELLED", f"cancelled by {self.actor}" + (f": {comment}" if comment else "")
            )
            self._audit(conn, "request.cancel", target, {"status": "OPEN"}, {"status": "CANCELLED", "comment": comment})
            self._emit(conn, "request.cancelled", {**self._event_data(model, request), "comment": comment}, model.id)
            return self._load(conn, [self._request_row(conn, request_id)])[0]

    # -- comments -------------------------------------------------------------------

    def add_comment(self, name: str, version: int, body: str) -> Comment:
        """Add to a version's comment thread (readers of the model may comment)."""
        body = _text(body, "body", required=True)
        _number(version, "version")
        now = now_ms()
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name)
            self.require(conn, model, "reader", "comment.add")
            row = self._registry._version_row(conn, model, version)
            comment_id = conn.execute(
                insert(version_comments)
                .values(version_id=row.id, author=self.actor, body=body, request_id=None, timestamp=now)
                .returning(version_comments.c.id)
            ).scalar_one()
            self._audit(conn, "comment.add", f"model:{name}/{version}", None, {"comment": comment_id})
        return Comment(id=comment_id, model=name, version=version, author=self.actor, body=body, timestamp=now)

    def list_comments(self, name: str, version: int) -> list[Comment]:
        """A version's comment thread, oldest first (request and review comments included)."""
        _number(version, "version")
        with self._tx(write=False) as conn:
            model = self._model_row(conn, name)
            self.require(conn, model, "reader", "model.read")
            row = self._registry._version_row(conn, model, version)
            rows = conn.execute(
                select(version_comments).where(version_comments.c.version_id == row.id).order_by(version_comments.c.id)
            ).all()
        return [
            Comment(
                id=r.id,
                model=name,
                version=version,
                author=r.author,
                body=r.body,
                request_id=r.request_id,
                timestamp=r.timestamp,
            )
            for r in rows
        ]

    # -- rollback and placement -----------------------------------------------------

    def _previous(self, conn: Connection, model: Row[Any], kind: str, target: str) -> tuple[int | None, Row[Any]]:
        """The current holder's number and the row of the READY version that held the place before it."""
        current = self._holder(conn, model.id, kind, target)
        events = conn.execute(
            select(model_events)
            .where(model_events.c.model_id == model.id, model_events.c.kind == kind)
            .where(model_events.c.subject == (target if kind == "alias" else ""))
            .order_by(model_events.c.id.desc())
        ).all()
        if kind == "stage":
            holders = set(
                conn.execute(
                    select(model_versions.c.version).where(
                        model_versions.c.model_id == model.id, model_versions.c.stage == target
                    )
                ).scalars()
            )
            candidates = [e.version for e in events if e.before == target and e.version not in holders]
        else:
            candidates = [int(e.before) for e in events if e.before is not None and e.before != e.after]
            candidates = [v for v in candidates if current is None or v != current.version]
        for number in candidates:
            row = conn.execute(
                queries.version_select().where(
                    model_versions.c.model_id == model.id,
                    model_versions.c.version == number,
                    model_versions.c.status == "READY",
                )
            ).one_or_none()
            if row is not None:
                return (None if current is None else current.version), row
        raise NotFound(f"no earlier version of {model.name!r} held {kind} {target!r}; nothing to roll back to")

    def rollback(self, name: str, *, stage: str | None = None, alias: str | None = None, comment: str = "") -> Rollback:
        """Put back the version that held a stage or alias before the current one.

        Under a policy this opens a request (with its gates); without one an editor moves it directly.
        """
        kind, target = self._one_target(stage, alias)
        comment = _text(comment, "comment")
        with self._tx(write=False) as conn:
            model = self._model_row(conn, name)
            self.require(conn, model, "editor", "request.rollback")
            current, previous = self._previous(conn, model, kind, target)
            protected = self._policy(conn, kind, target) is not None
        why = comment or f"rollback of {kind} {target!r} to version {previous.version}"
        if protected:
            request = self._create_request(name, previous.version, stage=stage, alias=alias, comment=why, rollback=True)
            return Rollback(
                model=name,
                target_kind=kind,
                target=target,
                from_version=current,
                to_version=previous.version,
                applied=request.status == "APPLIED",
                request=request,
            )
        if kind == "stage":
            self._registry.transition_stage(name, previous.version, target, archive_existing=True, comment=why)
        else:
            self._registry.set_alias(name, target, previous.version, comment=why)
        return Rollback(
            model=name, target_kind=kind, target=target, from_version=current, to_version=previous.version, applied=True
        )

    def placement(
        self,
        name: str,
        *,
        stage: str | None = None,
        alias: str | None = None,
        at: int | str | datetime | None = None,
    ) -> Placement:
        """Which version(s) held a stage or alias at ``at`` (ms or datetime; default now), since when, who, why."""
        kind, target = self._one_target(stage, alias)
        moment = rules.to_ms(at, now_ms())
        with self._tx(write=False) as conn:
            model = self._model_row(conn, name)
            self.require(conn, model, "reader", "model.read")
            events = conn.execute(
                select(model_events)
                .where(
                    model_events.c.model_id == model.id,
                    model_events.c.kind == kind,
                    model_events.c.timestamp <= moment,
                )
                .order_by(model_events.c.id)
            ).all()
            created: dict[int, int] = {
                number: timestamp
                for number, timestamp in conn.execute(
                    select(model_versions.c.version, model_versions.c.creation_timestamp).where(
                        model_versions.c.model_id == model.id, model_versions.c.creation_timestamp <= moment
                    )
                )
            }
        base = {"model": name, "target_kind": kind, "target": target, "at": moment}
        if kind == "alias":
            last = next((e for e in reversed(events) if e.subject == target), None)
            if last is None:
                return Placement(**base)
            held = [] if last.after is None else [int(last.after)]
            return Placement(
                **base,
                versions=held,
                since=last.timestamp,
                actor=last.actor,
                comment=last.comment,
                request_id=last.request_id,
            )
        # Versions start in the initial stage without an event; each stage event moves one.
        where: dict[int, str] = {v: self.initial_stage for v in created}
        entered: dict[int, Row[Any]] = {}
        for e in events:
            if e.version is None:
                continue
            where[e.version] = e.after or ""
            if e.after == target:
                entered[e.version] = e
        held = sorted(v for v, s in where.items() if s == target)
        if not held:
            left = next((e for e in reversed(events) if e.before == target), None)
            return Placement(**base, since=None if left is None else left.timestamp)
        moves = [entered[v] for v in held if v in entered]
        if not moves:
            return Placement(**base, versions=held, since=min(created.get(v, 0) for v in held))
        latest = max(moves, key=lambda e: e.id)
        return Placement(
            **base,
            versions=held,
            since=latest.timestamp,
            actor=latest.actor,
            comment=latest.comment,
            request_id=latest.request_id,
        )
