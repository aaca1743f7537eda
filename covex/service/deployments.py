"""Deployments: the scoring servers and batch runs of a version, recorded by the processes themselves.

Recording takes only the reader role on the model (a serving process reads the registry with a
reader's token, and says where it runs); changing a record takes being the one who started it, or
the editor role. Every change of status or version is audited and emits its webhook event; a
heartbeat that changes nothing else is neither (it would flood both).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from covex.domain import deployments as dom
from covex.domain.deployments import Deployment
from covex.domain.errors import InvalidInput, InvalidState, NotFound
from covex.domain.names import validate_id, validate_model_name, validate_text
from covex.domain.policy import Policy, serving_problem
from covex.service.base import ServiceBase, now_ms
from covex.store.schema import deployments, models

_SELECT = select(deployments, models.c.name.label("model_name")).select_from(
    deployments.join(models, models.c.id == deployments.c.model_id)
)
MAX_LISTED = 1000


def _entity(row: Any, now: int) -> Deployment:
    return Deployment(
        id=row.id,
        name=row.model_name,
        version=row.version,
        kind=row.kind,
        target=row.target,
        status=row.status,
        message=row.message,
        started_by=row.started_by,
        started_at=row.started_at,
        stopped_at=row.stopped_at,
        heartbeat_at=row.heartbeat_at,
        rows=row.rows,
        duration_s=row.duration_s,
        log_location=row.log_location,
        stale=dom.is_stale(row.status, row.heartbeat_at, now),
    )


def _rows(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"'rows' must be a non-negative integer, got {value!r}")
    return value


def _duration(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise InvalidInput(f"'duration_s' must be a non-negative number of seconds, got {value!r}")
    return float(value)


class DeploymentService(ServiceBase):
    """Record, update and list where versions run."""

    def start_deployment(
        self,
        name: str,
        version: int,
        kind: str,
        target: str,
        *,
        status: str | None = None,
        message: str = "",
        log_location: str | None = None,
    ) -> Deployment:
        """Record that ``version`` of ``name`` starts running as ``kind`` at ``target`` (a URL, a path),
        writing its inference log to ``log_location`` (a folder or URL) when it keeps one."""
        validate_model_name(name)
        validate_id(version, "version")
        kind = dom.check_kind(kind)
        target = dom.check_printable(validate_text(target, "target", dom.MAX_TARGET, required=True), "target")
        message = dom.check_printable(validate_text(message, "message", dom.MAX_MESSAGE), "message", lines=True)
        status = dom.FIRST_STATUS[kind] if status is None else dom.check_status(kind, status)
        if log_location is not None:
            log_location = dom.check_printable(
                validate_text(log_location, "log_location", dom.MAX_TARGET, required=True), "log_location"
            )
        if status in dom.ENDED:
            raise InvalidInput(f"'status' of a new deployment cannot be {status}: it has not run yet")
        with self._tx(write=True) as conn:
            model, row = self._version_for(conn, name, version, "reader", "deployment.start")
            if row.status != "READY":
                raise InvalidState(f"version {version} of {name!r} is {row.status}; only READY versions deploy")
            now = now_ms()
            new_id = conn.execute(
                insert(deployments).returning(deployments.c.id),
                {
                    "model_id": model.id,
                    "version_id": row.id,
                    "version": version,
                    "kind": kind,
                    "target": target,
                    "status": status,
                    "message": message,
                    "started_by": self.actor,
                    "started_at": now,
                    "heartbeat_at": now,
                    "log_location": log_location,
                },
            ).scalar_one()
            found = self._load(conn, new_id, now)
            self._audit(conn, "deployment.start", f"model:{name}/{version}", None, _summary(found))
            self._emit(conn, "deployment.started", _payload(found), model.id)
            return found

    def update_deployment(
        self,
        deployment_id: int,
        *,
        status: str | None = None,
        version: int | None = None,
        message: str | None = None,
        rows: int | None = None,
        duration_s: float | None = None,
    ) -> Deployment:
        """Heartbeat, and change what is given: the status, the version it serves now (a swap), counts."""
        validate_id(deployment_id, "deployment_id")
        if version is not None:
            validate_id(version, "version")
        if message is not None:
            message = dom.check_printable(validate_text(message, "message", dom.MAX_MESSAGE), "message", lines=True)
        rows, duration_s = _rows(rows), _duration(duration_s)
        with self._tx(write=True) as conn:
            now = now_ms()
            current = self._load(conn, deployment_id, now)
            model = self._model_row(conn, current.name, lock=True)
            if current.started_by != self.actor:
                self.require(conn, model, "editor", "deployment.update")
            dom.check_open(current.status, deployment_id)
            new_status = None if status is None else dom.check_status(current.kind, status)
            if new_status is not None:
                dom.check_transition(current.status, new_status, deployment_id)
            if current.kind != "batch" and (rows is not None or duration_s is not None):
                raise InvalidInput("'rows' and 'duration_s' belong to batch runs, not to a serving deployment")
            values: dict[str, Any] = {"heartbeat_at": now}
            if new_status is not None and new_status != current.status:
                values["status"] = new_status
                if new_status in dom.ENDED:
                    values["stopped_at"] = now
            if message is not None:
                values["message"] = message
            if rows is not None:
                values["rows"] = rows
            if duration_s is not None:
                values["duration_s"] = duration_s
            swapped = version is not None and version != current.version
            if swapped:
                if current.kind != "serving":
                    raise InvalidInput("only a serving deployment changes version; a batch run scores one")
                assert version is not None
                row = self._version_row(conn, model, version)
                if row.status != "READY":
                    raise InvalidState(f"version {version} of {current.name!r} is {row.status}; it cannot serve")
                values["version_id"], values["version"] = row.id, version
            conn.execute(update(deployments).where(deployments.c.id == deployment_id).values(**values))
            found = self._load(conn, deployment_id, now)
            if swapped:
                target = f"model:{current.name}/{version}"
                self._audit(conn, "deployment.swap", target, {"version": current.version}, {"version": version})
                self._emit(conn, "deployment.swapped", {**_payload(found), "previous": current.version}, model.id)
            if "status" in values:
                target = f"model:{found.name}/{found.version}"
                self._audit(conn, "deployment.status", target, _summary(current), _summary(found))
                event = dom.EVENT_OF_STATUS[found.status]
                if event is not None:
                    self._emit(conn, event, _payload(found), model.id)
            return found

    def get_deployment(self, deployment_id: int) -> Deployment:
        validate_id(deployment_id, "deployment_id")
        with self._tx(write=False) as conn:
            found = self._load(conn, deployment_id, now_ms())
            self.require(conn, self._model_row(conn, found.name, lock=False), "reader", "deployment.read")
            return found

    def list_deployments(
        self, name: str | None = None, version: int | None = None, *, active: bool = False
    ) -> list[Deployment]:
        """Deployments, newest first: of one model (and version), or of every model the principal reads.

        ``active`` keeps those running and heard from recently (not ended, not stale).
        """
        if version is not None:
            validate_id(version, "version")
            if name is None:
                raise InvalidInput("'version' needs the model's 'name'")
        if not isinstance(active, bool):
            raise InvalidInput(f"'active' must be true or false, got {active!r}")
        q = _SELECT.order_by(deployments.c.id.desc())
        with self._tx(write=False) as conn:
            if name is not None:
                model = self._model_for(conn, name, "reader", "deployment.read", lock=False)
                q = q.where(deployments.c.model_id == model.id)
                if version is not None:  # a deleted version's history too: numbers are never reused
                    q = q.where(deployments.c.version == version)
            else:
                readable = self.readable_model_ids(conn)
                if readable is not None:
                    q = q.where(deployments.c.model_id.in_(readable))
            if active:
                q = q.where(deployments.c.status.not_in(sorted(dom.ENDED)))
            now = now_ms()
            found = [_entity(r, now) for r in conn.execute(q.limit(MAX_LISTED))]
        return [d for d in found if d.active] if active else found

    def serving_deployments(
        self, conn: Connection, *, version_id: int | None = None, model_id: int | None = None
    ) -> list[Deployment]:
        """The active serving deployments of one version or model (what a delete must not pull from under)."""
        now = now_ms()
        q = _SELECT.where(deployments.c.kind == "serving", deployments.c.status.not_in(sorted(dom.ENDED)))
        if version_id is not None:
            q = q.where(deployments.c.version_id == version_id)
        if model_id is not None:
            q = q.where(deployments.c.model_id == model_id)
        return [d for d in (_entity(r, now) for r in conn.execute(q)) if d.active]

    def refuse_if_serving(
        self, conn: Connection, policy: Policy | None, target: str, version: Any, what: str, then: str = ""
    ) -> None:
        """Raise ``InvalidState`` when ``version`` (a row) may not enter stage ``target`` under the policy's
        ``not_while_serving`` because a serving deployment runs it (``then`` ends the message)."""
        if policy is None or not policy.not_while_serving or version.stage == target:
            return
        serving = [f"deployment {d.id} at {d.target}" for d in self.serving_deployments(conn, version_id=version.id)]
        problem = serving_problem(policy, target, version.stage, what, serving)
        if problem is not None:
            raise InvalidState(f"{problem} (the policy of {policy.label}); stop it or let it swap first{then}")

    def _load(self, conn: Connection, deployment_id: int, now: int) -> Deployment:
        row = conn.execute(_SELECT.where(deployments.c.id == deployment_id)).one_or_none()
        if row is None:
            raise NotFound(f"deployment {deployment_id} does not exist")
        return _entity(row, now)


def _summary(d: Deployment) -> dict[str, Any]:
    return {"id": d.id, "kind": d.kind, "target": d.target, "status": d.status, "version": d.version}


def _payload(d: Deployment) -> dict[str, Any]:
    return {
        "model": d.name,
        "version": d.version,
        "deployment": d.id,
        "kind": d.kind,
        "target": d.target,
        "status": d.status,
        "message": d.message,
    }


__all__ = ["DeploymentService"]
