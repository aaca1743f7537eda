"""A store that fails (full, read-only, I/O errors): 507 or 503 saying storage failed, never a 500.

The server, the SDK, the database and the blob store are real; only the fsspec file system
under the store fails, as a full or read-only disk would (the tests may run as root, where
``chmod`` does not stop writes). Every upload that fails leaves no temporary file and no blob,
and the SDK marks its version FAILED.
"""

from __future__ import annotations

import errno
import io
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import covex
from covex.artifacts import BlobStore
from tests.conftest import Registry
from tests.test_upload_faults import BIG, assert_not_stored, sha256, uploads_in_flight

Tree = Callable[..., Path]  # the ``tree`` fixture
DB_PARAMS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
DOWN = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EIO: "input/output error"}


def _oserror(code: int, path: object) -> OSError:
    return OSError(code, os.strerror(code), str(path))


class _FailingFile(io.RawIOBase):
    """A real file of the store that fails once ``after`` bytes went through it (and, optionally, on close)."""

    def __init__(self, real: Any, path: str, code: int, after: int, close_fails: bool) -> None:
        self.real, self.path, self.code, self.after, self.close_fails = real, path, code, after, close_fails
        self.passed = 0

    def write(self, data: Any) -> int:
        if self.passed + len(data) > self.after:
            raise _oserror(self.code, self.path)
        self.passed += len(data)
        return int(self.real.write(data))

    def read(self, size: int = -1) -> bytes:
        if self.passed >= self.after:
            raise _oserror(self.code, self.path)
        chunk: bytes = self.real.read(size)
        self.passed += len(chunk)
        return chunk

    def close(self) -> None:
        if not self.closed:
            self.real.close()
            super().close()
            if self.close_fails:
                raise _oserror(self.code, self.path)


class StoreFaults:
    """Fault injection at the fsspec boundary of one blob store: its files fail as a broken disk would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, blobs: BlobStore) -> None:
        self.mp, self.fs, self.root = monkeypatch, blobs.fs, blobs.root

    def _ours(self, path: object) -> bool:
        return str(path).startswith(self.root)

    def files_fail(self, code: int, *, mode: str, after: int = 0, close_fails: bool = False) -> None:
        """Files opened with ``mode`` ("w" or "r") fail with ``code`` once ``after`` bytes went through."""
        real_open = self.fs.open

        def open_(path: str, how: str = "rb", *args: Any, **kwargs: Any) -> Any:
            f = real_open(path, how, *args, **kwargs)
            if mode in how and self._ours(path):
                return _FailingFile(f, path, code, after, close_fails)
            return f

        self.mp.setattr(self.fs, "open", open_)

    def opening_fails(self, code: int, *, mode: str) -> None:
        real_open = self.fs.open

        def open_(path: str, how: str = "rb", *args: Any, **kwargs: Any) -> Any:
            if mode in how and self._ours(path):
                raise _oserror(code, path)
            return real_open(path, how, *args, **kwargs)

        self.mp.setattr(self.fs, "open", open_)

    def fails(self, method: str, code: int, *, first: Callable[..., object] | None = None) -> None:
        """``fs.<method>`` fails with ``code`` on the store's paths (after running ``first``, if given)."""
        real = getattr(self.fs, method)

        def failing(path: Any, *args: Any, **kwargs: Any) -> Any:
            if not self._ours(path):
                return real(path, *args, **kwargs)
            if first is not None:
                first(path, *args, **kwargs)
            raise _oserror(code, path)

        self.mp.setattr(self.fs, method, failing)


