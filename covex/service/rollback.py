"""Rollback, and which version held a stage or alias at a moment.

A rollback puts back the version that held a place before the current one: under a policy
it opens a request (the same approvals and gates, except those comparing with the champion,
and not the stage order: the version held the place before); without one it moves directly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from covex.domain import policy as rules
from covex.domain.errors import NotFound
from covex.domain.policy import Placement, Rollback
from covex.service.base import now_ms
from covex.service.policies import applicable_policy
from covex.service.requests import RequestService, text
from covex.store import queries
from covex.store.schema import model_events, model_versions


class RollbackService(RequestService):
    """Rollback of a stage or alias, and placement at a moment."""

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
        comment = text(comment, "comment")
        with self._tx(write=False) as conn:
            model = self._model_for(conn, name, "editor", "request.rollback", lock=False)
            current, previous = self._previous(conn, model, kind, target)
            protected = applicable_policy(conn, model, kind, target) is not None
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
            self._placement.transition_stage(name, previous.version, target, archive_existing=True, comment=why)
        else:
            self._placement.set_alias(name, target, previous.version, comment=why)
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
            model = self._model_for(conn, name, "reader", "model.read", lock=False)
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
