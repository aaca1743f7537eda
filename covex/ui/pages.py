"""The UI's pages: each reads through the service as the signed-in user and renders one template."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from covex import __version__
from covex.domain.errors import CovexError, InvalidInput, Unauthenticated
from covex.domain.uris import ModelRef
from covex.server.guard import client_address
from covex.ui import session
from covex.ui.session import Viewer

HERE = Path(__file__).parent
STATIC_URL = "/ui/static"
PAGE_SIZE = 50
MAX_FORM_BYTES = 16 * 1024
router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), auto_reload=False
)
templates.globals.update(version=__version__, static=STATIC_URL)
templates.filters.update(
    utc=lambda ms: datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    urlpath=lambda name: quote(name, safe="/"),
    prepend=lambda text, prefix: f"{prefix}{text}",
)
_API = ("/api/", "/docs", "/redoc", "/openapi.json", "/health", "/ready")


def is_ui_path(path: str) -> bool:
    return not path.startswith(_API)


def mount_static(app: Any) -> None:
    app.mount(STATIC_URL, StaticFiles(directory=HERE / "static"), name="ui-static")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    user = context.pop("user", None)
    html = templates.get_template(template).render(
        request=request, user=user, csrf=session.csrf_token(request), auth=request.app.state.auth, **context
    )
    response = HTMLResponse(html, status_code=status)
    session.remember_csrf(request, response)
    response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def error_page(request: Request, error: CovexError) -> Response:
    """An error as a page: signing in again when the token is missing or no longer valid."""
    if isinstance(error, Unauthenticated):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/sign-in?next={quote(target)}", status_code=303)
    return render(request, "error.html", status=error.status, error=error)


def page(handler: Callable[..., Response]) -> Callable[..., Response]:
    """A page handler whose Covex errors become error pages (never JSON, never a traceback)."""

    @functools.wraps(handler)
    def run(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return handler(request, *args, **kwargs)
        except CovexError as exc:
            return error_page(request, exc)

    return run


def _safe_next(target: str) -> str:
    # Only a path on this site: never an absolute URL another site could send a user to.
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


# -- signing in ---------------------------------------------------------------------------


@router.get("/sign-in")
def sign_in_form(request: Request, next: str = "/") -> Response:
    return render(request, "sign_in.html", next=_safe_next(next))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    try:
        form = await _form(request)
        session.check_csrf(request, form.get("csrf", ""))
        token, target = form.get("token", "").strip(), _safe_next(form.get("next", "/"))
        checking = request.app.state.service.with_credentials(token or None, source=client_address(request.scope))
        try:
            await run_in_threadpool(checking.access.whoami)  # the token is valid and its user enabled
        except Unauthenticated as exc:
            return render(request, "sign_in.html", status=401, next=target, problem=exc.message)
    except CovexError as exc:
        return error_page(request, exc)
    response = RedirectResponse(target, status_code=303)
    session.sign_in(request, response, token)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    try:
        session.check_csrf(request, (await _form(request)).get("csrf", ""))
    except CovexError as exc:
        return error_page(request, exc)
    response = RedirectResponse("/sign-in", status_code=303)
    session.sign_out(response)
    return response


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form (the UI's forms hold a few short fields)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidInput(f"a form may hold at most {MAX_FORM_BYTES} bytes")
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


# -- models -------------------------------------------------------------------------------


@router.get("/")
@page
def models(request: Request, svc: Viewer, filter: str = "", order: str = "name ASC", page_token: str = "") -> Response:
    if order not in ORDERS:
        raise InvalidInput(f"'order' must be one of: {', '.join(ORDERS)}")
    found = svc.search_models(filter or None, [order], PAGE_SIZE, page_token or None)
    return render(request, "models.html", user=svc.actor, models=found, filter=filter, order=order, orders=ORDERS)


ORDERS = ("name ASC", "name DESC", "last_updated_timestamp DESC", "creation_timestamp DESC")


@router.get("/models/{name:path}/-/versions/{number}")
@page
def version(request: Request, name: str, number: str, svc: Viewer) -> Response:
    if not number.isdigit():
        raise InvalidInput(f"version {number!r} is not a number")
    ref = ModelRef(name, "version", number)
    found, files = svc.list_files(ref)
    history = svc.history(name, found.version)
    return render(request, "version.html", user=svc.actor, v=found, files=files, history=history)


@router.get("/models/{name:path}")
@page
def model(request: Request, name: str, svc: Viewer, page_token: str = "") -> Response:
    found = svc.get_model(name)
    versions = svc.search_versions(None, ["version DESC"], PAGE_SIZE, page_token or None, model=name)
    return render(request, "model.html", user=svc.actor, m=found, versions=versions, stages=svc.stages)
