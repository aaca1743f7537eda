"""Routes of API v1 for keeping the store consistent: the integrity check (``gc`` is in ``routes``)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import Field

from covex.domain.entities import FsckReport
from covex.server.routes import API, ERRORS, Service, render
from covex.server.schemas import RequestBody
from covex.service.maintenance import FSCK_BATCH, MAX_FSCK_BATCH

router = APIRouter()


class RunFsck(RequestBody):
    after: str | None = None
    limit: int = Field(default=FSCK_BATCH, ge=1, le=MAX_FSCK_BATCH, strict=True)  # not true, not 1.0


@router.post(f"{API}/admin/fsck", response_model=FsckReport, tags=["admin"], responses=ERRORS)
def fsck(body: RunFsck, svc: Service) -> Response:
    """Re-hash the stored files of the READY versions of the next ``limit`` models after ``after``.

    One batch per request, so that none runs for hours: call again with the report's ``next``
    as ``after`` until ``next`` is null.
    """
    return render(svc.maintenance.fsck(after=body.after, limit=body.limit))
