"""Placement: stage and alias moves and their history.

Direct moves (``transition_stage``, ``set_alias``) check who may make them and whether a
policy protects the target; ``move_stage`` and ``move_alias`` make a move inside a caller's
transaction and are shared with approved requests (``covex.service.approvals``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from covex.domain.entities import ModelEvent, ModelVersion
from covex.domain.errors import InvalidInput, InvalidState, NotFound
from covex.domain.names import MAX_COMMENT_LENGTH, validate_alias, validate_text
from covex.domain.policy import order_problem
from covex.service.base import Refused, ServiceBase, now_ms
from covex.service.deployments import DeploymentService
from covex.service.policies import applicable_policy
from covex.service.scans import ScanService
from covex.service.signing import SigningService
from covex.store.schema import model_aliases, model_events, model_versions

MAX_RECENT = 1000


class PlacementService(ServiceBase):
    """Which stage each version is in and which version each alias names, with the history of both."""

    def transition_stage(
        self, name: str, version: int, stage: str, *, archive_existing: bool = False, comment: str = ""
    ) -> ModelVersion:
        """Move a READY version to ``stage``; optionally archive the others in it, atomically.

        Editors move versions directly into stages without a policy, and into stages whose
        policy only orders them (``from:``) when the version comes from an allowed stage; any
        other policy is met only through an approved request (``approvals``).
        """
        target = self.stage(stage)
        comment = validate_text(comment, "comment", MAX_COMMENT_LENGTH)
        if not isinstance(archive_existing, bool):
            raise InvalidInput(f"'archive_existing' must be true or false, got {archive_existing!r}")
        with self._tx(write=True) as conn:
            model, row = self._version_for(conn, name, version, "editor", "stage.transition")
            entering = row.stage != target or archive_existing  # archiving the others changes who holds it too
            policy = applicable_policy(conn, model, "stage", target)
            if policy is not None:
                # The order holds whichever way the version goes in: it is checked first.
                order = order_problem(policy, target, row.stage, f"version {version} of {name!r}")
                if order is not None:
                    raise InvalidState(f"{order} (the policy of {policy.label})")
                self._sibling(DeploymentService).refuse_if_serving(
                    conn, policy, target, row, f"version {version} of {name!r}"
                )
                scan = self._sibling(ScanService).scan_gate(conn, policy, row) if entering else None
                if scan is not None and not scan.passed:
                    raise InvalidState(
                        f"version {version} of {name!r} does not meet the policy of {policy.label}: "
                        f"{scan.gate} ({scan.message})"
                    )
            if entering and policy is not None and not policy.direct:
                raise Refused(
                    f"stage {target!r} is protected by a policy: open a request to move version {version} "
                    f"of {name!r} there (covex requests create {name} {version} --stage {target})",
                    action="stage.transition",
                    target=f"model:{name}/{version}",
                )
            leaving = None if row.stage == target else applicable_policy(conn, model, "stage", row.stage)
            if leaving is not None and not leaving.direct:
                # Taking a version out of a protected stage (retiring it) takes the model's manager.
                self.require(conn, model, "manager", "stage.transition")
            self.move_stage(conn, model, row, target, archive_existing=archive_existing, comment=comment)
            return self._version(conn, self._version_row(conn, model, version))

    def move_stage(
        self,
        conn: Connection,
        model: Row[Any],
        row: Row[Any],
        target: str,
        *,
        archive_existing: bool,
        comment: str = "",
        request_id: int | None = None,
    ) -> None:
        """Move a version to ``target`` in ``conn``'s transaction (checks done by the caller)."""
        if row.status != "READY":
            raise InvalidState(
                f"version {row.version} of {model.name!r} is {row.status}; only READY versions change stage"
            )
        now = now_ms()
        events = [(row.version, row.stage, target)] if row.stage != target else []
        if archive_existing and target not in (self.initial_stage, self.archive_stage):
            others = update(model_versions).where(
                model_versions.c.model_id == model.id,
                model_versions.c.stage == target,
                model_versions.c.id != row.id,
            )
            archived = conn.execute(
                others.values(stage=self.archive_stage, last_updated_timestamp=now).returning(model_versions.c.version)
            ).scalars()
            events += [(n, target, self.archive_stage) for n in archived]
        self._touch_version(conn, row.id, now, stage=target)
        if row.stage != target and applicable_policy(conn, model, "stage", target) is not None:
            self._sibling(SigningService).sign_promotion(conn, model, row, "stage", target, request_id)
        for number, before, after in events:
            record_event(conn, self.actor, model.id, number, "stage", "", before, after, now, comment, request_id)
            where = f"model:{model.name}/{number}"
            self._audit(conn, "stage.transition", where, {"stage": before}, {"stage": after})
            data = {"model": model.name, "version": number, "from": before, "to": after, "comment": comment}
            self._emit(conn, "stage.changed", {**data, "request": request_id}, model.id)
        self._touch_model(conn, model.id, now)

    def set_alias(self, name: str, alias: str, version: int, *, comment: str = "") -> ModelVersion:
        """Point ``alias`` at ``version``, moving it off any other version.

        A protected alias (one with a policy) moves only through an approved request.
        """
        validate_alias(alias, self.stages)
        comment = validate_text(comment, "comment", MAX_COMMENT_LENGTH)
        with self._tx(write=True) as conn:
            model, row = self._version_for(conn, name, version, "editor", "alias.set")
            if (
                applicable_policy(conn, model, "alias", alias) is not None
                and self._alias_target(conn, model.id, alias) != version
            ):
                raise Refused(
                    f"alias {alias!r} is protected by a policy: open a request to point it at version {version} "
                    f"of {name!r} (covex requests create {name} {version} --alias {alias})",
                    action="alias.set",
                    target=f"model:{name}@{alias}",
                )
            self.move_alias(conn, model, row, alias, comment=comment)
            return self._version(conn, self._version_row(conn, model, version))

    def move_alias(
        self,
        conn: Connection,
        model: Row[Any],
        row: Row[Any],
        alias: str,
        *,
        comment: str = "",
        request_id: int | None = None,
    ) -> None:
        """Point ``alias`` at a version in ``conn``'s transaction (checks done by the caller)."""
        if row.status != "READY":
            raise InvalidState(
                f"version {row.version} of {model.name!r} is {row.status}; aliases point at READY versions"
            )
        previous = self._alias_target(conn, model.id, alias)
        conn.execute(delete(model_aliases).where(model_aliases.c.model_id == model.id, model_aliases.c.alias == alias))
        conn.execute(insert(model_aliases).values(model_id=model.id, alias=alias, version_id=row.id))
        now = now_ms()
        if previous != row.version:
            before = None if previous is None else str(previous)
            after = str(row.version)
            record_event(
                conn, self.actor, model.id, row.version, "alias", alias, before, after, now, comment, request_id
            )
            self._audit(
                conn, "alias.set", f"model:{model.name}@{alias}", {"version": previous}, {"version": row.version}
            )
            data = {"model": model.name, "alias": alias, "version": row.version, "previous": previous}
            self._emit(conn, "alias.set", {**data, "comment": comment, "request": request_id}, model.id)
            if applicable_policy(conn, model, "alias", alias) is not None:
                self._sibling(SigningService).sign_promotion(conn, model, row, "alias", alias, request_id)
        self._touch_model(conn, model.id, now)

    def _alias_target(self, conn: Connection, model_id: int, alias: str) -> int | None:
        q = (
            select(model_versions.c.version)
            .join(model_aliases, model_aliases.c.version_id == model_versions.c.id)
            .where(model_aliases.c.model_id == model_id, model_aliases.c.alias == alias)
        )
        return conn.execute(q).scalar_one_or_none()

    def history(self, name: str, version: int | None = None) -> list[ModelEvent]:
        """Stage moves and alias changes of a model (or those touching one version), oldest first."""
        with self._tx(write=False) as conn:
            model = self._model_for(conn, name, "reader", "model.read", lock=False)
            q = select(model_events).where(model_events.c.model_id == model.id)
            if version is not None:
                q = q.where(
                    (model_events.c.version == version)
                    | ((model_events.c.kind == "alias") & (model_events.c.before == str(version)))
                )
            rows = conn.execute(q.order_by(model_events.c.id)).all()
        return [ModelEvent.model_validate({**r._mapping, "name": model.name}) for r in rows]

    def recent_history(self, name: str, limit: int = 100) -> tuple[list[ModelEvent], int]:
        """The ``limit`` newest stage moves and alias changes of a model, newest first, and how many it has."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RECENT:
            raise InvalidInput(f"'limit' must be from 1 to {MAX_RECENT}, got {limit!r}")
        with self._tx(write=False) as conn:
            model = self._model_for(conn, name, "reader", "model.read", lock=False)
            mine = model_events.c.model_id == model.id
            total = conn.execute(select(func.count()).select_from(model_events).where(mine)).scalar_one()
            newest = (
                select(model_events).where(mine).order_by(model_events.c.timestamp.desc(), model_events.c.id.desc())
            )
            rows = conn.execute(newest.limit(limit)).all()
        return [ModelEvent.model_validate({**r._mapping, "name": model.name}) for r in rows], total

    def delete_alias(self, name: str, alias: str) -> None:
        validate_alias(alias, self.stages)
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            # Removing a protected alias takes the model's manager; moving one takes a request.
            protected = applicable_policy(conn, model, "alias", alias) is not None
            self.require(conn, model, "manager" if protected else "editor", "alias.delete")
            previous = self._alias_target(conn, model.id, alias)
            gone = conn.execute(
                delete(model_aliases).where(model_aliases.c.model_id == model.id, model_aliases.c.alias == alias)
            )
            if gone.rowcount == 0:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            now = now_ms()
            record_event(conn, self.actor, model.id, previous, "alias", alias, str(previous), None, now)
            self._touch_model(conn, model.id, now)
            self._audit(conn, "alias.delete", f"model:{name}@{alias}", {"version": previous}, None)
            self._emit(conn, "alias.deleted", {"model": name, "alias": alias, "previous": previous}, model.id)


def record_event(
    conn: Connection,
    actor: str,
    model_id: int,
    version: int | None,
    kind: str,
    subject: str,
    before: str | None,
    after: str | None,
    now: int,
    comment: str = "",
    request_id: int | None = None,
) -> None:
    """Append one stage or alias change to a model's history, in ``conn``'s transaction."""
    conn.execute(
        insert(model_events).values(
            model_id=model_id,
            version=version,
            kind=kind,
            subject=subject,
            before=before,
            after=after,
            actor=actor,
            timestamp=now,
            comment=comment,
            request_id=request_id,
        )
    )
