"""Routes of API v1 for monitoring: configs, drift references, check results and status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from covex.domain.monitoring import MAX_SOURCE, MonitorResult
from covex.server.routes import API, ERRORS, MODEL, Service, render
from covex.server.schemas import ModelNameIn, QueryInt, RequestBody, VersionIn, text

router = APIRouter(tags=["monitoring"])
MONITORING = f"{MODEL}/-/monitoring"


class MonitorConfigBody(RequestBody):
    config: Annotated[str, Field(description="the monitor config as YAML text ('' resets it to the defaults)")]


class ReferenceBody(RequestBody):
    reference: dict[str, Any]


class RecordResult(RequestBody):
    status: str
    source: Annotated[str, Field(json_schema_extra=text(MAX_SOURCE))]
    rows: int
    body: dict[str, Any]
    window_start: int | None = None
    window_end: int | None = None


class ResultList(BaseModel):
    results: list[MonitorResult]


@router.get(f"{MONITORING}/config", response_model=MonitorConfigBody, responses=ERRORS)
def get_monitor_config(name: ModelNameIn, svc: Service) -> Response:
    """A model's monitor config as written ('' when the defaults apply)."""
    return render(MonitorConfigBody(config=svc.monitoring.get_monitor_config(name)))


@router.put(f"{MONITORING}/config", response_model=MonitorConfigBody, responses=ERRORS)
def set_monitor_config(name: ModelNameIn, body: MonitorConfigBody, svc: Service) -> Response:
    """Set a model's monitor config; a bad one is refused whole, each problem with its line."""
    return render(MonitorConfigBody(config=svc.monitoring.set_monitor_config(name, body.config)))


@router.put(f"{MONITORING}/versions/{{version}}/reference", response_model=ReferenceBody, responses=ERRORS)
def set_reference(name: ModelNameIn, version: VersionIn, body: ReferenceBody, svc: Service) -> Response:
    """Store or replace a version's drift reference (its bins and counts)."""
    return render(ReferenceBody(reference=svc.monitoring.set_reference(name, version, body.reference)))


@router.post(
    f"{MONITORING}/versions/{{version}}/results", response_model=MonitorResult, status_code=201, responses=ERRORS
)
def record_result(name: ModelNameIn, version: VersionIn, body: RecordResult, svc: Service) -> Response:
    """Record one check of a version; a change of status is audited and announced by webhook."""
    found = svc.monitoring.record_result(
        name,
        version,
        status=body.status,
        source=body.source,
        rows=body.rows,
        body=body.body,
        window_start=body.window_start,
        window_end=body.window_end,
    )
    return render(found, 201)


@router.get(f"{MONITORING}/results", response_model=ResultList, responses=ERRORS)
def list_results(
    name: ModelNameIn, svc: Service, version: QueryInt | None = None, max_results: QueryInt = 100
) -> Response:
    """A model's (or one version's) results, newest first, with the plot data of each."""
    return render(ResultList(results=svc.monitoring.list_results(name, version, max_results=max_results)))


@router.get(f"{API}/monitoring/results/{{result_id:int}}", response_model=MonitorResult, responses=ERRORS)
def get_result(result_id: int, svc: Service) -> Response:
    return render(svc.monitoring.get_result(result_id))


@router.get(f"{API}/monitoring/status", response_model=ResultList, responses=ERRORS)
def monitor_status(svc: Service, model: str | None = None) -> Response:
    """The latest result of each version: of one model, or of every model the caller reads."""
    return render(ResultList(results=svc.monitoring.monitor_status(model)))
