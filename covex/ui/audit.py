"""The audit trail: records with filters, verifying the chain, export."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
