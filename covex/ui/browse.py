"""Browsing the registry: the models list, a model, a version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from covex.domain.errors import InvalidInput, NotFound
from covex.domain.uris import ModelRef
from covex.service import RegistryService
from covex.ui.session import Viewer
from covex.ui.web import PAGE_SIZE, page, render

router = APIRouter(include_in_schema=False)
ORDERS = ("name ASC", "name DESC", "last_updated_timestamp DESC", "creation_timestamp DESC")


@router.get("/")
@page
def models(request: Request, svc: Viewer, filter: str = "", order: str = "name ASC", page_token: str = "") -> Response:
    if order not in ORDERS:
        raise InvalidInput(f"'order' must be one of: {', '.join(ORDERS)}")
    found = svc.search_models(filter or None, [order], PAGE_SIZE, page_token or None)
    return render(request, "models.html", svc, models=found, filter=filter, order=order, orders=ORDERS)


@router.get("/models/{name:path}/-/versions/{number}")
@page
def version(request: Request, name: str, number: str, svc: Viewer) -> Response:
    if not number.isdigit():
        raise InvalidInput(f"version {number!r} is not a number")
    ref = ModelRef(name, "version", number)
    found, files = svc.list_files(ref)
    history = svc.history(name, found.version)
    role, comments = svc.role_on(name), svc.approvals.list_comments(name, found.version)
    context: dict[str, Any] = {
        "files": files,
        "history": history,
        "role": role,
        "comments": comments,
        "stages": svc.stages,
        "card": _card(svc, ref),
    }
    return render(request, "version.html", svc, v=found, **context)


def _card(svc: RegistryService, ref: ModelRef) -> dict[str, Any]:
    try:
        return svc.get_document(ref, "card")
    except NotFound:
        return {}


@router.get("/models/{name:path}")
@page
def model(request: Request, name: str, svc: Viewer, page_token: str = "") -> Response:
    found = svc.get_model(name)
    versions = svc.search_versions(None, ["version DESC"], PAGE_SIZE, page_token or None, model=name)
    role = svc.role_on(name)
    return render(request, "model.html", svc, m=found, versions=versions, stages=svc.stages, role=role)
