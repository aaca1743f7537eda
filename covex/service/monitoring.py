"""Monitoring records: each model's monitor config, each version's drift reference, and check results.

The checks themselves run above the SDK (``covex.monitoring``); this service stores what they
need and what they find. Setting a config or a reference and recording a result take the editor
role on the model (a result can hold a promotion back, so a reader may not write one); reading
takes the reader role. A result whose status differs from the version's previous one is audited
as a change and emits its webhook event (``monitor.drift_detected``, ``monitor.performance_degraded``,
``monitor.recovered``); every result is audited.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from covex.domain import monitoring as dom
from covex.domain.documents import check_json
from covex.domain.errors import InvalidInput, NotFound
from covex.domain.monitoring import MonitorResult
from covex.domain.names import validate_id, validate_model_name, validate_text
from covex.service.base import ServiceBase, now_ms
from covex.store.schema import models, monitor_configs, monitor_results, version_documents, worker_leases

MAX_LISTED = 1000
MAX_CONFIG = 64 * 1024
_SELECT = select(monitor_results, models.c.name.label("model_name")).select_from(
    monitor_results.join(models, models.c.id == monitor_results.c.model_id)
)


def _entity(row: Any) -> MonitorResult:
    return MonitorResult(
        id=row.id,
        name=row.model_name,
        version=row.version,
        status=row.status,
        source=row.source,
        rows=row.rows,
        window_start=row.window_start,
        window_end=row.window_end,
        created_at=row.created_at,
        created_by=row.created_by,
        body=json.loads(row.body),
    )


def _window(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise InvalidInput(f"'{field}' must be milliseconds since the epoch, got {value!r}")
    return value


def json_text(body: object, field: str, limit: int) -> str:
    """``body`` (a JSON object) as compact JSON text, refused when it is not storable or longer than ``limit``."""
    if not isinstance(body, Mapping):
        raise InvalidInput(f"'{field}' must be a JSON object")
    check_json(body, field)
    try:
        text = json.dumps(body, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"'{field}' is not valid JSON: {exc}") from None
    if len(text) > limit:
        raise InvalidInput(f"'{field}' is {len(text)} characters as JSON; the limit is {limit}")
    return text


class MonitoringService(ServiceBase):
    """Monitor configs, drift references and check results."""

    # -- config -------------------------------------------------------------------------------

    def set_monitor_config(self, name: str, text: str) -> str:
        """Set ``name``'s monitor config (YAML; empty text: back to the defaults); returns it."""
        validate_model_name(name)
        if not isinstance(text, str):
            raise InvalidInput("'config' must be YAML text")
        if len(text) > MAX_CONFIG:
            raise InvalidInput(f"'config' is {len(text)} characters; the limit is {MAX_CONFIG}")
        text = validate_text(text, "config", MAX_CONFIG)
        dom.parse_monitor_config(text)  # every problem, with its line
        with self._tx(write=True) as conn:
            model = self._model_for(conn, name, "editor", "monitor.config.set")
            before = conn.execute(
                select(monitor_configs.c.body).where(monitor_configs.c.model_id == model.id)
            ).scalar_one_or_none()
            conn.execute(delete(monitor_configs).where(monitor_configs.c.model_id == model.id))
            if text.strip():
                conn.execute(
                    insert(monitor_configs).values(
                        model_id=model.id, body=text, updated_at=now_ms(), updated_by=self.actor
                    )
                )
            self._audit(conn, "monitor.config.set", f"model:{name}", before, text or None)
        return text

    def get_monitor_config(self, name: str) -> str:
        """``name``'s monitor config as written ("" when it has none: the defaults apply)."""
        validate_model_name(name)
        with self._tx(write=False) as conn:
            model = self._model_for(conn, name, "reader", "monitor.config.read", lock=False)
            body = conn.execute(
                select(monitor_configs.c.body).where(monitor_configs.c.model_id == model.id)
            ).scalar_one_or_none()
        return body or ""

    # -- reference ------------------------------------------------------------------------------

    def set_reference(self, name: str, version: int, reference: Mapping[str, Any]) -> dict[str, Any]:
        """Store (or replace) the drift reference of a READY version: what checks compare against."""
        validate_model_name(name)
        validate_id(version, "version")
        dom.check_reference(reference)
        text = json_text(reference, "reference", dom.MAX_RESULT_LENGTH)
        with self._tx(write=True) as conn:
            _, row = self._version_for(conn, name, version, "editor", "monitor.reference.set")
            if row.status != "READY":
                raise InvalidInput(
                    f"version {version} of {name!r} is {row.status}; only a READY version has a reference"
                )
            where = (version_documents.c.version_id == row.id, version_documents.c.kind == "reference")
            replaced = conn.execute(select(func.count()).select_from(version_documents).where(*where)).scalar_one()
            conn.execute(delete(version_documents).where(*where))
            now = now_ms()
            conn.execute(
                insert(version_documents).values(
                    version_id=row.id, kind="reference", body=text, last_updated_timestamp=now
                )
            )
            self._touch_version(conn, row.id, now)
            summary = {"rows": reference.get("rows"), "columns": sorted(reference.get("columns") or {})}
            self._audit(conn, "monitor.reference.set", f"model:{name}/{version}", {"replaced": bool(replaced)}, summary)
        return dict(reference)

    # -- results --------------------------------------------------------------------------------

    def record_result(
        self,
        name: str,
        version: int,
        *,
        status: str,
        source: str,
        rows: int,
        body: Mapping[str, Any],
        window_start: int | None = None,
        window_end: int | None = None,
    ) -> MonitorResult:
        """Record one check of ``version``; a change of status is audited as such and announced."""
        validate_model_name(name)
        validate_id(version, "version")
        status = dom.check_status(status)
        source = validate_text(source, "source", dom.MAX_SOURCE, required=True)
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise InvalidInput(f"'rows' must be a non-negative integer, got {rows!r}")
        start, end = _window(window_start, "window_start"), _window(window_end, "window_end")
        if start is not None and end is not None and end < start:
            raise InvalidInput("'window_end' is before 'window_start'")
        dom.check_result_body(body)
        text = json_text(body, "body", dom.MAX_RESULT_BODY)
        with self._tx(write=True) as conn:
            model, row = self._version_for(conn, name, version, "editor", "monitor.result.record")
            earlier = (
                select(monitor_results.c.status)
                .where(monitor_results.c.model_id == model.id, monitor_results.c.version == version)
                .order_by(monitor_results.c.id.desc())
                .limit(1)
            )
            previous = conn.execute(earlier).scalar_one_or_none()
            # Events compare judged statuses: a quiet night (NOT_ENOUGH_DATA) between two DRIFTs is no new drift.
            judged = conn.execute(earlier.where(monitor_results.c.status != "NOT_ENOUGH_DATA")).scalar_one_or_none()
            new_id = conn.execute(
                insert(monitor_results).returning(monitor_results.c.id),
                {
                    "model_id": model.id,
                    "version_id": row.id,
                    "version": version,
                    "status": status,
                    "source": source,
                    "rows": rows,
                    "window_start": start,
                    "window_end": end,
                    "created_at": now_ms(),
                    "created_by": self.actor,
                    "body": text,
                },
            ).scalar_one()
            found = self._load(conn, new_id)
            target = f"model:{name}/{version}"
            summary = {"id": found.id, "status": status, "rows": rows, "source": source}
            self._audit(conn, "monitor.result", target, None if previous is None else {"status": previous}, summary)
            event = dom.event_for_change(judged, status)
            if event is not None:
                payload = {
                    "model": name,
                    "version": version,
                    "result": found.id,
                    "status": status,
                    "previous": judged,
                    "rows": rows,
                    "source": source,
                    "drifted": body.get("drifted", []),
                    "degraded": body.get("degraded", []),
                }
                self._emit(conn, event, payload, model.id)
            return found

    def list_results(self, name: str, version: int | None = None, *, max_results: int = 100) -> list[MonitorResult]:
        """Results of ``name`` (one version's, or every version's), newest first."""
        validate_model_name(name)
        if version is not None:
            validate_id(version, "version")
        if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_LISTED:
            raise InvalidInput(f"'max_results' must be from 1 to {MAX_LISTED}, got {max_results!r}")
        with self._tx(write=False) as conn:
            model = self._model_for(conn, name, "reader", "monitor.read", lock=False)
            q = _SELECT.where(monitor_results.c.model_id == model.id)
            if version is not None:
                q = q.where(monitor_results.c.version == version)
            return [_entity(r) for r in conn.execute(q.order_by(monitor_results.c.id.desc()).limit(max_results))]

    def get_result(self, result_id: int) -> MonitorResult:
        validate_id(result_id, "result_id")
        with self._tx(write=False) as conn:
            found = self._load(conn, result_id)
            self.require(conn, self._model_row(conn, found.name), "reader", "monitor.read")
            return found

    def monitor_status(self, name: str | None = None) -> list[MonitorResult]:
        """The latest result of every version that has one: of ``name``, or of every model the principal reads."""
        latest = select(func.max(monitor_results.c.id)).group_by(monitor_results.c.model_id, monitor_results.c.version)
        with self._tx(write=False) as conn:
            q = _SELECT.where(monitor_results.c.id.in_(latest))
            if name is not None:
                validate_model_name(name)
                model = self._model_for(conn, name, "reader", "monitor.read", lock=False)
                q = q.where(monitor_results.c.model_id == model.id)
            else:
                readable = self.readable_model_ids(conn)
                if readable is not None:
                    q = q.where(monitor_results.c.model_id.in_(readable))
            order = (models.c.name, monitor_results.c.version.desc())
            return [_entity(r) for r in conn.execute(q.order_by(*order).limit(MAX_LISTED))]

    # -- the runner's lease ----------------------------------------------------------------------

    def take_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Hold the lease ``name`` for ``seconds`` if it is free, expired or already ``holder``'s (admins only).

        Several server replicas each try; one row per lease and a conditional update make exactly one
        of them win until the lease expires, on SQLite and PostgreSQL alike.
        """
        self.require_admin("monitor.lease", f"lease:{name}")
        now = now_ms()
        until = now + int(seconds * 1000)
        values = {"holder": holder, "expires_at": until}
        with self._tx(write=True) as conn:
            won = conn.execute(
                update(worker_leases)
                .where(worker_leases.c.name == name)
                .where((worker_leases.c.expires_at < now) | (worker_leases.c.holder == holder))
                .values(**values)
            ).rowcount
            if won:
                return True
            if conn.execute(select(worker_leases.c.name).where(worker_leases.c.name == name)).first() is not None:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(insert(worker_leases).values(name=name, **values))
            except IntegrityError:  # another process inserted it first
                return False
            return True

    def _load(self, conn: Connection, result_id: int) -> MonitorResult:
        row = conn.execute(_SELECT.where(monitor_results.c.id == result_id)).one_or_none()
        if row is None:
            raise NotFound(f"monitoring result {result_id} does not exist")
        return _entity(row)


__all__ = ["MonitoringService"]
