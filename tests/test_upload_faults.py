"""Uploads that break, lie or rot: nothing half-written is ever stored, served or marked READY."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h11
import httpx
import pytest

import covex
from covex.client import client as client_module
from covex.client.backend import Backend
from covex.client.http import HttpBackend
from covex.domain.entities import FileEntry, NewVersion
from covex.server.uploads import BUFFER
from covex.service import RegistryService
from tests import support
from tests.conftest import Registry

DB_PARAMS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
BIG = 3 * BUFFER  # larger than the server's upload buffer, so a cut leaves written bytes behind


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def uploads_in_flight(service: RegistryService) -> list[str]:
    """Temporary files of uploads that have not been committed or aborted."""
    try:
        return sorted(service.blobs.fs.ls(f"{service.blobs.root}/tmp", detail=False))
    except FileNotFoundError:
        return []


def partly_written(service: RegistryService) -> bool:
    """An upload is in flight and has already written a first buffer to its temporary file."""
    try:
        return any(service.blobs.fs.size(p) >= 1024 * 1024 for p in uploads_in_flight(service))
    except FileNotFoundError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def assert_not_stored(service: RegistryService, *digests: str) -> None:
    assert wait_until(lambda: not uploads_in_flight(service)), uploads_in_flight(service)
    assert [] == [d for d in digests if service.blobs.fs.exists(service.blobs.blob_path(d))]


@pytest.fixture(params=DB_PARAMS)
def http_registry(request: pytest.FixtureRequest, registries: Callable[[str, str], Registry]) -> Registry:
    """The HTTP server on each database, on an empty registry."""
    reg = registries("http", request.param)
    reg.reset()
    return reg


@pytest.fixture(params=DB_PARAMS)
def service(request: pytest.FixtureRequest, registries: Callable[[str, str], Registry]) -> RegistryService:
    """The in-process service on each database, on an empty registry."""
    reg = registries("embedded", request.param)
    reg.reset()
    return reg.service


@pytest.fixture
def http(http_registry: Registry) -> Iterator[httpx.Client]:
    auth = {"Authorization": f"Bearer {http_registry.settings.token}"}
    with httpx.Client(base_url=http_registry.url, timeout=30, headers=auth) as c:
        yield c


@pytest.fixture
def backend(registry: Registry) -> Iterator[Backend]:
    """What a ``covex.Client`` talks to: the service in-process, or the HTTP backend."""
    if registry.url.startswith("http"):
        http_backend = HttpBackend(registry.settings)
        yield http_backend
        http_backend.close()
    else:
        yield registry.service


def pending_version(http: httpx.Client, data: bytes, path: str = "model.bin") -> dict[str, object]:
    assert 201 == http.post("/api/v1/models", json={"name": "churn"}).status_code
    files = [{"path": path, "digest": sha256(data), "size": len(data)}]
    r = http.post("/api/v1/models/churn/-/versions", json={"files": files})
    assert (201, "PENDING") == (r.status_code, r.json()["status"])
    return dict(r.json())


# -- an upload cut off mid-way --------------------------------------------------------------------


def test_chunk_stream_breaking_in_process_stores_nothing(service: RegistryService) -> None:
    data = os.urandom(BIG)

    def chunks() -> Iterator[bytes]:
        yield data[: BIG // 2]
        # The writer stores a chunk in a thread of its own while the next one is read: wait for it.
        assert wait_until(lambda: partly_written(service), timeout=30)
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        service.put_blob(sha256(data), len(data), chunks())
    assert_not_stored(service, sha256(data))


def _auth(reg: Registry) -> dict[str, str]:
    return {"Authorization": f"Bearer {reg.settings.token}"}


def _body_raises(reg: Registry, digest: str, data: bytes) -> None:
    url, service = reg.url, reg.service

    def body() -> Iterator[bytes]:
        yield data[: len(data) // 2]
        assert wait_until(lambda: partly_written(service))
        raise OSError("connection dropped")

    with pytest.raises(OSError, match="connection dropped"):
        httpx.put(
            f"{url}/api/v1/blobs/{digest}", content=body(), headers={"Content-Length": str(len(data)), **_auth(reg)}
        )


def _body_ends_early(reg: Registry, digest: str, data: bytes) -> None:
    url, service = reg.url, reg.service

    def body() -> Iterator[bytes]:
        yield data[: len(data) // 2]
        assert wait_until(lambda: partly_written(service))

    with pytest.raises((httpx.TransportError, h11.LocalProtocolError)):
        httpx.put(
            f"{url}/api/v1/blobs/{digest}", content=body(), headers={"Content-Length": str(len(data)), **_auth(reg)}
        )


def _socket_closes(reg: Registry, digest: str, data: bytes) -> None:
    url, service = reg.url, reg.service
    parsed = httpx.URL(url)
    head = (
        f"PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: {parsed.host}\r\n"
        f"Authorization: Bearer {reg.settings.token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection((parsed.host, parsed.port), timeout=10) as sock:
        sock.sendall(head + data[: len(data) // 2])
        assert wait_until(lambda: partly_written(service))


@pytest.mark.parametrize("cut", [_body_raises, _body_ends_early, _socket_closes], ids=lambda f: f.__name__[1:])
def test_http_upload_cut_off_stores_nothing_and_a_retry_succeeds(
    http_registry: Registry, http: httpx.Client, tree, tmp_path: Path, cut
) -> None:
    data = os.urandom(BIG)
    version = pending_version(http, data)
    cut(http_registry, sha256(data), data)
    assert_not_stored(http_registry.service, sha256(data))
    assert "PENDING" == http.get("/api/v1/models/churn/-/versions/1").json()["status"]
    r = http.post("/api/v1/models/churn/-/versions/1/finalize")
    assert (409, "INVALID_STATE") == (r.status_code, r.json()["error_code"])
    assert "model.bin (not uploaded)" in r.json()["message"]
    with http_registry.client() as client:
        retry = client.create_version("churn", tree({"model.bin": data}))
        assert (2, "READY", version["manifest_digest"]) == (retry.version, retry.status, retry.manifest_digest)
        out = client.download("churn", tmp_path / "out", 2)
    assert data == (out / "model.bin").read_bytes()


def test_client_read_failure_marks_the_version_failed_and_a_retry_succeeds(
    client: covex.Client, registry: Registry, tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(256 * 1024)
    src = tree({"model.bin": data, "MLmodel": "flavors: {}\n"})
    real_read = client_module._read

    def read_one_chunk_then_fail(path: Path, chunk_size: int, progress: object) -> Iterator[bytes]:
        chunks = real_read(path, 16 * 1024, None)
        yield next(chunks)
        raise OSError("disk went away")

    client.create_model("churn")
    monkeypatch.setattr(client_module, "_read", read_one_chunk_then_fail)
    with pytest.raises(OSError, match="disk went away"):
        client.create_version("churn", src)
    monkeypatch.undo()

    failed = client.get_version("churn", 1)
    assert "FAILED" == failed.status
    assert "upload failed" in failed.status_message
    assert "disk went away" in failed.status_message
    assert_not_stored(registry.service, sha256(data))
    with pytest.raises(covex.NotFound):
        client.get_latest_version("churn")
    with pytest.raises(covex.InvalidState):
        client.set_alias("churn", "champion", 1)
    with pytest.raises(covex.InvalidState):
        client.download("churn", tmp_path / "failed", 1)

    retry = client.create_version("churn", src)
    assert (2, "READY") == (retry.version, retry.status)
    assert 2 == client.get_latest_version("churn").version
    assert support.read_tree(src) == support.read_tree(client.download("churn", tmp_path / "out", 2))


# -- content that does not match its digest ------------------------------------------------------


def test_http_put_with_a_wrong_digest_is_rejected(http_registry: Registry, http: httpx.Client) -> None:
    data, claimed = os.urandom(10_000), sha256(b"something else")
    r = http.put(f"/api/v1/blobs/{claimed}", content=data)
    assert (400, "ARTIFACT_CORRUPTED") == (r.status_code, r.json()["error_code"])
    assert claimed in r.json()["message"]
    assert_not_stored(http_registry.service, claimed, sha256(data))


@pytest.mark.parametrize(
    ("claimed_size", "says"), [(None, "does not match its digest"), (9_999, "longer than"), (10_001, "cut short")]
)
def test_put_blob_in_process_checks_digest_and_size(
    service: RegistryService, claimed_size: int | None, says: str
) -> None:
    data = os.urandom(10_000)
    digest = sha256(b"something else") if claimed_size is None else sha256(data)
    with pytest.raises(covex.ArtifactCorrupted, match=says):
        service.put_blob(digest, claimed_size or len(data), [data])
    assert_not_stored(service, digest, sha256(data))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        pytest.param("same-size", "does not match its digest", id="same-size"),  # the store's check
        # The client's own check: it never sends more or fewer bytes than it hashed.
        pytest.param("grown", "changed while it was uploaded", id="grown"),
        pytest.param("shrunk", "changed while it was uploaded", id="shrunk"),
    ],
)
def test_file_changed_after_hashing_fails_the_version(
    client: covex.Client, registry: Registry, tree, monkeypatch: pytest.MonkeyPatch, change: str, says: str
) -> None:
    original = os.urandom(50_000)
    edited = {"same-size": os.urandom(50_000), "grown": original + b"more", "shrunk": original[:-4]}[change]
    src = tree({"model.bin": original})
    real_scan = client_module.scan

    def scan_then_edit(path: Path, chunk_size: int) -> list:
        files = real_scan(path, chunk_size)
        (src / "model.bin").write_bytes(edited)
        return files

    client.create_model("churn")
    monkeypatch.setattr(client_module, "scan", scan_then_edit)
    with pytest.raises(covex.ArtifactCorrupted, match=says):
        client.create_version("churn", src)
    v = client.get_version("churn", 1)
    assert ("FAILED", True) == (v.status, v.status_message.startswith("upload failed"))
    assert [] == [x.version for x in client.list_versions("churn") if x.status == "READY"]
    assert_not_stored(registry.service, sha256(original), sha256(edited))


# -- downloads are verified ----------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["flipped", "truncated", "padded"])
def test_download_of_a_corrupted_blob_leaves_no_file(
    client: covex.Client, registry: Registry, tree, tmp_path: Path, damage: str
) -> None:
    good, bad = os.urandom(20_000), os.urandom(20_000)
    client.create_model("churn")
    client.create_version("churn", tree({"a.bin": good, "b.bin": bad}))
    blob = Path(registry.service.blobs.blob_path(sha256(bad)))
    blob.write_bytes({"flipped": bytes([bad[0] ^ 1]) + bad[1:], "truncated": bad[:-1], "padded": bad + b"\0"}[damage])
    try:
        earlier = support.make_tree(tmp_path / "earlier", {"b.bin": b"an earlier download"})
        for dst in (tmp_path / "fresh", earlier):
            with pytest.raises(covex.ArtifactCorrupted, match=r"b\.bin"):
                client.download("churn", dst, 1)
            assert [] == sorted(p.name for p in dst.rglob("*.covex-partial"))
        assert not (tmp_path / "fresh" / "b.bin").exists()
        assert b"an earlier download" == (earlier / "b.bin").read_bytes()
    finally:
        registry.service.blobs.delete(sha256(bad))


# -- finalize checks that every blob is there ----------------------------------------------------


def test_finalize_names_missing_files_and_succeeds_once_they_are_uploaded(backend: Backend) -> None:
    stored, missing = os.urandom(1000), os.urandom(2000)
    backend.create_model("churn")
    files = [
        FileEntry(path="weights/model.bin", digest=sha256(missing), size=len(missing)),
        FileEntry(path="MLmodel", digest=sha256(stored), size=len(stored)),
    ]
    backend.put_blob(sha256(stored), len(stored), [stored])
    assert "PENDING" == backend.create_version("churn", NewVersion(files=files)).status
    with pytest.raises(covex.InvalidState, match=r"missing files: weights/model.bin \(not uploaded\)$"):
        backend.finalize_version("churn", 1)
    assert "PENDING" == backend.get_version(covex.parse_model_uri("models:/churn/1")).status
    backend.put_blob(sha256(missing), len(missing), [missing])
    assert "READY" == backend.finalize_version("churn", 1).status
    assert "READY" == backend.finalize_version("churn", 1).status  # finalizing again changes nothing


# -- artifact paths -----------------------------------------------------------------------------


BAD_PATHS = ["../evil.bin", "a/../../evil.bin", "a/../b.bin", "..", "/etc/passwd", "C:/evil.bin", "a\\b.bin", ".", ""]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_http_rejects_paths_outside_the_version(http: httpx.Client, path: str) -> None:
    assert 201 == http.post("/api/v1/models", json={"name": "churn"}).status_code
    files = [{"path": "ok.bin", "digest": sha256(b"ok"), "size": 2}, {"path": path, "digest": "0" * 64, "size": 1}]
    r = http.post("/api/v1/models/churn/-/versions", json={"files": files})
    assert (400, "INVALID_PARAMETER_VALUE") == (r.status_code, r.json()["error_code"])
    assert "'files[1].path'" in r.json()["message"]
    assert [] == http.get("/api/v1/models/churn/-/versions").json()["items"]
    r = http.post("/api/v1/models/churn/-/versions", json={"source": "s3://b/churn"})
    assert 1 == r.json()["version"]  # the rejected request used no version number


@pytest.mark.parametrize("path", BAD_PATHS)
def test_service_rejects_paths_outside_the_version(service: RegistryService, path: str) -> None:
    service.create_model("churn")
    with pytest.raises(covex.InvalidInput, match=r"'files\[0\]\.path'"):
        service.create_version("churn", NewVersion(files=[FileEntry(path=path, digest="0" * 64, size=1)]))
    assert [] == service.search_versions(model="churn").items


# -- garbage collection --------------------------------------------------------------------------


def test_gc_collects_only_unreferenced_blobs(
    client: covex.Client, registry: Registry, tree, request: pytest.FixtureRequest
) -> None:
    blobs = registry.service.blobs
    client.gc(apply=True, grace_seconds=0)  # earlier tests' blobs: the registry was emptied
    shared, only_v1, only_v2, other = (os.urandom(1000 + i) for i in range(4))
    client.create_model("churn")
    client.create_model("other")
    client.create_version("churn", tree({"shared.bin": shared, "v1.bin": only_v1}))
    client.create_version("churn", tree({"shared.bin": shared, "v2.bin": only_v2}))
    client.create_version("other", tree({"other.bin": other}))
    abandoned = f"{blobs.root}/tmp/abandoned-upload"
    blobs.fs.pipe(abandoned, b"half")
    request.addfinalizer(lambda: blobs.remove_path(abandoned))
    client.delete_version("churn", 1)
    client.delete_model("other")
    garbage = sorted([sha256(only_v1), sha256(other)])
    kept = [sha256(shared), sha256(only_v2)]

    assert ([], 0) == (client.gc().unreferenced, client.gc().stale_uploads)  # too young by default
    dry = client.gc(grace_seconds=0)
    assert (False, garbage, len(only_v1) + len(other), 2, 1) == (
        dry.applied,
        dry.unreferenced,
        dry.bytes_freed,
        dry.referenced,
        dry.stale_uploads,
    )
    assert sorted(garbage + kept) == sorted(blobs.list_blobs())

    applied = client.gc(apply=True, grace_seconds=0)
    assert (True, garbage, 1) == (applied.applied, applied.unreferenced, applied.stale_uploads)
    assert sorted(kept) == sorted(blobs.list_blobs())
    assert [] == uploads_in_flight(registry.service)
    assert ([], 0) == (client.gc(apply=True, grace_seconds=0).unreferenced, client.gc(grace_seconds=0).bytes_freed)
    assert "READY" == client.get_version("churn", 2).status
    assert [] == blobs.missing([f.digest for f in client.list_files("churn", 2)])
