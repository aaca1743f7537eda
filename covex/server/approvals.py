"""Routes of API v1 for approvals (filled in by its own change)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
