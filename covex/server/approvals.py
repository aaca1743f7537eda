"""Routes of API v1 for governance: policies, approval requests, comments, rollback and placement."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from covex.domain.errors import InvalidInput
from covex.domain.policy import MAX_POLICY_FILE, Comment, Placement, Policy, Rollback, TransitionRequest
from covex.domain.scopes import AppliedPolicy
from covex.server.routes import API, ERRORS, MODEL, VERSION, Service, render
from covex.server.schemas import NUMBER, CommentText, ModelName, ModelNameIn, QueryInt, RequestBody, VersionIn

router = APIRouter(tags=["approvals"], responses=ERRORS)
REQUEST = f"{API}/requests/{{request_id:int}}"


class CreateRequest(RequestBody):
    name: ModelName
    version: int = Field(json_schema_extra=NUMBER)
    stage: str | None = None
    alias: str | None = None
    comment: CommentText = ""


class Review(RequestBody):
    comment: CommentText = ""


class NewComment(RequestBody):
    body: CommentText


class RollbackBody(RequestBody):
    stage: str | None = None
    alias: str | None = None
    comment: CommentText = ""


class PolicyFile(RequestBody):
    text: str
    replace: bool = False


def _list(items: list[Any]) -> Response:
    body = "[" + ",".join(i.model_dump_json() for i in items) + "]"
    return Response(body, media_type="application/json")


# -- policies ---------------------------------------------------------------------------


@router.get(f"{API}/policies", response_model=list[Policy])
def list_policies(svc: Service) -> Response:
    return _list(svc.approvals.list_policies())


@router.put(f"{API}/policies", response_model=list[Policy])
async def apply_policy_file(request: Request, svc: Service, replace: bool = False) -> Response:
    """Apply a policy file: the YAML text as the body (or JSON ``{"text": ..., "replace": ...}``)."""
    raw = await request.body()
    # Room for JSON escapes; the service checks the text itself, after the caller's rights.
    if len(raw) > 2 * MAX_POLICY_FILE:
        raise InvalidInput(f"a policy file may be at most {MAX_POLICY_FILE} bytes")
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = PolicyFile.model_validate_json(raw)
        except ValueError:
            raise InvalidInput('the JSON body must be {"text": "<policy YAML>", "replace": false}') from None
        text, replace = body.text, body.replace or replace
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("a policy file must be UTF-8 text") from None
    return _list(await run_in_threadpool(svc.approvals.apply_policy_file, text, replace))


ScopeModel = Annotated[
    str | None, Query(description="The policy of one model (a name) or of models matching a glob (network/*).")
]
ScopeTag = Annotated[str | None, Query(description="The policy of models with a tag, as key=value (team=retail).")]


@router.get(f"{API}/policies/{{kind}}/{{target}}", response_model=Policy)
def get_policy(kind: str, target: str, svc: Service, model: ScopeModel = None, tag: ScopeTag = None) -> Response:
    """One policy of a stage or alias: the global one, or that of ``model`` or ``tag``."""
    return render(svc.approvals.get_policy(kind, target, model=model, tag=tag))


@router.put(f"{API}/policies/{{kind}}/{{target}}", response_model=Policy)
def set_policy(
    kind: str,
    target: str,
    svc: Service,
    body: Annotated[dict[str, Any], Body()],
    model: ScopeModel = None,
    tag: ScopeTag = None,
) -> Response:
    """Create or replace one policy; the body holds its rules (approvals, approvers, gates, from, ...)."""
    return render(svc.approvals.set_policy(kind, target, body, model=model, tag=tag))


@router.delete(f"{API}/policies/{{kind}}/{{target}}", status_code=204)
def delete_policy(kind: str, target: str, svc: Service, model: ScopeModel = None, tag: ScopeTag = None) -> Response:
    svc.approvals.delete_policy(kind, target, model=model, tag=tag)
    return Response(status_code=204)


@router.get(f"{MODEL}/-/policies", response_model=list[AppliedPolicy])
def applicable_policies(name: ModelNameIn, svc: Service) -> Response:
    """Which policy applies to each stage and alias of a model, and why (which scope matched, which not)."""
    return _list(svc.approvals.applicable_policies(name))


# -- requests ---------------------------------------------------------------------------


@router.post(f"{API}/requests", response_model=TransitionRequest, status_code=201)
def create_request(body: CreateRequest, svc: Service) -> Response:
    request = svc.approvals.create_request(
        body.name, body.version, stage=body.stage, alias=body.alias, comment=body.comment
    )
    return render(request, 201)


@router.get(f"{API}/requests", response_model=list[TransitionRequest])
def list_requests(
    svc: Service,
    model: str | None = None,
    status: str | None = None,
    version: QueryInt | None = None,
    requester: str | None = None,
    before: QueryInt | None = None,
    max_results: QueryInt = 100,
) -> Response:
    found = svc.approvals.list_requests(
        model, status, version=version, requester=requester, before=before, max_results=max_results
    )
    return _list(found)


@router.get(f"{API}/requests/inbox", response_model=list[TransitionRequest])
def inbox(svc: Service) -> Response:
    """OPEN requests the caller may approve and has not reviewed."""
    return _list(svc.approvals.inbox())


@router.get(REQUEST, response_model=TransitionRequest)
def get_request(request_id: int, svc: Service) -> Response:
    return render(svc.approvals.get_request(request_id))


@router.post(f"{REQUEST}/approve", response_model=TransitionRequest)
def approve(request_id: int, svc: Service, body: Review | None = None) -> Response:
    return render(svc.approvals.approve(request_id, (body or Review()).comment))


@router.post(f"{REQUEST}/reject", response_model=TransitionRequest)
def reject(request_id: int, svc: Service, body: Review | None = None) -> Response:
    return render(svc.approvals.reject(request_id, (body or Review()).comment))


@router.post(f"{REQUEST}/cancel", response_model=TransitionRequest)
def cancel(request_id: int, svc: Service, body: Review | None = None) -> Response:
    return render(svc.approvals.cancel(request_id, (body or Review()).comment))


# -- a model's comments, rollback and placement -------------------------------------------


@router.get(f"{VERSION}/comments", response_model=list[Comment])
def list_comments(name: ModelNameIn, version: VersionIn, svc: Service) -> Response:
    return _list(svc.approvals.list_comments(name, version))


@router.post(f"{VERSION}/comments", response_model=Comment, status_code=201)
def add_comment(name: ModelNameIn, version: VersionIn, body: NewComment, svc: Service) -> Response:
    return render(svc.approvals.add_comment(name, version, body.body), 201)


@router.post(f"{MODEL}/-/rollback", response_model=Rollback)
def rollback(name: ModelNameIn, body: RollbackBody, svc: Service) -> Response:
    """Put back the version that held a stage or alias before (a request, under a policy)."""
    return render(svc.approvals.rollback(name, stage=body.stage, alias=body.alias, comment=body.comment))


@router.get(f"{MODEL}/-/placement", response_model=Placement)
def placement(
    name: ModelNameIn, svc: Service, stage: str | None = None, alias: str | None = None, at: str | None = None
) -> Response:
    """Which version(s) held a stage or alias at ``at`` (ms since the epoch or ISO date-time; default now)."""
    return render(svc.approvals.placement(name, stage=stage, alias=alias, at=at))
