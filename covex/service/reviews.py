"""Reviews of requests: who may approve, approving and rejecting, and what makes a request stale.

The approval that completes a request re-checks it under the model's row lock and applies
the move in its own transaction, so two racing approvals apply it once. A request whose model
is now governed by another policy than the one it was judged by, whose gates no longer hold,
or whose version left the stages the target is entered from, turns STALE.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Row, insert, select, tuple_, update

from covex.domain import gates as checks
from covex.domain import policy as rules
from covex.domain.access import EVERYONE, RANK
from covex.domain.errors import InvalidInput, InvalidState
from covex.domain.gates import GateResult
from covex.domain.names import validate_id
from covex.domain.policy import Policy, TransitionRequest
from covex.domain.scopes import covers, resolve, why_not_governing
from covex.service.base import Refused, now_ms
from covex.service.deployments import DeploymentService
from covex.service.policies import applicable_policy, load_policies, model_tag_map
from covex.service.requests import RequestService, dump, results, text
from covex.store import queries
from covex.store.schema import (
    grants,
    group_members,
    groups,
    model_versions,
    request_reviews,
    transition_requests,
    users,
)

DAY_MS = 86_400_000


class ReviewService(RequestService):
    """Approving and rejecting requests, and the inbox of those waiting for the principal."""

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

    # -- reviews --------------------------------------------------------------------

    def inbox(self) -> list[TransitionRequest]:
        """OPEN requests the principal may approve and has not reviewed yet, oldest first."""
        with self._tx(write=False) as conn:
            return self._load(conn, self._waiting(conn))

    def first_waiting(self, max_results: int) -> list[TransitionRequest]:
        """The oldest ``max_results`` requests of the inbox (a page showing a few of many)."""
        if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
            raise InvalidInput(f"'max_results' must be a positive integer, got {max_results!r}")
        with self._tx(write=False) as conn:
            return self._load(conn, self._waiting(conn)[:max_results])

    def may_review(self, request_id: int) -> bool:
        """Whether request ``request_id`` is in the principal's inbox (for showing the approve and reject forms)."""
        validate_id(request_id, "id")
        with self._tx(write=False) as conn:
            return bool(self._waiting(conn, request_id))

    def _waiting(self, conn: Connection, request_id: int | None = None) -> list[Row[Any]]:
        reviewed = select(request_reviews.c.request_id).where(request_reviews.c.reviewer == self.actor)
        q = self._select().where(transition_requests.c.status == "OPEN", transition_requests.c.id.not_in(reviewed))
        if request_id is not None:
            q = q.where(transition_requests.c.id == request_id)
        readable = self.readable_model_ids(conn)
        if readable is not None:
            q = q.where(transition_requests.c.model_id.in_(readable))
        rows = conn.execute(q.order_by(transition_requests.c.id)).all()
        if not rows:
            return []
        scopes = self._approver_scopes(conn)
        # The authors of the requested versions only (a model may hold thousands of versions).
        authors: dict[tuple[int, int], str | None] = {}
        pairs = sorted({(r.model_id, r.version) for r in rows})
        for start in range(0, len(pairs), 500):
            chunk = pairs[start : start + 500]
            q_authors = select(model_versions.c.model_id, model_versions.c.version, model_versions.c.created_by).where(
                tuple_(model_versions.c.model_id, model_versions.c.version).in_(chunk)
            )
            authors.update({(m, v): a for m, v, a in conn.execute(q_authors)})
        # Every policy and the tags of these models, read once: which policy governs each request.
        found = load_policies(conn)
        tags = model_tag_map(conn, {r.model_id for r in rows}) if any(p.scope == "tag" for p in found) else {}
        mine = []
        for r in rows:
            policy = resolve(found, r.name, tags.get(r.model_id, {}), r.target_kind, r.target).policy
            if policy is not None and self._ineligible(policy, r, authors.get((r.model_id, r.version)), scopes) is None:
                mine.append(r)
        return mine

    def _review(self, request_id: int, decision: str, comment: str) -> TransitionRequest:
        """Record an approval or rejection; an approval that completes the request applies it."""
        comment = text(comment, "comment")
        refusal = ""
        with self._tx(write=True) as conn:
            request, model = self._locked(conn, request_id)
            action = f"request.{decision}"
            target = f"model:{model.name}/{request.version}"
            self.require(conn, model, "reader", action)
            if request.status != "OPEN":
                raise InvalidState(
                    f"request {request_id} is {request.status}"
                    + (f" ({request.status_message})" if request.status_message else "")
                    + f"; only OPEN requests can be {'rejected' if decision == 'reject' else 'approved'}"
                )
            policy = applicable_policy(conn, model, request.target_kind, request.target)
            version = conn.execute(
                queries.version_select().where(
                    model_versions.c.model_id == model.id, model_versions.c.version == request.version
                )
            ).one_or_none()
            if policy is None:
                closed = self._close_unprotected(conn, model, request, action, target)
                if decision == "reject":
                    return self._load(conn, [self._request_row(conn, request_id)])[0]
                refusal = f"request {request_id} is stale and was closed: {closed}"
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
                    self._set_status(conn, request_id, "STALE", stale, gates=dump(fresh))
                    self._audit(conn, "request.stale", target, {"status": "OPEN"}, {"status": "STALE", "reason": stale})
                else:
                    assert version is not None
                    return self._approve(conn, model, request, policy, version, comment)
                refusal = f"request {request_id} is stale and was closed: {stale}; open a new request"
        # The STALE mark is committed above; the approval itself is refused.
        raise InvalidState(refusal)

    def _lost_policy(self, conn: Connection, model: Row[Any], request: Row[Any], now: Policy | None) -> str:
        """What became of the policy that judged ``request``, and which governs its target for the model now."""
        label = f"{request.target_kind} {request.target!r}"
        kind, _, scope = request.policy_scope.partition(":")
        whose = rules.scope_label(kind, scope)
        judged = f"the {whose} policy" if request.policy_id is None else f"policy {request.policy_id} ({whose})"
        judged += ", which judged the request,"
        found = load_policies(conn, request.target_kind, request.target)
        # The scope as well as the id: a deleted policy's id can be given again (SQLite reuses the highest).
        then = next((p for p in found if (p.id, p.scope_ref) == (request.policy_id, request.policy_scope)), None)
        if then is None:
            why = "it was deleted"
        else:
            tags = model_tag_map(conn, [model.id])[model.id]
            why = why_not_governing(then, now, model.name, tags)
            # It covered the model when the request was made: a name it no longer covers is a new name.
            if then.scope == "model" and then.model != model.name:
                why = f"{why}, which was renamed {model.name!r}"
            elif then.scope == "pattern" and not covers(then, model.name, tags):
                why = f"{why}: the model was renamed"
        governs = f"policy {now.id} ({now.scope_label}) governs it now" if now else "no policy governs it now"
        return f"{judged} no longer governs {label} for {model.name!r}: {why}; {governs}"

    def _close_unprotected(self, conn: Connection, model: Row[Any], request: Row[Any], action: str, target: str) -> str:
        """Close a request whose target lost its policy (STALE): its requester, a manager or an admin may."""
        change = self._lost_policy(conn, model, request, None)
        if request.requester != self.actor and self.model_role(conn, model.id) < RANK["manager"]:
            raise Refused(
                f"{self.actor!r} may not review request {request.id}: {change}, so only its requester "
                f"({request.requester!r}), a manager of {model.name!r} or an admin may close it",
                action=action,
                target=target,
            )
        why = f"{change} (closed by {self.actor}); move the version directly"
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
            if request.target_kind == "stage":
                # Not a change that makes the request stale: the approval waits until the version stops serving.
                self._sibling(DeploymentService).refuse_if_serving(
                    conn,
                    policy,
                    request.target,
                    version,
                    f"version {request.version} of {model.name!r}",
                    "; the approval is not recorded",
                )
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
        # The scope as well as the id: a deleted policy's id can be given again (SQLite reuses the
        # highest), and a request must never be judged by a policy of another scope.
        if policy.id != request.policy_id or policy.scope_ref != request.policy_scope:
            return self._lost_policy(conn, model, request, policy), []
        order = rules.order_problem(policy, request.target, version.stage, f"version {request.version}")
        if request.target_kind == "stage" and request.kind != "rollback" and order is not None:
            return order, []
        if now_holder != request.champion:
            was = "none" if request.champion is None else f"version {request.champion}"
            now = "none" if now_holder is None else f"version {now_holder}"
            return f"the champion of {request.target} is now {now} (was {was})", []
        fresh = self._evaluate(conn, policy, version, champion, rollback=request.kind == "rollback")
        failed = checks.failures(fresh)
        if failed:
            return f"the policy of {label} no longer holds: {failed}", fresh
        before = {(g.gate, g.value, g.threshold) for g in results(request.gates)}
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
