"""Logged models of MLflow's tracking API (``covex.service.tracking`` says who may do what) and shared helpers."""

from __future__ import annotations

import math
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, delete, insert, select, update

from covex.domain import tracking as dom
from covex.domain.entities import Page
from covex.domain.errors import InvalidInput, NotFound
from covex.domain.tracking import LoggedModel, Metric
from covex.service.base import now_ms
from covex.service.tracking_artifacts import TrackingBase
from covex.store import schema as s
from covex.store.search import decode_page_token, encode_page_token

MAX_SEARCHED = 10_000
T = TypeVar("T")


class LoggedModelService(TrackingBase):
    """Logged models: what ``mlflow.<flavor>.log_model`` creates, then fills with artifacts and finalizes."""

    def _experiment_row(self, conn: Connection, experiment_id: str, *, lock: bool = False) -> Row[Any]:
        number = dom.check_experiment_id(experiment_id)
        q = select(s.tracking_experiments).where(s.tracking_experiments.c.id == number)
        row = conn.execute(q.with_for_update() if lock else q).one_or_none()  # lock: tag writers queue
        if row is None:
            raise NotFound(f"No Experiment with id={experiment_id} exists")
        return row

    # -- logged models --------------------------------------------------------------

    def create_logged_model(
        self,
        experiment_id: str,
        name: str = "",
        model_type: str = "",
        source_run_id: str = "",
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> LoggedModel:
        name = dom.check_name(name or f"model-{dom.new_run_id()[:8]}", "Logged model name")
        params, tags = _params(params or {}), _tags(tags or {})
        model_id, now = dom.new_model_id(), now_ms()
        with self._tx(write=True) as conn:
            exp = self._experiment_row(conn, experiment_id)
            if source_run_id:
                self._run_row(conn, source_run_id)
            conn.execute(
                insert(s.tracking_logged_models),
                {
                    "id": model_id,
                    "experiment_id": exp.id,
                    "name": name,
                    "model_type": model_type[: dom.MAX_NAME],
                    "source_run_id": source_run_id,
                    "status": "LOGGED_MODEL_PENDING",
                    "status_message": "",
                    "created_by": self.actor,
                    "creation_timestamp": now,
                    "last_updated_timestamp": now,
                    "lifecycle_stage": "active",
                },
            )
            _put(conn, s.tracking_logged_model_params, "model_id", model_id, params)
            _put(conn, s.tracking_logged_model_tags, "model_id", model_id, tags)
            summary = {"experiment_id": str(exp.id), "name": name, "source_run_id": source_run_id}
            self._audit(conn, "tracking.logged_model.create", f"logged_model:{model_id}", None, summary)
            return self._logged_models(conn, [self._logged_row(conn, model_id)])[0]

    def get_logged_model(self, model_id: str) -> LoggedModel:
        with self._tx(write=False) as conn:
            return self._logged_models(conn, [self._logged_row(conn, model_id)])[0]

    def update_logged_model(
        self,
        model_id: str,
        *,
        status: str | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        delete_tag: str | None = None,
    ) -> LoggedModel:
        """Finalize (``status``), log params, set tags or delete one: what MLflow's client changes of a logged model."""
        action = (
            "tracking.logged_model.finalize"
            if status
            else "tracking.logged_model.params"
            if params
            else "tracking.logged_model.tag.delete"
            if delete_tag is not None
            else "tracking.logged_model.tag.set"
        )
        if status is not None:
            dom.check_status(status, dom.MODEL_STATUSES, "status")
        params, tags = _params(params or {}), _tags(tags or {})
        with self._tx(write=True) as conn:
            row = self._logged_row(conn, model_id, action)
            values: dict[str, Any] = {"last_updated_timestamp": now_ms()}
            if status is not None:
                values["status"] = status
            conn.execute(
                update(s.tracking_logged_models).where(s.tracking_logged_models.c.id == model_id).values(**values)
            )
            _put(conn, s.tracking_logged_model_params, "model_id", model_id, params)
            _put(conn, s.tracking_logged_model_tags, "model_id", model_id, tags)
            if delete_tag is not None:
                t = s.tracking_logged_model_tags
                if not conn.execute(delete(t).where(t.c.model_id == model_id, t.c.key == delete_tag)).rowcount:
                    raise NotFound(f"No tag with key {delete_tag!r} on logged model {model_id}")
            after = {"status": status, "params": params, "tags": tags, "deleted_tag": delete_tag}
            self._audit(
                conn, action, f"logged_model:{model_id}", {"status": row.status}, {k: v for k, v in after.items() if v}
            )
            return self._logged_models(conn, [self._logged_row(conn, model_id)])[0]

    def search_logged_models(
        self,
        experiment_ids: list[str],
        filter: str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[LoggedModel]:
        clauses, offset, limit = dom.parse_filter(filter), decode_page_token(page_token), _limit(max_results)
        t = s.tracking_logged_models
        with self._tx(write=False) as conn:
            ids = [self._experiment_row(conn, e).id for e in experiment_ids]
            q = select(t).where(t.c.experiment_id.in_(ids), t.c.lifecycle_stage == "active", *self._readable(conn, t))
            found = self._logged_models(
                conn, list(conn.execute(q.order_by(t.c.creation_timestamp.desc()).limit(MAX_SEARCHED)))
            )
        fields = [
            {
                "attributes": m.model_dump(),
                "params": m.params,
                "tags": m.tags,
                "metrics": {x.key: x.value for x in m.metrics},
            }
            for m in found
        ]
        return _page([m for m, f in zip(found, fields, strict=True) if dom.matches(clauses, f)], offset, limit)

    def _logged_models(self, conn: Connection, rows: list[Row[Any]]) -> list[LoggedModel]:
        ids = [r.id for r in rows]
        params = _grouped(conn, s.tracking_logged_model_params, "model_id", ids)
        tags = _grouped(conn, s.tracking_logged_model_tags, "model_id", ids)
        metrics: dict[str, dict[str, Metric]] = {}
        for chunk in _chunks(ids):
            for r in conn.execute(select(s.tracking_metrics).where(s.tracking_metrics.c.model_id.in_(chunk))):
                mine, m = metrics.setdefault(r.model_id, {}), _metric(r)
                if m.key not in mine or _rank(m) >= _rank(mine[m.key]):
                    mine[m.key] = m
        return [
            LoggedModel(
                model_id=r.id,
                experiment_id=str(r.experiment_id),
                name=r.name,
                artifact_uri=f"{dom.ARTIFACTS_SCHEME}/{dom.model_root(str(r.experiment_id), r.id)}",
                status=r.status,
                status_message=r.status_message,
                model_type=r.model_type,
                source_run_id=r.source_run_id,
                creation_timestamp_ms=r.creation_timestamp,
                last_updated_timestamp_ms=r.last_updated_timestamp,
                created_by=r.created_by,
                lifecycle_stage=r.lifecycle_stage,
                tags=tags.get(r.id, {}),
                params=params.get(r.id, {}),
                metrics=sorted(metrics.get(r.id, {}).values(), key=lambda m: m.key),
            )
            for r in rows
        ]


# -- helpers ----------------------------------------------------------------------------


def _tags(tags: dict[str, str]) -> dict[str, str]:
    return {dom.check_key(k, "tag"): dom.check_value(v, k, dom.MAX_TAG_VALUE, "tag") for k, v in tags.items()}


def _params(params: dict[str, str]) -> dict[str, str]:
    return {dom.check_key(k, "param"): dom.check_value(v, k, dom.MAX_PARAM_VALUE, "param") for k, v in params.items()}


def _put(conn: Connection, table: Any, owner: str, owner_id: Any, items: dict[str, str]) -> None:
    """Set keys of one owner, each replacing the key's row."""
    if not items:
        return
    conn.execute(delete(table).where(table.c[owner] == owner_id, table.c.key.in_(list(items))))
    conn.execute(insert(table), [{owner: owner_id, "key": k, "value": v} for k, v in items.items()])


def _chunks(ids: list[Any]) -> list[list[Any]]:
    return [ids[i : i + 500] for i in range(0, len(ids), 500)]


def _grouped(conn: Connection, table: Any, owner: str, ids: list[Any]) -> dict[Any, dict[str, str]]:
    found: dict[Any, dict[str, str]] = {}
    for chunk in _chunks(ids):
        for r in conn.execute(select(table.c[owner], table.c.key, table.c.value).where(table.c[owner].in_(chunk))):
            found.setdefault(r[0], {})[r.key] = r.value
    return found


def _metric(r: Row[Any]) -> Metric:
    return Metric(
        key=r.key,
        value=_value(r),
        timestamp=r.timestamp,
        step=r.step,
        run_id=r.run_id,
        model_id=r.model_id,
        dataset_name=r.dataset_name,
        dataset_digest=r.dataset_digest,
    )


def _rank(m: Any) -> tuple[int, int, float]:
    """MLflow's latest value of a metric: the largest step, then timestamp, then value (NaN lowest)."""
    value = float(m.value)
    return m.step, m.timestamp, -math.inf if math.isnan(value) else value


def _limit(max_results: int) -> int:
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= dom.MAX_RESULTS:
        raise InvalidInput(
            f"Invalid value {max_results!r} for parameter 'max_results': it must be 1 to {dom.MAX_RESULTS}."
        )
    return max_results


def _view(table: Any, view_type: str) -> list[Any]:
    if view_type == "ALL":
        return []
    if view_type not in ("ACTIVE_ONLY", "DELETED_ONLY"):
        raise InvalidInput(f"Invalid value {view_type!r} for parameter 'view_type'.")
    return [table.c.lifecycle_stage == ("active" if view_type == "ACTIVE_ONLY" else "deleted")]


def _page(items: list[T], offset: int, limit: int) -> Page[T]:
    more = len(items) > offset + limit
    return Page(
        items=items[offset : offset + limit], next_page_token=encode_page_token(offset + limit) if more else None
    )


def _stored(value: float) -> dict[str, Any]:
    """A metric's value as stored: NaN as 0 with ``is_nan`` (SQLite would store NaN as NULL)."""
    return {"value": 0.0, "is_nan": True} if math.isnan(value) else {"value": value, "is_nan": False}


def _value(row: Row[Any]) -> float:
    return math.nan if row.is_nan else float(row.value)
