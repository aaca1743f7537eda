"""Hostile requests against the MLflow API: malformed bodies and races answer 4xx or succeed, never 500."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from covex.server import create_app
from covex.service import open_service
from covex.settings import Settings
from tests import support
from tests.server.mlflow.conftest import MlflowServer

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def test_a_deeply_nested_body_is_a_bad_request(mlflow_server: MlflowServer) -> None:
    body = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    r = httpx.post(
        f"{mlflow_server.url}{API}/registered-models/create",
        content=body,
        headers={"Authorization": f"Bearer {mlflow_server.user_token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error_code"] == "BAD_REQUEST"


def _at_once(url: str, token: str, calls: int, request: Callable[[httpx.Client, int], httpx.Response]) -> list[int]:
    start = threading.Barrier(calls)

    def one(i: int) -> int:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            start.wait()
            return request(http, i).status_code

    with ThreadPoolExecutor(calls) as pool:
        return list(pool.map(one, range(calls)))


def _race_one_key(url: str, token: str, exp: str, run: str, key: str) -> None:
    root = f"{exp}/{run}/artifacts"

    def tag(h: httpx.Client, i: int) -> httpx.Response:
        return h.post(f"{API}/runs/set-tag", json={"run_id": run, "key": key, "value": str(i)})

    def put(h: httpx.Client, i: int) -> httpx.Response:
        return h.put(f"{ARTIFACTS}/{root}/{key}", content=bytes([i]) * 100)

    def param(h: httpx.Client, i: int) -> httpx.Response:
        return h.post(f"{API}/runs/log-parameter", json={"run_id": run, "key": key, "value": str(i)})

    def exp_tag(h: httpx.Client, i: int) -> httpx.Response:
        return h.post(f"{API}/experiments/set-experiment-tag", json={"experiment_id": exp, "key": key, "value": str(i)})

    assert _at_once(url, token, 4, tag) == [200] * 4
    assert _at_once(url, token, 4, put) == [200] * 4
    assert sorted(_at_once(url, token, 2, param)) == [200, 400]  # one wins; the other is MLflow's "may not change"
    assert _at_once(url, token, 4, exp_tag) == [200] * 4


@pytest.mark.skipif(support.postgres_available() is not None, reason="needs PostgreSQL")
def test_concurrent_writes_of_one_key_never_fail_on_postgresql(tmp_path: Path) -> None:
    """Two writers of one run's key both found it unset and both inserted it: the loser was a 500."""
    with support.fresh_postgres_database() as db:
        settings = Settings(uri=db, artifacts=str(tmp_path / "artifacts"), user="admin")
        service = open_service(settings)
        try:
            service.access.bootstrap("admin")
            service.access.create_user("alice")
            token = service.access.create_token("alice", name="t").secret
            with support.server_thread(create_app(service, settings, auth=True), settings) as url:
                with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
                    exp = http.post(f"{API}/experiments/create", json={"name": "race"}).json()["experiment_id"]
                    run = http.post(f"{API}/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
                for trial in range(3):
                    _race_one_key(url, token, exp, run, f"k{trial}")
        finally:
            service.close()
