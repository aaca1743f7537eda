"""MLflow's tracking API, the part that logging and registering a model needs (``covex.service.tracking``).

Served under ``/api/2.0/mlflow/`` and ``/api/2.0/preview/mlflow/`` alike. Each route reads MLflow's
request message, calls one service method and answers MLflow's JSON: field names of MLflow's
``service.proto``, int64 values as numbers and NaN or infinite metrics as strings, as MLflow's server
writes them. Any other path under these prefixes is ``ENDPOINT_NOT_FOUND``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Response

from covex.domain import tracking as dom
from covex.domain.entities import Page
from covex.domain.errors import InvalidInput
from covex.domain.tracking import Experiment, LoggedModel, Metric, Run, RunInfo
from covex.server.mlflow.messages import Fields, Message
from covex.server.mlflow.shapes import pairs
from covex.server.routes import Service

router = APIRouter(tags=["mlflow"])
PREFIXES = ("/api/2.0/mlflow", "/api/2.0/preview/mlflow")
F = TypeVar("F", bound=Callable[..., Any])


def endpoint(method: str, path: str) -> Callable[[F], F]:
    """Register a route under both of MLflow's prefixes (MLflow's API is documented by MLflow, not in /docs)."""

    def register(handler: F) -> F:
        for prefix in PREFIXES:
            router.add_api_route(prefix + path, handler, methods=[method], include_in_schema=False)
        return handler

    return register


def reply(body: dict[str, Any] | None = None) -> Response:
    return Response(json.dumps(body or {}, allow_nan=False), media_type="application/json")


# -- experiments --------------------------------------------------------------------------


@endpoint("POST", "/experiments/create")
def create_experiment(msg: Fields, svc: Service) -> Response:
    found = svc.tracking.create_experiment(msg.text("name"), msg.text("artifact_location", ""), msg.tags())
    return reply({"experiment_id": found})


@endpoint("GET", "/experiments/get")
def get_experiment(msg: Fields, svc: Service) -> Response:
    return reply({"experiment": experiment(svc.tracking.get_experiment(msg.text("experiment_id")))})


@endpoint("GET", "/experiments/get-by-name")
def get_experiment_by_name(msg: Fields, svc: Service) -> Response:
    return reply({"experiment": experiment(svc.tracking.get_experiment_by_name(msg.text("experiment_name")))})


@endpoint("POST", "/experiments/search")
def search_experiments(msg: Fields, svc: Service) -> Response:
    found = svc.tracking.search_experiments(
        _view(msg, "view_type"), msg.integer("max_results", 1000), msg.text("filter", ""), msg.text("page_token", "")
    )
    return reply(_page("experiments", found, experiment))


@endpoint("POST", "/experiments/set-experiment-tag")
def set_experiment_tag(msg: Fields, svc: Service) -> Response:
    svc.tracking.set_experiment_tag(msg.text("experiment_id"), msg.text("key"), msg.text("value", ""))
    return reply()


# -- runs -----------------------------------------------------------------------------------


@endpoint("POST", "/runs/create")
def create_run(msg: Fields, svc: Service) -> Response:
    start = msg.integer("start_time") if "start_time" in msg else None
    found = svc.tracking.create_run(
        msg.text("experiment_id", dom.DEFAULT_EXPERIMENT), msg.text("run_name", ""), start, msg.tags()
    )
    return reply({"run": run(found)})


@endpoint("GET", "/runs/get")
def get_run(msg: Fields, svc: Service) -> Response:
    return reply({"run": run(svc.tracking.get_run(_run_id(msg)))})


@endpoint("POST", "/runs/update")
def update_run(msg: Fields, svc: Service) -> Response:
    end = msg.integer("end_time") if "end_time" in msg else None
    info = svc.tracking.update_run(_run_id(msg), msg.optional("status"), end, msg.optional("run_name"))
    return reply({"run_info": run_info(info)})


@endpoint("POST", "/runs/delete")
def delete_run(msg: Fields, svc: Service) -> Response:
    svc.tracking.delete_run(msg.text("run_id"))
    return reply()


@endpoint("POST", "/runs/log-metric")
def log_metric(msg: Fields, svc: Service) -> Response:
    svc.tracking.log_batch(_run_id(msg), metrics=[_metric(msg.fields)], action="tracking.run.log_metric")
    return reply()


@endpoint("POST", "/runs/log-parameter")
def log_parameter(msg: Fields, svc: Service) -> Response:
    params = {msg.text("key"): msg.text("value", "")}
    svc.tracking.log_batch(_run_id(msg), params=params, action="tracking.run.log_param")
    return reply()


@endpoint("POST", "/runs/set-tag")
def set_tag(msg: Fields, svc: Service) -> Response:
    tags = {msg.text("key"): msg.text("value", "")}
    svc.tracking.log_batch(_run_id(msg), tags=tags, action="tracking.run.tag.set")
    return reply()


@endpoint("POST", "/runs/delete-tag")
def delete_tag(msg: Fields, svc: Service) -> Response:
    svc.tracking.delete_tag(msg.text("run_id"), msg.text("key"))
    return reply()


@endpoint("POST", "/runs/log-batch")
def log_batch(msg: Fields, svc: Service) -> Response:
    metrics = [_metric(m) for m in _objects(msg, "metrics")]
    svc.tracking.log_batch(msg.text("run_id"), metrics, msg.tags("params"), msg.tags("tags"))
    return reply()


@endpoint("POST", "/runs/log-inputs")
def log_inputs(msg: Fields, svc: Service) -> Response:
    models = [(_model_id(m), 0) for m in _objects(msg, "models")]
    svc.tracking.log_io(msg.text("run_id"), "input", _objects(msg, "datasets"), models)
    return reply()


@endpoint("POST", "/runs/outputs")
def log_outputs(msg: Fields, svc: Service) -> Response:
    models = [(_model_id(m), Message(m).integer("step", 0)) for m in _objects(msg, "models")]
    svc.tracking.log_io(msg.text("run_id"), "output", [], models)
    return reply()


@endpoint("POST", "/runs/search")
def search_runs(msg: Fields, svc: Service) -> Response:
    found = svc.tracking.search_runs(
        msg.strings("experiment_ids"),
        msg.text("filter", ""),
        _view(msg, "run_view_type"),
        msg.integer("max_results", 1000),
        msg.strings("order_by"),
        msg.text("page_token", ""),
    )
    return reply(_page("runs", found, run))


@endpoint("GET", "/metrics/get-history")
def get_metric_history(msg: Fields, svc: Service) -> Response:
    max_results = msg.integer("max_results") if "max_results" in msg else None
    found = svc.tracking.get_metric_history(
        _run_id(msg), msg.text("metric_key"), max_results, msg.text("page_token", "")
    )
    return reply(_page("metrics", found, metric))


# -- logged models ------------------------------------------------------------------------


@endpoint("POST", "/logged-models")
def create_logged_model(msg: Fields, svc: Service) -> Response:
    found = svc.tracking.create_logged_model(
        msg.text("experiment_id"),
        msg.text("name", ""),
        msg.text("model_type", ""),
        msg.text("source_run_id", ""),
        msg.tags("params"),
        msg.tags("tags"),
    )
    return reply({"model": logged_model(found)})


@endpoint("POST", "/logged-models/search")
def search_logged_models(msg: Fields, svc: Service) -> Response:
    found = svc.tracking.search_logged_models(
        msg.strings("experiment_ids"),
        msg.text("filter", ""),
        msg.integer("max_results", 100),
        msg.text("page_token", ""),
    )
    return reply(_page("models", found, logged_model))


@endpoint("GET", "/logged-models/{model_id}")
def get_logged_model(model_id: str, svc: Service) -> Response:
    return reply({"model": logged_model(svc.tracking.get_logged_model(model_id))})


@endpoint("PATCH", "/logged-models/{model_id}")
def finalize_logged_model(model_id: str, msg: Fields, svc: Service) -> Response:
    status = msg.text("status")
    return reply({"model": logged_model(svc.tracking.update_logged_model(model_id, status=status))})


@endpoint("POST", "/logged-models/{model_id}/params")
def log_logged_model_params(model_id: str, msg: Fields, svc: Service) -> Response:
    svc.tracking.update_logged_model(model_id, params=msg.tags("params"))
    return reply()


@endpoint("PATCH", "/logged-models/{model_id}/tags")
def set_logged_model_tags(model_id: str, msg: Fields, svc: Service) -> Response:
    return reply({"model": logged_model(svc.tracking.update_logged_model(model_id, tags=msg.tags("tags")))})


@endpoint("DELETE", "/logged-models/{model_id}/tags/{key:path}")
def delete_logged_model_tag(model_id: str, key: str, svc: Service) -> Response:
    svc.tracking.update_logged_model(model_id, delete_tag=key)
    return reply()


# -- reading requests -----------------------------------------------------------------------


def _run_id(msg: Message) -> str:
    """MLflow's clients send a run's id as ``run_id`` and, for old servers, ``run_uuid`` too."""
    return msg.text("run_id") if "run_id" in msg else msg.text("run_uuid")


def _view(msg: Message, key: str) -> str:
    value = msg.text(key, "ACTIVE_ONLY")
    return {"1": "ACTIVE_ONLY", "2": "DELETED_ONLY", "3": "ALL"}.get(value, value)


def _objects(msg: Message, key: str) -> list[dict[str, Any]]:
    value = msg.fields.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidInput(f"Invalid value for parameter '{key}' supplied: it must be a list of objects.")
    return value


def _model_id(fields: dict[str, Any]) -> str:
    return Message(fields).text("model_id")


def _metric(fields: dict[str, Any]) -> Metric:
    m = Message(fields)
    key = m.text("key")
    if "value" not in m:
        raise InvalidInput(f"Missing value for required parameter 'value' of metric {key!r}.")
    return Metric(
        key=key,
        value=dom.metric_value(fields["value"], key),
        timestamp=m.integer("timestamp"),
        step=m.integer("step", 0),
        model_id=m.optional("model_id"),
        dataset_name=m.optional("dataset_name"),
        dataset_digest=m.optional("dataset_digest"),
    )


# -- MLflow's JSON ------------------------------------------------------------------------

T = TypeVar("T")


def _page(key: str, page: Page[T], shape: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {key: [shape(x) for x in page.items]}
    if page.next_page_token:
        body["next_page_token"] = page.next_page_token
    return body


def experiment(e: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": e.experiment_id,
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage,
        "last_update_time": e.last_update_time,
        "creation_time": e.creation_time,
        "tags": pairs(e.tags),
    }


def metric(m: Metric) -> dict[str, Any]:
    body: dict[str, Any] = {"key": m.key, "value": dom.json_number(m.value), "timestamp": m.timestamp, "step": m.step}
    extra = {
        "run_id": m.run_id,
        "model_id": m.model_id,
        "dataset_name": m.dataset_name,
        "dataset_digest": m.dataset_digest,
    }
    return body | {k: v for k, v in extra.items() if v}


def run_info(i: RunInfo) -> dict[str, Any]:
    body = i.model_dump(exclude={"end_time"}) | {"run_uuid": i.run_id}
    return body if i.end_time is None else body | {"end_time": i.end_time}


def run(r: Run) -> dict[str, Any]:
    return {
        "info": run_info(r.info),
        "data": {"metrics": [metric(m) for m in r.metrics], "params": pairs(r.params), "tags": pairs(r.tags)},
        "inputs": {"dataset_inputs": r.dataset_inputs, "model_inputs": [{"model_id": m} for m in r.model_inputs]},
        "outputs": {"model_outputs": [{"model_id": m, "step": step} for m, step in r.model_outputs]},
    }


def logged_model(m: LoggedModel) -> dict[str, Any]:
    info = {
        "model_id": m.model_id,
        "experiment_id": m.experiment_id,
        "name": m.name,
        "creation_timestamp_ms": m.creation_timestamp_ms,
        "last_updated_timestamp_ms": m.last_updated_timestamp_ms,
        "artifact_uri": m.artifact_uri,
        "status": m.status,
        "model_type": m.model_type,
        "source_run_id": m.source_run_id,
        "status_message": m.status_message,
        "tags": pairs(m.tags),
    }
    return {"info": info, "data": {"params": pairs(m.params), "metrics": [metric(x) for x in m.metrics]}}
