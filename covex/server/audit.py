"""Routes of API v1 for the audit trail: list records, verify the chain, export JSON Lines."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, StreamingResponse

from covex.domain.audit import AuditRecord, ChainReport
from covex.domain.entities import Page
from covex.domain.errors import ChainBroken
from covex.server.routes import API, ERRORS, Service, render
from covex.server.schemas import QueryInt

router = APIRouter()
AUDIT = f"{API}/audit"


@router.get(AUDIT, response_model=Page[AuditRecord], tags=["audit"], responses=ERRORS)
def list_records(
    svc: Service,
    target: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    since: QueryInt | None = None,
    until: QueryInt | None = None,
    max_results: QueryInt = 100,
    page_token: str | None = None,
) -> Response:
    """Audit records, newest first. ``since``/``until`` are epoch milliseconds (``until`` exclusive)."""
    page = svc.audit.list_records(
        target=target,
        actor=actor,
        action=action,
        outcome=outcome,
        since=since,
        until=until,
        max_results=max_results,
        page_token=page_token,
    )
    return render(page)


@router.get(f"{AUDIT}/verify", response_model=ChainReport, tags=["audit"], responses=ERRORS)
def verify(svc: Service, expect_head: str | None = None) -> Response:
    """Recompute the hash chain; 409 ``AUDIT_CHAIN_BROKEN`` names the first record altered, deleted or reordered.

    ``expect_head`` (``SEQ:HASH``, a head saved earlier) must still be part of the chain.
    The 409 body carries the whole report under ``report``.
    """
    report = svc.audit.verify(expect_head)
    if report.ok:
        return render(report)
    body = {**ChainBroken(report.describe()).to_dict(), "report": report.model_dump()}
    return JSONResponse(body, status_code=ChainBroken.status)


@router.get(
    f"{AUDIT}/export",
    tags=["audit"],
    responses={**ERRORS, 200: {"content": {"application/x-ndjson": {}}}},
    response_class=StreamingResponse,
)
def export(svc: Service) -> StreamingResponse:
    """The whole trail as JSON Lines, then a head line; ``covex audit verify --file`` checks it offline."""
    return StreamingResponse(svc.audit.export_chunks(), media_type="application/x-ndjson")
