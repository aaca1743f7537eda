"""Routes of API v1 for deployments: where versions run, recorded by the processes running them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from covex.domain import deployments as dom
from covex.domain.deployments import Deployment
from covex.server.routes import API, ERRORS, Service, render
from covex.server.schemas import NUMBER, ModelName, QueryInt, RequestBody, text

router = APIRouter(tags=["deployments"])
DEPLOYMENTS = f"{API}/deployments"
Number = Annotated[int, Field(json_schema_extra=NUMBER)]
Message = Annotated[str, Field(json_schema_extra=text(dom.MAX_MESSAGE))]


class StartDeployment(RequestBody):
    name: ModelName
    version: Number
    kind: str = Field(json_schema_extra={"enum": list(dom.KINDS)})
    target: Annotated[str, Field(json_schema_extra=text(dom.MAX_TARGET))]
    status: str | None = None
    message: Message = ""
    log_location: Annotated[str, Field(json_schema_extra=text(dom.MAX_TARGET))] | None = None


class UpdateDeployment(RequestBody):
    status: str | None = None
    version: Number | None = None
    message: Message | None = None
    rows: int | None = None
    duration_s: float | None = None


class DeploymentList(BaseModel):
    deployments: list[Deployment]


@router.post(DEPLOYMENTS, response_model=Deployment, status_code=201, responses=ERRORS)
def start_deployment(body: StartDeployment, svc: Service) -> Response:
    """Record that a version starts running (a scoring server, a batch run); takes the reader role."""
    found = svc.start_deployment(
        body.name,
        body.version,
        body.kind,
        body.target,
        status=body.status,
        message=body.message,
        log_location=body.log_location,
    )
    return render(found, 201)


@router.get(DEPLOYMENTS, response_model=DeploymentList, responses=ERRORS)
def list_deployments(
    svc: Service, model: str | None = None, version: QueryInt | None = None, active: bool = False
) -> Response:
    """Deployments, newest first; ``active`` keeps those running and heard from recently."""
    return render(DeploymentList(deployments=svc.list_deployments(model, version, active=active)))


@router.get(f"{DEPLOYMENTS}/{{deployment_id:int}}", response_model=Deployment, responses=ERRORS)
def get_deployment(deployment_id: int, svc: Service) -> Response:
    return render(svc.get_deployment(deployment_id))


@router.patch(f"{DEPLOYMENTS}/{{deployment_id:int}}", response_model=Deployment, responses=ERRORS)
def update_deployment(deployment_id: int, body: UpdateDeployment, svc: Service) -> Response:
    """Heartbeat, and change what the body gives: status, the version served now (a swap), rows, duration."""
    found = svc.update_deployment(
        deployment_id,
        status=body.status,
        version=body.version,
        message=body.message,
        rows=body.rows,
        duration_s=body.duration_s,
    )
    return render(found)
