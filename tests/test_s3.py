"""Artifacts on S3, against moto's S3 server on a loopback port (embedded and through a server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

import covex
from covex.server import create_app
from covex.service import open_service
from covex.settings import Settings
from tests import support


@pytest.fixture(scope="module")
def s3_endpoint(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[str]:
    port = support.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch_module.setenv(key, value)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture
def s3_settings(s3_endpoint: str, tmp_path: Path) -> Settings:
    bucket = f"covex-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return Settings(
        uri=f"sqlite:///{tmp_path / 'covex.db'}",
        artifacts=f"s3://{bucket}/registry",
        artifacts_options={"endpoint_url": s3_endpoint},
        user="tester",
    )


@pytest.fixture(params=["embedded", "http"])
def s3_client(request: pytest.FixtureRequest, s3_settings: Settings) -> Iterator[covex.Client]:
    if request.param == "embedded":
        with covex.Client(settings=s3_settings) as c:
            yield c
        return
    service = open_service(s3_settings)
    with support.server_thread(create_app(service, auth=False)) as url, covex.Client(url) as c:
        yield c
    service.close()


def _objects(settings: Settings) -> list[str]:
    bucket = settings.artifacts_url.removeprefix("s3://").split("/", 1)[0]
    s3: Any = boto3.client("s3", endpoint_url=settings.artifacts_options["endpoint_url"])
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_upload_download_and_dedupe_on_s3(s3_client: covex.Client, s3_settings: Settings, tree, tmp_path: Path) -> None:
    big = bytes(range(256)) * 12_000  # ~3 MB: several chunks
    src = tree({"model.bin": big, "MLmodel": "flavors: {}"})
    s3_client.create_model("churn")
    v1 = s3_client.create_version("churn", src)
    v2 = s3_client.create_version("churn", src)
    assert ("READY", "READY") == (v1.status, v2.status)
    blobs = [k for k in _objects(s3_settings) if "/blobs/sha256/" in k]
    assert 2 == len(blobs)  # two distinct files, stored once across both versions
    assert not [k for k in _objects(s3_settings) if "/tmp/" in k]
    out = s3_client.download("models:/churn/2", tmp_path / "out")
    assert support.read_tree(src) == support.read_tree(out)


def test_gc_on_s3(s3_client: covex.Client, s3_settings: Settings, tree) -> None:
    s3_client.create_model("churn")
    s3_client.create_version("churn", tree({"keep.bin": b"keep"}))
    s3_client.create_version("churn", tree({"drop.bin": b"drop"}))
    s3_client.delete_version("churn", 2)
    dry = s3_client.gc(grace_seconds=0)
    assert (False, 1) == (dry.applied, len(dry.unreferenced))
    assert 2 == len([k for k in _objects(s3_settings) if "/blobs/" in k])
    done = s3_client.gc(apply=True, grace_seconds=0)
    assert dry.unreferenced == done.unreferenced
    assert 1 == len([k for k in _objects(s3_settings) if "/blobs/" in k])
    assert "keep.bin" == s3_client.list_files("churn", 1)[0].path
