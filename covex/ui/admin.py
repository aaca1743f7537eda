"""Administration: users, groups, service accounts, tokens, grants, policies, webhooks."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
