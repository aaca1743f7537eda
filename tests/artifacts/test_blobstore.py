"""Writing a blob from a stream: hashing overlaps the writes, and a bad stream leaves nothing behind."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from covex.artifacts.blobstore import BlobStore
from covex.domain.errors import ArtifactCorrupted


def chunks(count: int, size: int) -> Iterator[bytes]:
    for i in range(count):
        yield bytes([i % 251]) * size


def test_a_stream_of_many_chunks_lands_whole_under_its_digest(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    content = b"".join(chunks(64, 4096))
    digest = hashlib.sha256(content).hexdigest()

    got = store.writer(digest, len(content)).write_all(chunks(64, 4096))

    assert digest == got
    assert content == Path(store.local_path(digest) or "").read_bytes()
    assert [] == list((tmp_path / "blobs" / "tmp").iterdir())


def test_a_stream_longer_than_announced_or_failing_midway_leaves_no_file(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))

    with pytest.raises(ArtifactCorrupted, match="longer than the 8192 bytes"):
        store.writer("0" * 64, 8192).write_all(chunks(3, 4096))

    def broken() -> Iterator[bytes]:
        yield from chunks(4, 4096)
        raise ConnectionError("the client went away")

    with pytest.raises(ConnectionError):
        store.writer("0" * 64, 1 << 20).write_all(broken())

    assert [] == list((tmp_path / "blobs" / "tmp").iterdir())
    assert not (tmp_path / "blobs" / "blobs").exists()
