"""Routes of API v1 for evaluations: what versions scored on named data (``covex compare``, ``covex explain``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from covex.domain import evaluations as dom
from covex.domain.evaluations import Evaluation
from covex.server.routes import API, ERRORS, MODEL, VERSION, Service, render
from covex.server.schemas import ModelNameIn, QueryInt, RequestBody, VersionIn, text

router = APIRouter(tags=["evaluations"])


class RecordEvaluation(RequestBody):
    kind: str = Field(json_schema_extra={"enum": list(dom.KINDS)})
    key: str
    data_digest: str
    source: Annotated[str, Field(json_schema_extra=text(dom.MAX_SOURCE))]
    rows: int
    body: dict[str, Any]
    data_tags: list[str] = []


class EvaluationList(BaseModel):
    evaluations: list[Evaluation]


@router.post(f"{VERSION}/evaluations", response_model=Evaluation, status_code=201, responses=ERRORS)
def record_evaluation(name: ModelNameIn, version: VersionIn, body: RecordEvaluation, svc: Service) -> Response:
    """Store an evaluation of a version (its data digest, rows, metrics, intervals, tests); takes the editor role."""
    found = svc.record_evaluation(
        name,
        version,
        kind=body.kind,
        key=body.key,
        data_digest=body.data_digest,
        source=body.source,
        rows=body.rows,
        body=body.body,
        data_tags=body.data_tags,
    )
    return render(found, 201)


@router.get(f"{MODEL}/-/evaluations", response_model=EvaluationList, responses=ERRORS)
def list_evaluations(
    name: ModelNameIn,
    svc: Service,
    version: QueryInt | None = None,
    kind: str | None = None,
    key: str | None = None,
    max_results: QueryInt = 100,
) -> Response:
    """A model's (or one version's) evaluations, newest first; ``kind`` and ``key`` narrow the list."""
    found = svc.list_evaluations(name, version, kind=kind, key=key, max_results=max_results)
    return render(EvaluationList(evaluations=found))


@router.get(f"{API}/evaluations/{{evaluation_id:int}}", response_model=Evaluation, responses=ERRORS)
def get_evaluation(evaluation_id: int, svc: Service) -> Response:
    return render(svc.get_evaluation(evaluation_id))
