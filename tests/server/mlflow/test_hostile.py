"""Hostile requests against the MLflow API: malformed bodies and races answer 4xx or succeed, never 500."""

from __future__ import annotations

import httpx

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
