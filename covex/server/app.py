"""The HTTP server: a FastAPI app over one ``RegistryService``."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from covex import __version__, ui
from covex.domain.errors import CovexError, InternalError, InvalidInput, MethodNotAllowed, NotFound, ServiceUnavailable
from covex.server import (
    access,
    approvals,
    audit,
    deployments,
    evaluations,
    housekeeping,
    maintenance,
    monitoring,
    trust,
    webhooks,
)
from covex.server.dispatch import index_routes
from covex.server.errors import error_response, plain_error_page, unstorable
from covex.server.guard import GuardLimits, Refusal, RequestGuard, UploadSlots
from covex.server.mlflow import artifacts as mlflow_artifacts
from covex.server.mlflow import registry as mlflow_registry
from covex.server.mlflow import tracking as mlflow_tracking
from covex.server.mlflow.errors import EndpointNotFound, is_mlflow_path
from covex.server.mlflow.shapes import StageMap
from covex.server.protocol import GuardedHttpProtocol
from covex.server.routes import router
from covex.service import RegistryService, open_service
from covex.settings import Settings

log = logging.getLogger("covex.server")
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
# Swagger UI and ReDoc ship in the package (scripts/docs-assets refreshes them): the docs work offline.
DOCS_ASSETS = Path(__file__).parent / "static"
DOCS_ASSETS_URL = "/docs/assets"


def _field(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def create_app(
    service: RegistryService | None = None, settings: Settings | None = None, *, auth: bool | None = None
) -> FastAPI:
    """Build the app; without ``service``, open one from ``settings`` (or the environment).

    With ``auth`` (the default, from ``settings.auth``) every API call needs a bearer
    token; without, every caller acts as the service's own principal (local experiments).
    """
    settings = settings or Settings()
    if service is None:
        service = open_service(settings)
    if auth is None:
        auth = settings.auth
    # Each server process sends webhooks from the shared outbox (claims are safe across processes)
    # and does its share of the housekeeping.
    background = [
        webhooks.lifespan(service, interval=settings.dispatch_interval, allow=settings.webhook_allow),
        housekeeping.lifespan(service, settings),
    ]
    app = FastAPI(
        title="Covex",
        version=__version__,
        description="Model registry API: models, versions, stages, aliases and verified artifacts.",
        lifespan=_together([run for run in background if run is not None]),
        docs_url=None,  # served by _api_docs from the package, not a CDN
        redoc_url=None,
    )
    limits = GuardLimits(settings.max_body_bytes, settings.max_blob_bytes, settings.body_timeout)
    app.add_middleware(RequestGuard, limits=limits)
    app.add_middleware(RequestId)  # outermost: refusals of the guard carry the request id too
    app.state.service = service
    app.state.auth = auth
    app.state.uploads = UploadSlots(settings.max_uploads_per_caller)
    app.state.mlflow_settings = settings
    app.state.mlflow_stages = StageMap(settings.mlflow_stage_map, service.stages)

    @app.exception_handler(CovexError)
    async def _covex_error(request: Request, exc: CovexError) -> Response:
        if ui.is_ui_path(request.url.path):
            return ui.error_page(request, exc)
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"'{_field(tuple(e['loc']))}': {e['msg']}" for e in exc.errors()[:5]]
        error = InvalidInput("invalid request: " + "; ".join(problems))
        if ui.is_ui_path(request.url.path):
            return ui.error_page(request, error)
        return error_response(error, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        if isinstance(exc, Refusal):
            return ui.error_page(request, exc.error) if ui.is_ui_path(path) else error_response(exc.error, path)
        if is_mlflow_path(path) and exc.status_code in (404, 405):
            return error_response(EndpointNotFound(f"no such endpoint: {request.method} {path}"), path)
        if ui.is_ui_path(path) and exc.status_code in (404, 405):
            return ui.error_page(request, NotFound(f"there is no page at {path}"))
        if exc.status_code == 404:
            return error_response(NotFound(f"no such endpoint: {exc.detail}"))
        if exc.status_code == 405:
            response = error_response(MethodNotAllowed(f"this endpoint does not take {request.method}"))
            response.headers.update(exc.headers or {})  # Allow: the methods it takes
            return response
        err = InvalidInput(str(exc.detail))
        return JSONResponse(err.to_dict(), status_code=exc.status_code)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_away(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s", exc)
        error = ServiceUnavailable("the database is unavailable; see the server log")
        return plain_error_page(error) if ui.is_ui_path(request.url.path) else error_response(error, request.url.path)

    @app.exception_handler(UnicodeEncodeError)
    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: Exception) -> Response:
        error = unstorable(exc)
        return (
            ui.error_page(request, error)
            if ui.is_ui_path(request.url.path)
            else error_response(error, request.url.path)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", exc_info=exc)
        error = InternalError("internal error; see the server log")
        if ui.is_ui_path(request.url.path):
            return ui.error_page(request, error)
        return error_response(error, request.url.path)

    # The areas' routes before routes.py's: it ends in catch-alls like GET /api/v1/models/{name:path}.
    # Flat, not ``include_router``: FastAPI matches an included router's routes twice per request (once to
    # pick the router, once inside it), which cost more than most endpoints. None has a prefix or dependency.
    areas = [
        r
        for area in (
            access,
            approvals,
            audit,
            deployments,
            evaluations,
            maintenance,
            monitoring,
            trust,
            webhooks,
            mlflow_registry,
            mlflow_tracking,
            mlflow_artifacts,
            ui,
        )
        for r in area.router.routes
    ]
    core = set(map(id, router.routes))
    app.router.routes.extend(sorted([*areas, *router.routes], key=lambda r: _match_order(r, id(r) in core)))
    _api_docs(app)
    ui.mount_static(app)
    index_routes(app)
    return app


def _match_order(route: BaseRoute, core: bool) -> tuple[int, bool]:
    """Routes are tried in order: plain paths first, then paths with values, then those with a model name
    (``{name:path}`` may hold a ``/``: anything under ``/models/``); in the first two, the registry's own
    routes (the most used reads) before the other areas'.

    Only the last group can overlap, and there the areas' routes stay before the registry's catch-alls,
    each in the order its area declares them (the sort is stable).
    """
    path: str = getattr(route, "path", "")
    group = 2 if ":path}" in path else 1 if "{" in path else 0
    return group, core if group == 2 else not core


def _api_docs(app: FastAPI) -> None:
    """Serve /docs (Swagger UI) and /redoc with their scripts from the package; like /openapi.json, no token."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        assets = root + DOCS_ASSETS_URL
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{assets}/swagger-ui/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # its default sends the document to swagger.io
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        assets = root + DOCS_ASSETS_URL
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )


class RequestId:
    """Give each request an id (the caller's ``X-Request-ID`` when sane), echo it, keep it for the audit trail."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")


def _together(lifespans: list[Lifespan]) -> Lifespan:
    """One lifespan running several: started in order, stopped in reverse."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for lifespan in lifespans:
                await stack.enter_async_context(lifespan(app))
            yield

    return run


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` with several workers: settings come from ``COVEX_*``."""
    settings = Settings()
    GuardedHttpProtocol.configure(settings)  # this worker's connections
    return create_app(settings=settings)
