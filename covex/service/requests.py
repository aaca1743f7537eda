"""Requests to move a version into a protected stage or alias, and a version's comment thread.

A request is judged by the policy that applies to its model when it is made (its gates,
requirements and stage order); the request records that policy: its id, scope and rules.
Reviews (``covex.service.reviews``) apply it once enough approvals count.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from covex.domain import gates as checks
from covex.domain import policy as rules
from covex.domain.entities import ModelVersion
from covex.domain.errors import AlreadyExists, InvalidInput, InvalidState, NotFound
from covex.domain.gates import Candidate, GateResult
from covex.domain.names import MAX_COMMENT_LENGTH, validate_alias, validate_id, validate_text
from covex.domain.policy import Comment, Policy, PolicyRules, Review, TransitionRequest
from covex.domain.uris import ModelRef
from covex.service.base import Refused, now_ms
from covex.service.deployments import DeploymentService
from covex.service.placement import PlacementService
from covex.service.policies import PolicyService, applicable_policy
from covex.service.scans import ScanService
from covex.service.versions import VersionService
from covex.store import queries
from covex.store.schema import (
    evaluations,
    model_aliases,
    model_versions,
    models,
    monitor_results,
    request_reviews,
    transition_requests,
    version_comments,
    version_documents,
)

STATUSES = ("OPEN", "APPLIED", "REJECTED", "CANCELLED", "STALE")


def text(value: object, field: str, *, required: bool = False) -> str:
    return validate_text(value, field, MAX_COMMENT_LENGTH, required=required)


def results(stored: str) -> list[GateResult]:
    return [GateResult.model_validate(g) for g in json.loads(stored or "[]")]


def dump(found: Sequence[GateResult]) -> str:
    return json.dumps([r.model_dump() for r in found])


def _judged_by(stored: str) -> PolicyRules | None:
    body = json.loads(stored or "{}")
    return PolicyRules.model_validate(body) if body else None


class RequestService(PolicyService):
    """Opening, listing and cancelling requests; comments on versions."""

    @property
    def _placement(self) -> PlacementService:
        return self._sibling(PlacementService)

    # -- what gates look at ---------------------------------------------------------

    def _candidate(self, conn: Connection, row: Row[Any], *, evaluations: bool = False) -> Candidate:
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
            monitor_status=conn.execute(
                select(monitor_results.c.status)
                .where(monitor_results.c.version_id == row.id)
                .order_by(monitor_results.c.id.desc())
                .limit(1)
            ).scalar_one_or_none(),
            evaluations=self._evaluations_of(conn, row.id) if evaluations else (),
            name=version.name,
        )

    def _evaluations_of(self, conn: Connection, version_id: int) -> list[dict[str, Any]]:
        """What evaluation gates read of a version's comparisons, newest first."""
        found = conn.execute(
            select(evaluations.c.id, evaluations.c.data_tags, evaluations.c.body, evaluations.c.created_by)
            .where(evaluations.c.version_id == version_id, evaluations.c.kind.in_(("offline", "online")))
            .order_by(evaluations.c.id.desc())
            .limit(50)
        ).all()
        out = []
        for e in found:
            body = json.loads(e.body)
            out.append(
                {
                    "id": e.id,
                    "baseline": body.get("baseline"),
                    "data_tags": json.loads(e.data_tags),
                    "created_by": e.created_by,
                    "against_baseline": body.get("against_baseline") or {},
                }
            )
        return out

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
        found = checks.evaluate(
            policy.gates,
            policy.require,
            self._candidate(conn, row, evaluations=checks.needs_evaluations(policy.gates)),
            None if champion is None or champion.id == row.id else self._candidate(conn, champion),
            rollback=rollback,
        )
        scan = self._sibling(ScanService).scan_gate(conn, policy, row)  # a rollback is scanned like any version
        return found if scan is None else [*found, scan]

    # -- loading --------------------------------------------------------------------

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
        out = []
        for r in rows:
            judged = _judged_by(r.policy)
            out.append(
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
                    policy_id=r.policy_id,
                    policy_scope=r.policy_scope,
                    policy=judged,
                    gates=results(r.gates),
                    reviews=reviews.get(r.id, []),
                    approvals_needed=0 if judged is None else judged.approvals,
                    creation_timestamp=r.creation_timestamp,
                    last_updated_timestamp=r.last_updated_timestamp,
                )
            )
        return out

    @staticmethod
    def _select() -> Any:
        return select(transition_requests, models.c.name).join(models, models.c.id == transition_requests.c.model_id)

    def _request_row(self, conn: Connection, request_id: int) -> Row[Any]:
        validate_id(request_id, "id")
        row = conn.execute(self._select().where(transition_requests.c.id == request_id)).one_or_none()
        if row is None:
            raise NotFound(f"request {request_id} does not exist")
        return row

    def _locked(self, conn: Connection, request_id: int) -> tuple[Row[Any], Row[Any]]:
        """The request and its model, with the model's row locked, the request read after the lock."""
        first = self._request_row(conn, request_id)
        model = self._model_row(conn, first.name, lock=True)
        return self._request_row(conn, request_id), model

    # -- changes --------------------------------------------------------------------

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
            self._placement.move_stage(
                conn,
                model,
                version,
                request.target,
                archive_existing=policy.archive_existing,
                comment=comment,
                request_id=request.id,
            )
        else:
            self._placement.move_alias(conn, model, version, request.target, comment=comment, request_id=request.id)
        self._set_status(conn, request.id, "APPLIED", f"applied by {self.actor}")
        where = f"model:{model.name}/{request.version}"
        self._audit(conn, "request.apply", where, {"request": request.id}, {request.target_kind: request.target})
        self._emit(conn, "request.applied", self._event_data(model, request), model.id)

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

    # -- use cases ------------------------------------------------------------------

    def create_request(
        self, name: str, version: int, *, stage: str | None = None, alias: str | None = None, comment: str = ""
    ) -> TransitionRequest:
        """Ask to move ``version`` into a protected stage or alias; the policy that applies must hold now.

        With a policy needing no approvals the move happens at once (status APPLIED).
        """
        return self._create_request(name, version, stage=stage, alias=alias, comment=comment)

    def move_or_request(
        self, name: str, version: int, stage: str, *, archive_existing: bool = False, comment: str = ""
    ) -> ModelVersion | TransitionRequest:
        """Move ``version`` into ``stage``; where a policy protects the stage, open a request for the move instead
        (its result: the request, or the moved version when the policy needs no approval). Every other refusal
        (leaving a protected stage takes the manager role) stands: only entering a protected stage asks.

        A request already open for the same move is the answer again, so a retried call does not fail differently.
        """
        target = self.stage(stage)
        with self._tx(write=False) as conn:
            model, row = self._version_for(conn, name, version, "editor", "stage.transition", lock=False)
            policy = applicable_policy(conn, model, "stage", target)
            protected = policy is not None and not policy.direct and (row.stage != target or archive_existing)
            found = {"model_id": model.id, "version": version, "kind": "stage", "target": target}
            open_id = conn.execute(_OPEN_REQUEST, found)
            already = open_id.scalar_one_or_none()
        if not protected:
            return self._placement.transition_stage(
                name, version, target, archive_existing=archive_existing, comment=comment
            )
        if already is not None:
            return self.get_request(already)
        request = self._create_request(name, version, stage=target, alias=None, comment=comment)
        if request.status == "APPLIED":
            return self._sibling(VersionService).get_version(ModelRef(name, "version", str(version)))
        return request

    def alias_or_request(
        self, name: str, version: int, alias: str, *, comment: str = ""
    ) -> ModelVersion | TransitionRequest:
        """Point ``alias`` at ``version``; where a policy protects the alias, open a request for it instead (or
        answer the one already open), as ``move_or_request`` does for stages."""
        validate_alias(alias, self.stages)
        with self._tx(write=False) as conn:
            model, _ = self._version_for(conn, name, version, "editor", "alias.set", lock=False)
            protected = (
                applicable_policy(conn, model, "alias", alias) is not None
                and self._placement._alias_target(conn, model.id, alias) != version
            )
            found = {"model_id": model.id, "version": version, "kind": "alias", "target": alias}
            already = conn.execute(_OPEN_REQUEST, found).scalar_one_or_none()
        if not protected:
            return self._placement.set_alias(name, alias, version, comment=comment)
        if already is not None:
            return self.get_request(already)
        request = self._create_request(name, version, stage=None, alias=alias, comment=comment)
        if request.status == "APPLIED":
            return self._sibling(VersionService).get_version(ModelRef(name, "version", str(version)))
        return request

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
        comment = text(comment, "comment")
        validate_id(version, "version")
        now = now_ms()
        with self._tx(write=True) as conn:
            model, row = self._version_for(conn, name, version, "editor", "request.create")
            policy = applicable_policy(conn, model, kind, target)
            label = f"{kind} {target!r}"
            if policy is None:
                how = "covex stages set" if kind == "stage" else "covex aliases set"
                raise InvalidInput(f"{label} has no policy for {name!r}: move version {version} there directly ({how})")
            if row.status != "READY":
                raise InvalidState(f"version {version} of {name!r} is {row.status}; only READY versions move")
            champion = self._holder(conn, model.id, kind, target)
            if (kind == "stage" and row.stage == target) or (champion is not None and champion.id == row.id):
                raise InvalidState(f"version {version} of {name!r} is already in {label}")
            # A rollback returns to a version that held the stage before: the order is not asked again.
            order = (
                None if rollback else rules.order_problem(policy, target, row.stage, f"version {version} of {name!r}")
            )
            if kind == "stage" and order is not None:
                raise InvalidState(f"{order} (the policy of {policy.label})")
            if kind == "stage":
                self._sibling(DeploymentService).refuse_if_serving(
                    conn, policy, target, row, f"version {version} of {name!r}"
                )
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
            found = self._evaluate(conn, policy, row, champion, rollback=rollback)
            if not all(r.passed for r in found):
                raise InvalidState(
                    f"version {version} of {name!r} does not meet the policy of {policy.label}: "
                    f"{checks.failures(found)}"
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
                    gates=dump(found),
                    policy=json.dumps(policy.rules()),
                    policy_id=policy.id,
                    policy_scope=policy.scope_ref,
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
                "gates": len(found),
                "kind": request.kind,
                "policy": policy.id,
                "scope": policy.scope_ref,
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
        requester: str | None = None,
        before: int | None = None,
        max_results: int = 100,
    ) -> list[TransitionRequest]:
        """Requests, newest first, of one model or of every model the principal may read; ``requester`` keeps
        one user's, ``before`` those with a smaller id (the next page after the request with that id)."""
        if status is not None and status.upper() not in STATUSES:
            raise InvalidInput(f"'status' must be one of {', '.join(STATUSES)}, got {status!r}")
        if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= 1000:
            raise InvalidInput("'max_results' must be between 1 and 1000")
        if version is not None:
            validate_id(version, "version")
        q = self._select()
        if before is not None:
            validate_id(before, "before")
            q = q.where(transition_requests.c.id < before)
        if requester is not None:
            q = q.where(transition_requests.c.requester == text(requester, "requester"))
        if status is not None:
            q = q.where(transition_requests.c.status == status.upper())
        readable = None if model is not None else self.readable_model_ids()
        if readable is not None:
            q = q.where(transition_requests.c.model_id.in_(readable))
        with self._tx(write=False) as conn:
            if model is not None:
                model_row = self._model_for(conn, model, "reader", "model.read", lock=False)
                q = q.where(transition_requests.c.model_id == model_row.id)
                if version is not None:
                    q = q.where(transition_requests.c.version == version)
            rows = conn.execute(q.order_by(transition_requests.c.id.desc()).limit(max_results)).all()
            return self._load(conn, rows)

    def cancel(self, request_id: int, comment: str = "") -> TransitionRequest:
        """Withdraw an OPEN request (its requester or an admin)."""
        comment = text(comment, "comment")
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
        body = text(body, "body", required=True)
        validate_id(version, "version")
        now = now_ms()
        with self._tx(write=True) as conn:
            _, row = self._version_for(conn, name, version, "reader", "comment.add", lock=False)
            comment_id = conn.execute(
                insert(version_comments)
                .values(version_id=row.id, author=self.actor, body=body, request_id=None, timestamp=now)
                .returning(version_comments.c.id)
            ).scalar_one()
            self._audit(conn, "comment.add", f"model:{name}/{version}", None, {"comment": comment_id})
        return Comment(id=comment_id, model=name, version=version, author=self.actor, body=body, timestamp=now)

    def list_comments(self, name: str, version: int) -> list[Comment]:
        """A version's comment thread, oldest first (request and review comments included)."""
        validate_id(version, "version")
        with self._tx(write=False) as conn:
            _, row = self._version_for(conn, name, version, "reader", "model.read", lock=False)
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


_OPEN_REQUEST = select(transition_requests.c.id).where(
    transition_requests.c.model_id == bindparam("model_id"),
    transition_requests.c.version == bindparam("version"),
    transition_requests.c.target_kind == bindparam("kind"),
    transition_requests.c.target == bindparam("target"),
    transition_requests.c.status == "OPEN",
)
