"""MLflow's artifact proxy on Covex: uploads land in the blob store, downloads are verified, registry is read-only."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

import covex
from tests import support
from tests.server.mlflow.conftest import MlflowServer

pytestmark = pytest.mark.slow
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def _client(server: MlflowServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _run_root(server: MlflowServer) -> str:
    with _client(server, server.user_token) as c:
        run = c.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
    return run["artifact_uri"].removeprefix("mlflow-artifacts:/")


def test_upload_download_list_and_delete(mlflow_server: MlflowServer) -> None:
    root = _run_root(mlflow_server)
    body = os.urandom(3 * 1024 * 1024 + 7)
    with _client(mlflow_server, mlflow_server.user_token) as c:
        assert 200 == c.put(f"{ARTIFACTS}/{root}/model/weights.bin", content=body).status_code
        assert 200 == c.put(f"{ARTIFACTS}/{root}/model/MLmodel", content=b"flavors: {}\n").status_code
        got = c.get(f"{ARTIFACTS}/{root}/model/weights.bin")
        assert (200, hashlib.sha256(body).digest()) == (got.status_code, hashlib.sha256(got.content).digest())
        assert mlflow_server.artifacts.joinpath("blobs/sha256", hashlib.sha256(body).hexdigest()[:2]).is_dir()
        top = c.get(ARTIFACTS, params={"path": root}).json()
        assert {"files": [{"path": "model", "is_dir": True}]} == top
        inner = c.get(ARTIFACTS, params={"path": f"{root}/model"}).json()["files"]
        assert [("MLmodel", False, 12), ("weights.bin", False, len(body))] == [
            (f["path"], f["is_dir"], f["file_size"]) for f in inner
        ]
        assert {"files": []} == c.get(ARTIFACTS, params={"path": f"{root}/model/MLmodel"}).json()
        assert 200 == c.delete(f"{ARTIFACTS}/{root}/model/weights.bin").status_code
        gone = c.get(f"{ARTIFACTS}/{root}/model/weights.bin")
        assert (404, "RESOURCE_DOES_NOT_EXIST") == (gone.status_code, gone.json()["error_code"])
    # Someone else's run: not readable (as if it did not exist), not writable; outside any run's root: not writable.
    with _client(mlflow_server, mlflow_server.other_token) as other:
        hidden = other.get(f"{ARTIFACTS}/{root}/model/MLmodel")
        assert (404, "RESOURCE_DOES_NOT_EXIST") == (hidden.status_code, hidden.json()["error_code"])
        for path in (f"{root}/model/x", "0/stray.txt"):
            refused = other.put(f"{ARTIFACTS}/{path}", content=b"x")
            assert (403, "PERMISSION_DENIED") == (refused.status_code, refused.json()["error_code"])
    anonymous = httpx.get(f"{mlflow_server.url}{ARTIFACTS}/{root}/model/MLmodel")
    assert (401, "UNAUTHENTICATED") == (anonymous.status_code, anonymous.json()["error_code"])


BAD = [
    "{root}/../../x",
    "{root}/%2e%2e/%2e%2e/x",
    "{root}/a/../../b",
    "%2Fetc%2Fpasswd",
    "{root}/a%00b",
    "{root}/a\\..\\b",
    "{root}/%ff%fe",  # not UTF-8
]


@pytest.mark.parametrize("bad", BAD)
def test_traversal_paths_are_refused(mlflow_server: MlflowServer, bad: str) -> None:
    root = _run_root(mlflow_server)
    auth = {"Authorization": f"Bearer {mlflow_server.user_token}"}
    for method in ("GET", "PUT"):
        body = b"x" if method == "PUT" else b""
        r = support.raw_request(mlflow_server.url, method, f"{ARTIFACTS}/{bad.format(root=root)}", auth, body)
        assert (400, "INVALID_PARAMETER_VALUE") == (r.status_code, r.json()["error_code"]), r.text
    listed = support.raw_request(mlflow_server.url, "GET", f"{ARTIFACTS}?path={bad.format(root=root)}", auth)
    assert 400 == listed.status_code and "INVALID_PARAMETER_VALUE" == listed.json()["error_code"]


def test_registered_versions_are_served_read_only_and_verified(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    files = {"MLmodel": "flavors: {}\n", "data/weights.bin": os.urandom(200_000)}
    folder = support.make_tree(tmp_path / "model", files)
    with covex.Client(mlflow_server.url, token=mlflow_server.admin_token) as client:
        client.create_model("team/churn")
        version = client.create_version("team/churn", folder).version
    base = f"{ARTIFACTS}/registry/team/churn/-/{version}"
    with _client(mlflow_server, mlflow_server.admin_token) as c:
        listed = c.get(ARTIFACTS, params={"path": f"registry/team/churn/-/{version}"}).json()["files"]
        assert [("MLmodel", False), ("data", True)] == [(f["path"], f["is_dir"]) for f in listed]
        assert files["data/weights.bin"] == c.get(f"{base}/data/weights.bin").content
        for method in ("PUT", "DELETE"):
            refused = c.request(method, f"{base}/MLmodel", content=b"x" if method == "PUT" else None)
            assert (403, "PERMISSION_DENIED") == (refused.status_code, refused.json()["error_code"])
        assert "immutable" in refused.json()["message"]
        # A blob changed on disk: the download is cut short instead of handing out other bytes.
        digest = hashlib.sha256(files["data/weights.bin"]).hexdigest()  # type: ignore[arg-type]
        blob = mlflow_server.artifacts / "blobs" / "sha256" / digest[:2] / digest
        blob.chmod(0o644)
        blob.write_bytes(b"\0" * 200_000)
        with pytest.raises(httpx.RemoteProtocolError):
            c.get(f"{base}/data/weights.bin")
