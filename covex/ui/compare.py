"""Comparing 2 to 4 versions side by side: metrics, params, signature, lineage, evaluations."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
