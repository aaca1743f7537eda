"""MLflow's tracking records kept by Covex: experiments, runs, logged models and their artifacts.

What an MLflow client logs through Covex's MLflow API lands here (``covex.domain.tracking``), so a
training script can log a model to Covex and register it from there without copying a byte: artifact
files are blobs of the same content-addressed store as versions' files (``tracking_artifacts``).

Access:

- Experiments: every signed-in user may create them and read every one (their names are unique across
  the server, so ``mlflow.set_experiment`` must find the one that exists); only the creator, or an
  admin, may change one.
- Runs and logged models, with all they hold (params, metrics and their history, tags, inputs and
  outputs, artifacts: listing and downloading): every signed-in user may create them; only the
  creator, an admin, or a user who may read every model (a reader-or-higher grant on all models) may
  read them, since a model's files logged there are the registered version's files. Anyone else
  gets "not found" for one (it does not say whether it exists) and searches leave them out. Only
  the creator, or an admin, may change one or write artifacts under it (refused as PERMISSION_DENIED:
  the ids are random, so saying that a named one exists tells nothing new).
- Registering from a run or logged model (``model_files``) reads it: a source Covex holds that the
  principal may not read is NotFound naming the source, so nothing is registered (it is not taken
  for a source Covex does not hold, which would be recorded as a pointer).
- Registered versions' files (``registry/<model>/-/<version>/...``) keep the registry's own rule: a
  reader of the model reads them.

Every change is audited (``tracking.experiment.create``, ``tracking.run.update``,
``tracking.artifact.put``, ...), a refused one as refused.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from covex.domain import tracking as dom
from covex.domain.entities import FileEntry, Page
from covex.domain.errors import AlreadyExists, InvalidInput, NotFound
from covex.domain.tracking import Experiment, Metric, Run, RunInfo, StoredModel
from covex.service.base import now_ms
from covex.service.tracking_models import (
    MAX_SEARCHED,
    LoggedModelService,
    _chunks,
    _grouped,
    _limit,
    _metric,
    _page,
    _put,
    _rank,
    _stored,
    _tags,
    _value,
    _view,
)
from covex.store import schema as s
from covex.store.search import decode_page_token, encode_page_token

_RUN_ORDER = {"start_time", "end_time", "run_name", "status", "run_id"}


class _Point:
    """A stored metric row as ``_rank`` reads it."""

    def __init__(self, row: Any) -> None:
        self.step, self.timestamp, self.value = row.step, row.timestamp, _value(row)


class TrackingService(LoggedModelService):
    """Experiments, runs and logged models on behalf of the principal (``svc.tracking``)."""

    # -- experiments ----------------------------------------------------------------

    def create_experiment(self, name: str, artifact_location: str = "", tags: dict[str, str] | None = None) -> str:
        name = dom.check_experiment_name(name)
        if artifact_location:
            raise InvalidInput("'artifact_location' is not supported: Covex stores every artifact itself")
        tags = _tags(tags or {})
        now = now_ms()
        with self._tx(write=True) as conn:
            try:
                with conn.begin_nested():
                    new_id = conn.execute(
                        insert(s.tracking_experiments).returning(s.tracking_experiments.c.id),
                        {
                            "name": name,
                            "lifecycle_stage": "active",
                            "created_by": self.actor,
                            "creation_time": now,
                            "last_update_time": now,
                        },
                    ).scalar_one()
            except IntegrityError:
                raise AlreadyExists(f"Experiment(name={name}) already exists.") from None
            _put(conn, s.tracking_experiment_tags, "experiment_id", new_id, tags)
            self._audit(conn, "tracking.experiment.create", f"experiment:{new_id}", None, {"name": name})
            return str(new_id)

    def get_experiment(self, experiment_id: str) -> Experiment:
        with self._tx(write=False) as conn:
            return self._experiments(conn, [self._experiment_row(conn, experiment_id)])[0]

    def get_experiment_by_name(self, name: str) -> Experiment:
        with self._tx(write=False) as conn:
            row = conn.execute(
                select(s.tracking_experiments).where(s.tracking_experiments.c.name == name)
            ).one_or_none()
            if row is None:
                raise NotFound(f"Could not find experiment with name '{name}'")
            return self._experiments(conn, [row])[0]

    def search_experiments(
        self,
        view_type: str = "ACTIVE_ONLY",
        max_results: int = 1000,
        filter: str | None = None,
        page_token: str | None = None,
    ) -> Page[Experiment]:
        clauses, offset, limit = dom.parse_filter(filter), decode_page_token(page_token), _limit(max_results)
        with self._tx(write=False) as conn:
            q = select(s.tracking_experiments).where(*_view(s.tracking_experiments, view_type))
            found = self._experiments(
                conn, list(conn.execute(q.order_by(s.tracking_experiments.c.id.desc()).limit(MAX_SEARCHED)))
            )
        found = [e for e in found if dom.matches(clauses, {"attributes": e.model_dump(), "tags": e.tags})]
        return _page(found, offset, limit)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        tags = _tags({key: value})
        with self._tx(write=True) as conn:
            row = self._experiment_row(conn, experiment_id, lock=True)
            self._require_owner(row.created_by, "tracking.experiment.tag.set", f"experiment:{row.id}")
            _put(conn, s.tracking_experiment_tags, "experiment_id", row.id, tags)
            self._audit(conn, "tracking.experiment.tag.set", f"experiment:{row.id}", None, tags)

    def _experiments(self, conn: Connection, rows: list[Row[Any]]) -> list[Experiment]:
        tags = _grouped(conn, s.tracking_experiment_tags, "experiment_id", [r.id for r in rows])
        return [
            Experiment(
                experiment_id=str(r.id),
                name=r.name,
                artifact_location=f"{dom.ARTIFACTS_SCHEME}/{r.id}",
                lifecycle_stage=r.lifecycle_stage,
                creation_time=r.creation_time,
                last_update_time=r.last_update_time,
                created_by=r.created_by,
                tags=tags.get(r.id, {}),
            )
            for r in rows
        ]

    # -- runs -----------------------------------------------------------------------

    def create_run(
        self, experiment_id: str, run_name: str = "", start_time: int | None = None, tags: dict[str, str] | None = None
    ) -> Run:
        tags = _tags(tags or {})
        name = dom.check_name(run_name or tags.get("mlflow.runName") or f"run-{dom.new_run_id()[:8]}", "Run name")
        tags["mlflow.runName"] = name
        run_id = dom.new_run_id()
        with self._tx(write=True) as conn:
            exp = self._experiment_row(conn, experiment_id)
            if exp.lifecycle_stage != "active":
                raise InvalidInput(f"The experiment {experiment_id} must be in the 'active' state.")
            conn.execute(
                insert(s.tracking_runs),
                {
                    "id": run_id,
                    "experiment_id": exp.id,
                    "name": name,
                    "created_by": self.actor,
                    "status": "RUNNING",
                    "start_time": now_ms() if start_time is None else start_time,
                    "end_time": None,
                    "lifecycle_stage": "active",
                },
            )
            _put(conn, s.tracking_run_tags, "run_id", run_id, tags)
            self._audit(
                conn, "tracking.run.create", f"run:{run_id}", None, {"experiment_id": str(exp.id), "name": name}
            )
            return self._runs(conn, [self._run_row(conn, run_id)])[0]

    def get_run(self, run_id: str) -> Run:
        with self._tx(write=False) as conn:
            return self._runs(conn, [self._run_row(conn, run_id)])[0]

    def update_run(
        self, run_id: str, status: str | None = None, end_time: int | None = None, run_name: str | None = None
    ) -> RunInfo:
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = dom.check_status(status, dom.RUN_STATUSES, "status")
        if end_time is not None:
            values["end_time"] = end_time
        if run_name:
            values["name"] = dom.check_name(run_name, "Run name")
        with self._tx(write=True) as conn:
            row = self._run_row(conn, run_id, "tracking.run.update")
            if values:
                conn.execute(update(s.tracking_runs).where(s.tracking_runs.c.id == run_id).values(**values))
            if "name" in values:
                _put(conn, s.tracking_run_tags, "run_id", run_id, {"mlflow.runName": values["name"]})
            self._audit(conn, "tracking.run.update", f"run:{run_id}", {"status": row.status}, values)
            return self._runs(conn, [self._run_row(conn, run_id)])[0].info

    def delete_run(self, run_id: str) -> None:
        with self._tx(write=True) as conn:
            self._run_row(conn, run_id, "tracking.run.delete")
            conn.execute(
                update(s.tracking_runs).where(s.tracking_runs.c.id == run_id).values(lifecycle_stage="deleted")
            )
            self._audit(conn, "tracking.run.delete", f"run:{run_id}")

    def log_batch(
        self,
        run_id: str,
        metrics: list[Metric] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        *,
        action: str = "tracking.run.log_batch",
    ) -> None:
        """Log metrics, params and tags of one run at once (``log-metric``, ``log-parameter``, ``set-tag`` too)."""
        metrics, params, tags = metrics or [], params or {}, _tags(tags or {})
        for limit, items, what in (
            (dom.MAX_BATCH_METRICS, metrics, "metrics"),
            (dom.MAX_BATCH_PARAMS, params, "params"),
            (dom.MAX_BATCH_TAGS, tags, "tags"),
        ):
            if len(items) > limit:
                raise InvalidInput(
                    f"A batch logging request can contain at most {limit} {what}. Got {len(items)} {what}."
                )
        for k, v in params.items():
            dom.check_value(v, dom.check_key(k, "param"), dom.MAX_PARAM_VALUE, "param")
        for m in metrics:
            dom.check_key(m.key, "metric")
        with self._tx(write=True) as conn:
            self._run_row(conn, run_id, action)
            for model_id in sorted({m.model_id for m in metrics if m.model_id}):
                # A metric naming a logged model becomes one of that model's metrics (and so of versions
                # registered from it): only what the principal may change takes it.
                row = self._logged_row(conn, model_id)
                self._require_owner(row.created_by, action, f"logged_model:{model_id}")
            self._log_params(conn, run_id, params)
            self._log_metrics(conn, run_id, metrics)
            _put(conn, s.tracking_run_tags, "run_id", run_id, tags)
            if "mlflow.runName" in tags:
                conn.execute(
                    update(s.tracking_runs)
                    .where(s.tracking_runs.c.id == run_id)
                    .values(name=tags["mlflow.runName"][: dom.MAX_NAME])
                )
            summary: dict[str, Any] = {
                "metrics": {m.key: dom.json_number(m.value) for m in metrics[:50]},
                "params": params,
                "tags": tags,
            }
            self._audit(conn, action, f"run:{run_id}", None, summary)

    def delete_tag(self, run_id: str, key: str) -> None:
        with self._tx(write=True) as conn:
            self._run_row(conn, run_id, "tracking.run.tag.delete")
            gone = conn.execute(
                delete(s.tracking_run_tags).where(
                    s.tracking_run_tags.c.run_id == run_id, s.tracking_run_tags.c.key == key
                )
            )
            if not gone.rowcount:
                raise NotFound(f"No tag with name: {key} in run with id {run_id}")
            self._audit(conn, "tracking.run.tag.delete", f"run:{run_id}", None, {"key": key})

    def log_io(
        self, run_id: str, direction: str, datasets: list[dict[str, Any]], models: list[tuple[str, int]]
    ) -> None:
        """Record a run's inputs (datasets as MLflow's JSON, logged models) or outputs (logged models, at a step)."""
        action = f"tracking.run.log_{direction}s"
        with self._tx(write=True) as conn:
            self._run_row(conn, run_id, action)
            rows = [
                {
                    "run_id": run_id,
                    "direction": direction,
                    "kind": "dataset",
                    "model_id": None,
                    "step": 0,
                    "body": json.dumps(d, sort_keys=True),
                }
                for d in datasets
            ]
            for model_id, step in models:
                self._logged_row(conn, model_id)
                rows.append(
                    {
                        "run_id": run_id,
                        "direction": direction,
                        "kind": "model",
                        "model_id": model_id,
                        "step": step,
                        "body": "",
                    }
                )
            if rows:
                conn.execute(insert(s.tracking_run_io), rows)
            self._audit(
                conn, action, f"run:{run_id}", None, {"datasets": len(datasets), "models": [m for m, _ in models]}
            )

    def get_metric_history(
        self, run_id: str, key: str, max_results: int | None = None, page_token: str | None = None
    ) -> Page[Metric]:
        offset, limit = decode_page_token(page_token), _limit(max_results or dom.MAX_RESULTS)
        m = s.tracking_metrics
        with self._tx(write=False) as conn:
            self._run_row(conn, run_id)
            q = select(m).where(m.c.run_id == run_id, m.c.key == key).order_by(m.c.step, m.c.timestamp, m.c.id)
            found = [_metric(r) for r in conn.execute(q.offset(offset).limit(limit + 1))]
        more = len(found) > limit
        return Page(items=found[:limit], next_page_token=encode_page_token(offset + limit) if more else None)

    def search_runs(
        self,
        experiment_ids: list[str],
        filter: str | None = None,
        view_type: str = "ACTIVE_ONLY",
        max_results: int = 1000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> Page[Run]:
        clauses, offset, limit = dom.parse_filter(filter), decode_page_token(page_token), _limit(max_results)
        keys = [_order_key(o) for o in order_by or []]
        with self._tx(write=False) as conn:
            ids = [self._experiment_row(conn, e).id for e in experiment_ids]
            q = select(s.tracking_runs).where(
                s.tracking_runs.c.experiment_id.in_(ids),
                *_view(s.tracking_runs, view_type),
                *self._readable(conn, s.tracking_runs),
            )
            found = self._runs(
                conn, list(conn.execute(q.order_by(s.tracking_runs.c.start_time.desc()).limit(MAX_SEARCHED)))
            )
        found = [r for r in found if dom.matches(clauses, _fields(r))]
        for kind, key, descending in reversed(keys):
            found.sort(key=lambda r, k=kind, n=key: _sortable(_fields(r)[k].get(n)), reverse=descending)  # type: ignore[misc]
        return _page(found, offset, limit)

    def _log_params(self, conn: Connection, run_id: str, params: dict[str, str]) -> None:
        if not params:
            return
        p = s.tracking_run_params
        have = dict(
            conn.execute(select(p.c.key, p.c.value).where(p.c.run_id == run_id, p.c.key.in_(list(params)))).all()
        )
        for key, value in params.items():
            if key in have and have[key] != value:
                raise InvalidInput(
                    f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                    f"value='{have[key]}' for run ID='{run_id}'. Attempted logging new value '{value}'."
                )
        new = [{"run_id": run_id, "key": k, "value": v} for k, v in params.items() if k not in have]
        if new:
            conn.execute(insert(p), new)

    def _log_metrics(self, conn: Connection, run_id: str, metrics: list[Metric]) -> None:
        if not metrics:
            return
        # A value logged again (MLflow's client does so to link a run's metrics to a logged model) is one
        # point of the history, as in MLflow's store; it gains the logged model's id.
        t = s.tracking_metrics
        q = select(t.c.id, t.c.key, t.c.timestamp, t.c.step, t.c.value, t.c.is_nan, t.c.model_id).where(
            t.c.run_id == run_id, t.c.key.in_(list({m.key for m in metrics}))
        )
        have = {(r.key, r.timestamp, r.step, _rank(_Point(r))[2]): r for r in conn.execute(q)}
        fresh = []
        for m in metrics:
            same = have.get((m.key, m.timestamp, m.step, _rank(m)[2]))
            if same is None:
                fresh.append(m)
            elif m.model_id and not same.model_id:
                conn.execute(update(t).where(t.c.id == same.id).values(model_id=m.model_id))
        if fresh:
            conn.execute(
                insert(t),
                [
                    m.model_dump(include={"key", "timestamp", "step", "model_id", "dataset_name", "dataset_digest"})
                    | _stored(m.value)
                    | {"run_id": run_id}
                    for m in fresh
                ],
            )
        lm = s.tracking_latest_metrics
        keys = list({m.key for m in metrics})
        best = {r.key: r for r in conn.execute(select(lm).where(lm.c.run_id == run_id, lm.c.key.in_(keys)))}
        newest: dict[str, Metric] = {}
        for m in metrics:
            if m.key not in newest or _rank(m) >= _rank(newest[m.key]):
                newest[m.key] = m
        for key, m in newest.items():
            old = best.get(key)
            if old is not None and _rank(m) < _rank(old):
                continue
            if old is not None:
                conn.execute(delete(lm).where(lm.c.run_id == run_id, lm.c.key == key))
            conn.execute(
                insert(lm), {"run_id": run_id, "key": key, "timestamp": m.timestamp, "step": m.step} | _stored(m.value)
            )

    def _runs(self, conn: Connection, rows: list[Row[Any]]) -> list[Run]:
        ids = [r.id for r in rows]
        params = _grouped(conn, s.tracking_run_params, "run_id", ids)
        tags = _grouped(conn, s.tracking_run_tags, "run_id", ids)
        metrics: dict[str, list[Metric]] = {}
        io: dict[str, list[Row[Any]]] = {}
        for chunk in _chunks(ids):
            for r in conn.execute(
                select(s.tracking_latest_metrics).where(s.tracking_latest_metrics.c.run_id.in_(chunk))
            ):
                metrics.setdefault(r.run_id, []).append(
                    Metric(key=r.key, value=_value(r), timestamp=r.timestamp, step=r.step, run_id=r.run_id)
                )
            for r in conn.execute(
                select(s.tracking_run_io).where(s.tracking_run_io.c.run_id.in_(chunk)).order_by(s.tracking_run_io.c.id)
            ):
                io.setdefault(r.run_id, []).append(r)
        found = []
        for r in rows:
            mine = io.get(r.id, [])
            found.append(
                Run(
                    info=RunInfo(
                        run_id=r.id,
                        run_name=r.name,
                        experiment_id=str(r.experiment_id),
                        user_id=r.created_by,
                        status=r.status,
                        start_time=r.start_time,
                        end_time=r.end_time,
                        artifact_uri=f"{dom.ARTIFACTS_SCHEME}/{dom.run_root(str(r.experiment_id), r.id)}",
                        lifecycle_stage=r.lifecycle_stage,
                    ),
                    metrics=sorted(metrics.get(r.id, []), key=lambda m: m.key),
                    params=params.get(r.id, {}),
                    tags=tags.get(r.id, {}),
                    dataset_inputs=[json.loads(i.body) for i in mine if i.kind == "dataset" and i.direction == "input"],
                    model_inputs=[i.model_id for i in mine if i.kind == "model" and i.direction == "input"],
                    model_outputs=[(i.model_id, i.step) for i in mine if i.kind == "model" and i.direction == "output"],
                )
            )
        return found

    # -- for the registry -----------------------------------------------------------

    def model_files(self, source: str) -> StoredModel | None:
        """The files of an MLflow model source held by Covex's own tracking store: 'models:/m-<id>',
        'runs:/<run_id>/<path>', 'mlflow-artifacts:/<path>' or
        'http(s)://<any host>/api/2.0/mlflow-artifacts/artifacts/<path>'. None when the source is none of
        Covex's (unknown ids, other schemes); InvalidInput when it is Covex's but holds no MLmodel file;
        NotFound, naming the source, when it is a run or logged model the principal may not read (so
        nothing is registered from it, not even a pointer)."""
        if not isinstance(source, str):
            return None
        with self._tx(write=False) as conn:
            try:
                found = self._model_source(conn, source)
            except NotFound:
                return None
            if found is None:
                return None
            run, model, root, folder = found
            if any(row is not None and not self._may_read(conn, row.created_by) for row in (run, model)):
                raise NotFound(f"Model source {source[:300]!r} not found: no run or logged model you may read")
            entries = self._entries(conn, root)
            dom.model_folder([e.path for e in entries], folder)
            prefix = folder + "/" if folder else ""
            files = [
                FileEntry(path=e.path[len(prefix) :], digest=e.digest, size=e.size)
                for e in entries
                if e.path.startswith(prefix)
            ]
            metrics: dict[str, float] = {}
            params: dict[str, str] = {}
            for owner in (self._runs(conn, [run]) if run is not None else []) + (
                self._logged_models(conn, [model]) if model is not None else []
            ):
                metrics.update({m.key: m.value for m in owner.metrics})
                params.update(owner.params)
            run_id = run.id if run is not None else ""
            return StoredModel(
                files=files, run_id=run_id, model_id=None if model is None else model.id, metrics=metrics, params=params
            )

    def _model_source(self, conn: Connection, source: str) -> tuple[Row[Any] | None, Row[Any] | None, str, str] | None:
        """``(run row, logged model row, artifact root, model folder in it)`` of a source, None if not Covex's.

        Rows are found whoever may read them: ``model_files`` tells an unreadable source from an unknown one.
        """
        run = model = None
        if source.startswith("models:/"):
            model_id = source[len("models:/") :].strip("/")
            if not dom.is_model_id(model_id):
                return None
            model, folder = self._logged_row(conn, model_id, read=False), ""
        elif source.startswith("runs:/"):
            run_id, _, inner = source[len("runs:/") :].lstrip("/").partition("/")
            if not dom.is_run_id(run_id):
                return None
            run, folder = self._run_row(conn, run_id, read=False), dom.check_path(inner)
            root = dom.run_root(str(run.experiment_id), run.id)
            paths = [e.path for e in self._entries(conn, root)]
            if folder and not any(p == f"{folder}/MLmodel" for p in paths):
                # MLflow 3 logs a model under its logged model: runs:/<run>/<name> is the run's model of that name.
                t = s.tracking_logged_models
                q = select(t).where(t.c.source_run_id == run_id, t.c.name == folder, t.c.lifecycle_stage == "active")
                model = conn.execute(q.order_by(t.c.creation_timestamp.desc()).limit(1)).one_or_none()
                if model is not None:
                    folder = ""
            if model is None:
                return run, None, root, folder
        else:
            path = dom.artifact_path_of(source)
            found = None if path is None else dom.split_root(path)
            if path is None or found is None:
                return None
            kind, owner, folder = found
            if kind == "run":
                run = self._run_row(conn, owner, read=False)
                return run, None, self._artifact_root(conn, path, None, read=False)[0], folder
            model = self._logged_row(conn, owner, read=False)
            self._artifact_root(conn, path, None, read=False)
        if run is None and model.source_run_id:  # a run named in the source is checked by model_files
            run = conn.execute(select(s.tracking_runs).where(s.tracking_runs.c.id == model.source_run_id)).one_or_none()
            if run is not None and not self._may_read(conn, run.created_by):
                run = None  # the model's own source run: its metrics and params stay behind, the model's files go
        return run, model, dom.model_root(str(model.experiment_id), model.id), folder


def _fields(run: Run) -> dict[str, dict[str, Any]]:
    info = run.info.model_dump()
    return {
        "attributes": info,
        "params": run.params,
        "tags": run.tags,
        "metrics": {m.key: m.value for m in run.metrics},
    }


def _order_key(text: str) -> tuple[str, str, bool]:
    """``attributes.start_time DESC``, ``metrics.rmse``, ``params.alpha ASC`` as (kind, key, descending)."""
    words = text.split()
    if not words or len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
        raise InvalidInput(f"Invalid order_by clause {text!r}")
    kind, _, key = words[0].rpartition(".")
    kind = {"": "attributes", "attribute": "attributes", "metric": "metrics", "param": "params", "tag": "tags"}.get(
        kind, kind
    )
    if kind not in ("attributes", "metrics", "params", "tags") or (kind == "attributes" and key not in _RUN_ORDER):
        raise InvalidInput(f"Invalid order_by clause {text!r}")
    return kind, "run_name" if key == "run_name" else key, len(words) == 2 and words[1].upper() == "DESC"


def _sortable(value: Any) -> tuple[int, Any]:
    return (1, "") if value is None else (0, value)


__all__ = ["TrackingService"]
