"""The requests inbox: requests waiting for the viewer, their gate results, approve, reject, cancel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from covex.domain.entities import ModelVersion
from covex.domain.errors import InvalidInput, NotFound
from covex.domain.names import MAX_NAME_LENGTH
from covex.domain.policy import TransitionRequest
from covex.domain.uris import ModelRef
from covex.service import RegistryService
from covex.service.requests import STATUSES
from covex.ui.session import Viewer
from covex.ui.web import PAGE_SIZE, Form, done, page, render

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Row:
    """One metric or parameter of the candidate beside the champion's."""

    key: str
    candidate: object
    champion: object
    changed: bool


def _number(value: str, field: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise InvalidInput(f"'{field}' must be a request number, got {value[:40]!r}")
    return int(value)


@router.get("/requests")
@page
def requests(
    request: Request, svc: Viewer, status: str = "", model: str = "", mine: str = "", before: str = ""
) -> Response:
    status = status.strip().upper()
    if status and status not in STATUSES:
        raise InvalidInput(f"'status' must be one of {', '.join(STATUSES)}, got {status[:40]!r}")
    model = model.strip()
    if len(model) > MAX_NAME_LENGTH:
        raise InvalidInput(f"'model' may hold at most {MAX_NAME_LENGTH} characters")
    below = _number(before, "before") if before else None
    found = svc.approvals.list_requests(
        model or None,
        status or None,
        requester=svc.actor if mine else None,
        before=below,
        max_results=PAGE_SIZE + 1,
    )
    shown, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
    waiting = svc.approvals.first_waiting(PAGE_SIZE + 1)
    context: dict[str, Any] = {"chosen": status, "model": model, "mine": bool(mine), "statuses": STATUSES}
    return render(
        request,
        "requests.html",
        svc,
        inbox=waiting[:PAGE_SIZE],
        more_waiting=len(waiting) > PAGE_SIZE,
        found=shown,
        next_before=shown[-1].id if more else None,
        **context,
    )


def _version(svc: RegistryService, name: str, number: int | None) -> ModelVersion | None:
    if number is None:
        return None
    try:
        return svc.get_version(ModelRef(name, "version", str(number)))
    except NotFound:
        return None  # deleted since the request was made: the page says so


def _rows(candidate: dict[str, object], champion: dict[str, object]) -> list[Row]:
    return [
        Row(k, candidate.get(k), champion.get(k), candidate.get(k) != champion.get(k))
        for k in sorted(set(candidate) | set(champion))
    ]


@router.get("/requests/{request_id}")
@page
def one(request: Request, request_id: str, svc: Viewer) -> Response:
    found = svc.approvals.get_request(_number(request_id, "id"))
    candidate = _version(svc, found.model, found.version)
    champion = _version(svc, found.model, found.champion)
    metrics = params = None
    if candidate is not None and champion is not None:
        metrics = _rows(dict(candidate.metrics), dict(champion.metrics))
        params = _rows(dict(candidate.params), dict(champion.params))
    me = svc.principal
    is_open = found.status == "OPEN"
    context: dict[str, Any] = {
        "may_review": is_open and svc.approvals.may_review(found.id),
        "may_cancel": is_open and (found.requester == me.name or me.is_admin),
        "candidate": candidate,
        "champion": champion,
        "metrics": metrics,
        "params": params,
    }
    return render(request, "request.html", svc, r=found, **context)


def _outcome(r: TransitionRequest) -> str:
    if r.status == "APPLIED":
        return f"version {r.version} of {r.model} is now in {r.target_kind} {r.target}"
    if r.status == "OPEN":
        return f"{r.approvals} of {r.approvals_needed} approvals"
    return r.status


@router.post("/requests/{request_id}/approve")
@page
def approve(request: Request, request_id: str, svc: Viewer, form: Form) -> Response:
    number = _number(request_id, "id")
    found = svc.approvals.approve(number, form.text("comment"))
    return done(request, f"/requests/{number}", f"Approved request {number}: {_outcome(found)}.")


@router.post("/requests/{request_id}/reject")
@page
def reject(request: Request, request_id: str, svc: Viewer, form: Form) -> Response:
    number = _number(request_id, "id")
    svc.approvals.reject(number, form.text("comment"))
    return done(request, f"/requests/{number}", f"Rejected request {number}.")


@router.post("/requests/{request_id}/cancel")
@page
def cancel(request: Request, request_id: str, svc: Viewer, form: Form) -> Response:
    number = _number(request_id, "id")
    svc.approvals.cancel(number, form.text("comment"))
    return done(request, f"/requests/{number}", f"Cancelled request {number}.")