@pytest.fixture
def faults(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> StoreFaults:
    return StoreFaults(monkeypatch, registry.service.blobs)


def assert_storage_message(exc: covex.CovexError, blobs: BlobStore, reason: str) -> None:
    """One line that says storage failed and why, and nothing about where on the server's disk."""
    assert "storage failed" in exc.message and reason in exc.message, exc.message
    assert "\n" not in exc.message
    assert blobs.root not in exc.message and "/tmp" not in exc.message and "blobs/sha256" not in exc.message


def assert_failed_version(client: covex.Client, name: str, number: int, reason: str) -> None:
    v = client.get_version(name, number)
    assert ("FAILED", True, True) == (v.status, "storage failed" in v.status_message, reason in v.status_message)


def _model(client: covex.Client) -> str:
    name = f"churn-{uuid.uuid4().hex[:8]}"
    client.create_model(name)
    return name


# -- uploads --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [(errno.ENOSPC, covex.StorageFull), (errno.EDQUOT, covex.StorageFull), (errno.EIO, covex.StorageUnavailable)],
    ids=["ENOSPC", "EDQUOT", "EIO"],
)
def test_a_disk_that_fails_mid_upload_leaves_nothing_and_a_retry_succeeds(
    client: covex.Client,
    registry: Registry,
    faults: StoreFaults,
    monkeypatch: pytest.MonkeyPatch,
    tree: Tree,
    code: int,
    error: type[covex.CovexError],
) -> None:
    data = os.urandom(BIG)  # several 1 MiB writes: the first goes through, the next one fails
    src = tree({"model.bin": data})
    name = _model(client)
    faults.files_fail(code, mode="w", after=1024 * 1024)
    with pytest.raises(error) as caught:
        client.create_version(name, src)
    assert (code in FULL) == isinstance(caught.value, covex.StorageFull)
    reason = FULL.get(code) or DOWN[code]
    assert_storage_message(caught.value, registry.service.blobs, reason)
    assert_failed_version(client, name, 1, reason)
    assert_not_stored(registry.service, sha256(data))

    monkeypatch.undo()  # space was freed
    assert "READY" == client.create_version(name, src).status


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.EPERM], ids=["EROFS", "EACCES", "EPERM"])
def test_read_only_folder_answers_503_storage_unavailable(
    client: covex.Client, registry: Registry, faults: StoreFaults, tree: Tree, code: int
) -> None:
    src = tree({"model.bin": os.urandom(10_000)})
    name = _model(client)
    faults.opening_fails(code, mode="w")
    with pytest.raises(covex.StorageUnavailable) as caught:
        client.create_version(name, src)
    assert not isinstance(caught.value, covex.StorageFull)
    assert_storage_message(caught.value, registry.service.blobs, os.strerror(code).lower())
    assert_failed_version(client, name, 1, os.strerror(code).lower())
    assert [] == uploads_in_flight(registry.service)


def test_a_full_disk_noticed_only_when_the_file_is_closed_still_cleans_up(
    client: covex.Client, registry: Registry, faults: StoreFaults, tree: Tree
) -> None:
    data = os.urandom(50_000)  # buffered: the write succeeds, flushing it on close does not
    name = _model(client)
    faults.files_fail(errno.ENOSPC, mode="w", after=len(data), close_fails=True)
    with pytest.raises(covex.StorageFull):
        client.create_version(name, tree({"model.bin": data}))
    assert_failed_version(client, name, 1, "no space left on device")
    assert_not_stored(registry.service, sha256(data))


