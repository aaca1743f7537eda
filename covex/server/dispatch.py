"""Routing by path: a request is matched against the routes its path can match, not against all of them.

Starlette tries the routes one by one, about a microsecond each, and the API and the pages have over
250: a new version (``POST /api/v1/models/{name}/-/versions``) was matched after ~200 others, 0.24 ms
per call. Yet a plain path matches only itself, and a path with values only the paths that begin with
its text up to the first value and end with its text after the last. So the routes a request can
match fully are those few, and the first of them in the app's order is the one the whole list would
choose: they are routed by a router holding only them, in that order. Whatever they do not match
fully (a wrong method, a missing slash, an unknown path) goes to the whole router, which answers as
it always did.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRouter
from starlette._utils import get_route_path  # the path the routes match: without the root path
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

_MAX_VIEWS = 1024  # distinct sets of candidates: one per route shape, far fewer in practice


class _Index:
    """The routes by what a path must be (plain paths) or begin with (paths with values), in order."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        self.size = len(routes)
        self.plain: dict[str, list[int]] = {}
        self.prefixed: list[tuple[int, str, str]] = []  # (position, what the path begins with, ends with)
        self.always: list[int] = []
        for i, route in enumerate(routes):
            path = getattr(route, "path", None)
            if isinstance(route, Route) and isinstance(path, str) and "{" not in path:
                self.plain.setdefault(path, []).append(i)
            elif isinstance(route, Route) and isinstance(path, str):
                self.prefixed.append((i, path[: path.index("{")], path[path.rindex("}") + 1 :]))
            elif isinstance(route, Mount) and not route.path.count("{"):
                self.prefixed.append((i, route.path + "/", ""))
            else:  # anything else (a host, a mount with values) may match any path
                self.always.append(i)

    def candidates(self, path: str) -> tuple[int, ...]:
        if path.endswith("\n"):  # a route's pattern ends in "$", which matches before a final newline too
            return tuple(range(self.size))
        found = [i for i, head, tail in self.prefixed if path.startswith(head) and path.endswith(tail)]
        found += self.plain.get(path, ())
        found += self.always
        return tuple(sorted(found))


class IndexedRouter(APIRouter):
    """FastAPI's router, trying first only the routes a request's path can match."""

    _index: _Index | None = None
    _views: dict[tuple[int, ...], APIRouter]

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        index = self._index
        if index is None or index.size != len(self.routes):  # routes were added since (docs, static files)
            index, self._views = _Index(self.routes), {}
            self._index = index
        picked = index.candidates(get_route_path(scope))
        if not picked:
            await super().app(scope, receive, send)
            return
        view = self._views.get(picked)
        if view is None:
            view = self._view([self.routes[i] for i in picked])
            if len(self._views) < _MAX_VIEWS:
                self._views[picked] = view
        scope.setdefault("router", self)  # url_for needs every route, not the view's
        await view.app(scope, receive, send)

    def _view(self, routes: list[BaseRoute]) -> APIRouter:
        view = APIRouter(redirect_slashes=False, default=self._whole)
        view.routes = routes
        return view

    async def _whole(self, scope: Scope, receive: Receive, send: Send) -> None:
        """No candidate matched fully: the whole router answers (405, a redirect, a 404 page)."""
        await super().app(scope, receive, send)


def index_routes(app: Any) -> None:
    """Route ``app``'s requests through an index of its routes (``IndexedRouter``)."""
    router = app.router
    router.__class__ = IndexedRouter
    router.middleware_stack = router.app  # Starlette bound the plain router's ``app`` when it was made
