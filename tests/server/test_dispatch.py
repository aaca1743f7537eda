"""The route index picks the route the whole list would pick, for every route the app has."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Match, Route

from covex.server.app import create_app
from covex.server.dispatch import IndexedRouter, _Index
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests import support


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryService]:
    svc = open_service(Settings(uri=str(tmp_path_factory.mktemp("data")), user="tester"))
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def app(service: RegistryService) -> FastAPI:
    return create_app(service, auth=True)


def _concrete(path: str) -> list[str]:
    """Paths the route's template admits: values with and without a slash where a ``:path`` may hold one."""
    one = re.sub(r"\{[^}:]+:path\}", "team/churn", re.sub(r"\{[^}:]+(:(str|int))?\}", "7", path))
    bare = re.sub(r"\{[^}:]+:path\}", "churn", re.sub(r"\{[^}:]+(:(str|int))?\}", "x", path))
    return [one, bare, one + "/", path.split("{")[0]]


def _first_full(routes: list[Any], scope: dict[str, Any]) -> int | None:
    for i, route in enumerate(routes):
        match, _ = route.matches(dict(scope))
        if match == Match.FULL:
            return i
    return None


def test_the_app_routes_through_the_index(app: FastAPI) -> None:
    assert isinstance(app.router, IndexedRouter)
    assert app.router.middleware_stack == app.router.app


def test_for_every_route_the_candidates_hold_the_route_the_whole_list_matches_first(app: FastAPI) -> None:
    routes = app.router.routes
    index = _Index(routes)
    checked = 0
    for route in routes:
        if not isinstance(route, Route):
            continue
        for path in _concrete(route.path):
            for method in [*sorted(route.methods or {"GET"}), "DELETE", "PUT"]:
                scope = {"type": "http", "method": method, "path": path, "root_path": ""}
                whole = _first_full(routes, scope)
                picked = index.candidates(path)
                assert list(picked) == sorted(picked)
                via_index = _first_full([routes[i] for i in picked], scope)
                assert (whole is None and via_index is None) or picked[via_index] == whole, (method, path)  # type: ignore[index]
                checked += 1
    assert checked > 1000


def test_a_path_ending_in_a_newline_is_routed_as_by_the_whole_list(app: FastAPI) -> None:
    """Starlette's patterns end in ``$``, which matches before a final newline too: ``/api/v1/models/m/-/versions``
    and the same with ``%0A`` appended reach the same route, with and without the index."""
    routes = app.router.routes
    index = _Index(routes)
    for route in routes:
        if not isinstance(route, Route):
            continue
        for path in _concrete(route.path):
            for method in sorted(route.methods or {"GET"}):
                scope = {"type": "http", "method": method, "path": path + "\n", "root_path": ""}
                whole = _first_full(routes, scope)
                picked = index.candidates(path + "\n")
                via_index = _first_full([routes[i] for i in picked], scope)
                assert (whole is None and via_index is None) or picked[via_index] == whole, (method, path)  # type: ignore[index]


def test_near_misses_answer_as_before(app: FastAPI, service: RegistryService) -> None:
    """Wrong methods, unknown paths and slashes are answered by the whole router, as without the index."""
    token = service.access.bootstrap("tester").secret
    headers = {"Authorization": f"Bearer {token}"}
    with support.server_thread(app) as url, httpx.Client(base_url=url, headers=headers) as http:
        assert http.post("/api/v1/models", json={"name": "m"}).status_code == 201
        assert http.post("/api/v1/models/m/-/versions", json={"source": "s3://b/1"}).status_code == 201
        assert http.get("/api/v1/models/m/-/versions/1").json()["version"] == 1
        assert http.delete("/api/v1/resolve").status_code == 405
        assert http.put("/api/v1/models/m/-/versions").status_code == 405
        assert http.get("/api/v1/nothing-here").status_code == 404
        assert http.get("/api/v1/nothing-here").json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert http.get("/docs/assets/swagger-ui/swagger-ui.css").status_code == 200
        assert http.get("/ui/static/does-not-exist.css").status_code == 404
        assert http.get("/openapi.json").status_code == 200
        assert http.get("/sign-in").status_code == 200
