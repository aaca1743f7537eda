"""The audit trail: records with filters, verifying the chain, export."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from covex.domain.errors import InvalidInput
from covex.domain.names import MAX_NAME_LENGTH
from covex.ui.session import Viewer
from covex.ui.web import PAGE_SIZE, page, render

router = APIRouter(include_in_schema=False)
OUTCOMES = ("ok", "refused")
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)  # epoch milliseconds, and a next day to end on
MAX_FILTER = 2 * MAX_NAME_LENGTH + 16  # a target names a model, a version or an alias under it


def _text(value: str, field: str) -> str:
    value = value.strip()
    if len(value) > MAX_FILTER:
        raise InvalidInput(f"'{field}' may hold at most {MAX_FILTER} characters")
    return value


def _day(value: str, field: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value[:40])
    except ValueError:
        raise InvalidInput(f"'{field}' must be a date as YYYY-MM-DD, got {value[:40]!r}") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput(f"'{field}' must be a date between {FIRST_DAY} and {LAST_DAY}, got {day}")
    return day


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@router.get("/audit")
@page
def records(
    request: Request,
    svc: Viewer,
    target: str = "",
    actor: str = "",
    action: str = "",
    outcome: str = "",
    since: str = "",
    until: str = "",
    page_token: str = "",
) -> Response:
    filters = {f: _text(v, f) for f, v in (("target", target), ("actor", actor), ("action", action))}
    if outcome and outcome not in OUTCOMES:
        raise InvalidInput(f"'outcome' must be one of {', '.join(OUTCOMES)}, got {outcome[:40]!r}")
    first, last = _day(since, "since"), _day(until, "until")
    if first and last and last < first:
        raise InvalidInput("'until' must not be before 'since'")
    if len(page_token) > 200:
        raise InvalidInput("'page_token' is not a token this server issued")
    found = svc.audit.list_records(
        target=filters["target"] or None,
        actor=filters["actor"] or None,
        action=filters["action"] or None,
        outcome=outcome or None,
        since=_midnight(first) if first else None,
        # ``until`` is the last day shown: records before the next midnight (UTC).
        until=_midnight(last + timedelta(days=1)) if last else None,
        max_results=PAGE_SIZE,
        page_token=page_token or None,
    )
    days = {"since": first.isoformat() if first else "", "until": last.isoformat() if last else ""}
    shown = {**filters, "outcome": outcome, **days}
    query = urlencode({k: v for k, v in shown.items() if v})
    return render(request, "audit.html", svc, records=found, filters=shown, outcomes=OUTCOMES, query=query)


@router.get("/audit/verify")
@page
def verify(request: Request, svc: Viewer) -> Response:
    report = svc.audit.verify()
    return render(request, "audit_verify.html", svc, report=report)


@router.get("/audit/export")
@page
def export(request: Request, svc: Viewer) -> Response:
    chunks = svc.audit.export_chunks()  # refused here, before the download starts, when the viewer may not read
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        chunks,
        media_type="application/x-ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="covex-audit-{stamp}.jsonl"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
