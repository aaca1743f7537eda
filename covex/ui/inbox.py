"""The requests inbox: requests waiting for the viewer, their gate results, approve, reject, cancel."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