def test_a_move_into_place_that_fails_half_way_leaves_no_partial_blob(
    client: covex.Client, registry: Registry, faults: StoreFaults, tree: Tree
) -> None:
    data = os.urandom(200_000)
    blobs = registry.service.blobs

    def copy_half(source: str, target: str, *args: Any, **kwargs: Any) -> None:
        # A move across file systems copies: the disk fills half-way through the copy.
        with open(source, "rb") as f, open(target, "wb") as out:
            out.write(f.read(len(data) // 2))

    name = _model(client)
    faults.fails("mv", errno.ENOSPC, first=copy_half)
    with pytest.raises(covex.StorageFull):
        client.create_version(name, tree({"model.bin": data}))
    assert not Path(blobs.blob_path(sha256(data))).exists()
    assert_failed_version(client, name, 1, "no space left on device")
    assert_not_stored(registry.service, sha256(data))


def test_a_temporary_file_that_cannot_be_removed_does_not_hide_the_error_and_gc_removes_it(
    client: covex.Client, registry: Registry, faults: StoreFaults, monkeypatch: pytest.MonkeyPatch, tree: Tree
) -> None:
    data = os.urandom(BIG)
    name = _model(client)
    # The disk fills mid-upload, and by the time the upload is abandoned the folder is read-only.
    faults.files_fail(errno.ENOSPC, mode="w", after=1024 * 1024)
    faults.fails("rm", errno.EROFS)
    with pytest.raises(covex.StorageFull) as caught:  # the cause, not the failed clean-up
        client.create_version(name, tree({"model.bin": data}))
    assert_storage_message(caught.value, registry.service.blobs, "no space left on device")
    assert_failed_version(client, name, 1, "no space left on device")
    [left] = uploads_in_flight(registry.service)

    monkeypatch.undo()  # writable again
    young = client.gc()
    size = registry.service.blobs.fs.size(left)
    assert (1, 0, size) == (young.partial_uploads, young.stale_uploads, young.partial_upload_bytes)
    assert 1 == client.gc(apply=True, grace_seconds=0).stale_uploads
    assert [] == uploads_in_flight(registry.service)


@pytest.mark.parametrize("db", DB_PARAMS)
def test_http_answers_507_insufficient_storage_and_503_storage_unavailable(
    registries: Callable[[str, str], Registry], monkeypatch: pytest.MonkeyPatch, db: str
) -> None:
    reg = registries("http", db)
    reg.reset()
    faults = StoreFaults(monkeypatch, reg.service.blobs)
    data = os.urandom(1000)
    auth = {"Authorization": f"Bearer {reg.settings.token}"}
    with httpx.Client(base_url=reg.url, headers=auth, timeout=30) as http:
        faults.files_fail(errno.ENOSPC, mode="w")
        r = http.put(f"/api/v1/blobs/{sha256(data)}", content=data)
        assert (507, "INSUFFICIENT_STORAGE") == (r.status_code, r.json()["error_code"])
        monkeypatch.undo()
        faults.opening_fails(errno.EROFS, mode="w")
        r = http.put(f"/api/v1/blobs/{sha256(data)}", content=data)
        assert (503, "STORAGE_UNAVAILABLE") == (r.status_code, r.json()["error_code"])
        assert "artifact storage failed while storing an upload: read-only file system" == r.json()["message"]
    assert_not_stored(reg.service, sha256(data))


# -- downloads ------------------------------------------------------------------------------------


def test_a_file_the_store_cannot_read_answers_503_and_leaves_no_partial_download(
    client: covex.Client, registry: Registry, faults: StoreFaults, tree: Tree, tmp_path: Path
) -> None:
    name = _model(client)
    client.create_version(name, tree({"model.bin": os.urandom(10_000)}))
    faults.opening_fails(errno.EIO, mode="r")
    with pytest.raises(covex.StorageUnavailable) as caught:
        client.download(name, tmp_path / "out", 1)
    assert_storage_message(caught.value, registry.service.blobs, "input/output error")
    assert [] == [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()]


@pytest.mark.parametrize("db", DB_PARAMS)
def test_a_read_error_mid_download_embedded_leaves_no_partial_file(
    registries: Callable[[str, str], Registry], monkeypatch: pytest.MonkeyPatch, tree: Tree, tmp_path: Path, db: str
) -> None:
    reg = registries("embedded", db)
    reg.reset()
    with reg.client() as client:
        name = _model(client)
        client.create_version(name, tree({"model.bin": os.urandom(BIG)}))
        StoreFaults(monkeypatch, reg.service.blobs).files_fail(errno.EIO, mode="r", after=1024 * 1024)
        with pytest.raises(covex.StorageUnavailable, match="storage failed while reading a stored file"):
            client.download(name, tmp_path / "out", 1)
    assert [] == [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()]


# -- garbage collection ---------------------------------------------------------------------------


def test_gc_on_a_store_it_cannot_list_answers_503(
    client: covex.Client, registry: Registry, faults: StoreFaults
) -> None:
    faults.fails("find", errno.EACCES)
    with pytest.raises(covex.StorageUnavailable) as caught:
        client.gc()
    assert_storage_message(caught.value, registry.service.blobs, "permission denied")


def test_gc_on_a_read_only_store_answers_503_and_audits_what_it_did(
    client: covex.Client, registry: Registry, faults: StoreFaults, tree: Tree
) -> None:
    name = _model(client)
    client.create_version(name, tree({"model.bin": os.urandom(1000)}))
    client.delete_version(name, 1)
    faults.fails("rm", errno.EROFS)
    with pytest.raises(covex.StorageUnavailable) as caught:
        client.gc(apply=True, grace_seconds=0)
    assert_storage_message(caught.value, registry.service.blobs, "read-only file system")
    last = client.audit.list_records(action="gc", max_results=1).items[0]
    after = json.loads(last.after or "{}")
    assert (0, "artifact storage failed while deleting a file: read-only file system") == (
        after["deleted"],
        after["failed"],
    )


# -- a real read-only folder, where the operating system enforces it ------------------------------


def _permissions_apply(folder: Path) -> bool:
    probe = folder / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").write_bytes(b"")
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)
    return False


def test_a_really_read_only_artifact_folder(tmp_path: Path, tree: Tree) -> None:
    if not _permissions_apply(tmp_path):
        pytest.skip("this user writes into read-only folders (root): the fault-injection tests cover it")
    artifacts = tmp_path / "artifacts"
    settings = covex.Settings(uri=f"sqlite:///{tmp_path / 'covex.db'}", artifacts=str(artifacts), user="tester")
    with covex.Client(settings=settings) as client:
        client.create_model("churn")
        client.create_version("churn", tree({"a.bin": b"first"}))
        for folder in (artifacts / "tmp", artifacts / "blobs", *sorted((artifacts / "blobs").rglob("*"))):
            if folder.is_dir():
                folder.chmod(0o555)
        try:
            with pytest.raises(covex.StorageUnavailable, match="storage failed while storing an upload"):
                client.create_version("churn", tree({"b.bin": b"second"}))
            assert "FAILED" == client.get_version("churn", 2).status
            assert b"first" == (client.download("churn", tmp_path / "out", 1) / "a.bin").read_bytes()
        finally:
            for folder in (artifacts, *artifacts.rglob("*")):
                if folder.is_dir():
                    folder.chmod(0o755)
    assert [] == list((artifacts / "tmp").iterdir())
