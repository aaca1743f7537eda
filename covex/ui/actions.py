"""Forms that change a model or a version: description, tags, aliases, stages, card, comments."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
