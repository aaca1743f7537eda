"""Content-addressed blob storage over any fsspec URL.

Each file is stored once as ``blobs/sha256/<2 hex>/<digest>``. A write streams
into ``tmp/<random>`` while hashing, and is moved into place only when the
digest (and size, when known) match, so nothing ever sits at a blob path with
content other than its digest.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from covex.domain.errors import ArtifactCorrupted, InvalidInput, NotFound

_DIGEST = re.compile(r"[0-9a-f]{64}")
DEFAULT_CHUNK = 1024 * 1024


def check_digest(digest: object, field: str = "digest") -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidInput(f"'{field}' must be a SHA-256 hex digest (64 lowercase hex characters)")
    return digest


class BlobWriter:
    """One blob being written: feed chunks, then ``commit`` (verifies) or ``abort``."""

    def __init__(self, store: BlobStore, expected_digest: str | None = None, expected_size: int | None = None) -> None:
        self._store = store
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        self._tmp = f"{store.root}/tmp/{uuid.uuid4().hex}"
        store.fs.makedirs(f"{store.root}/tmp", exist_ok=True)
        self._file: Any = store.fs.open(self._tmp, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            self.abort()
            raise ArtifactCorrupted(f"upload is longer than the {self.expected_size} bytes announced")
        self._hash.update(chunk)
        self._file.write(chunk)

    def commit(self) -> str:
        """Verify and move the blob into place; return its digest."""
        expected_digest, expected_size = self.expected_digest, self.expected_size
        self._file.close()
        digest = self._hash.hexdigest()
        try:
            if expected_size is not None and expected_size != self.size:
                raise ArtifactCorrupted(
                    f"upload was cut short or padded: expected {expected_size} bytes, got {self.size}"
                )
            if expected_digest is not None and expected_digest != digest:
                raise ArtifactCorrupted(f"content does not match its digest: expected {expected_digest}, got {digest}")
            target = self._store.blob_path(digest)
            # Same digest, same bytes: replacing a stored copy is harmless, and its new time shows
            # the blob was uploaded again (the proof that an uploader holds the file).
            self._store.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self._store.fs.mv(self._tmp, target)
        except BaseException:
            self.abort()
            raise
        return digest

    def abort(self) -> None:
        try:
            self._file.close()
        finally:
            if self._store.fs.exists(self._tmp):
                self._store.fs.rm(self._tmp)


class BlobStore:
    """Blobs under one fsspec root, addressed by SHA-256."""

    def __init__(self, url: str, chunk_size: int = DEFAULT_CHUNK, **storage_options: Any) -> None:
        self.url = url
        self.chunk_size = chunk_size
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = root.rstrip("/")
        if self.is_local:
            self.fs.makedirs(self.root, exist_ok=True)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def blob_path(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.root}/blobs/sha256/{digest[:2]}/{digest}"

    def local_path(self, digest: str) -> str | None:
        """The blob's path on this machine, when the store is a local folder."""
        return self.blob_path(digest) if self.is_local else None

    def size(self, digest: str) -> int | None:
        try:
            return int(self.fs.size(self.blob_path(digest)))
        except FileNotFoundError:
            return None

    def missing(self, digests: Iterable[str]) -> list[str]:
        return [d for d in dict.fromkeys(digests) if not self.fs.exists(self.blob_path(d))]

    def writer(self, expected_digest: str | None = None, expected_size: int | None = None) -> BlobWriter:
        """Start a blob; ``commit`` stores it only if it matches the expected digest and size."""
        return BlobWriter(self, expected_digest, expected_size)

    def put(self, chunks: Iterable[bytes], expected_digest: str | None = None, expected_size: int | None = None) -> str:
        """Stream ``chunks`` into a blob; return its digest."""
        w = self.writer(expected_digest, expected_size)
        try:
            for chunk in chunks:
                w.write(chunk)
        except BaseException:
            w.abort()
            raise
        return w.commit()

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.fs.open(self.blob_path(digest), "rb")  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the artifact store") from None

    def iter_chunks(self, digest: str) -> Iterator[bytes]:
        with self.open(digest) as f:
            while chunk := f.read(self.chunk_size):
                yield chunk

    def list_blobs(self) -> dict[str, int]:
        """Every stored blob: digest → size."""
        base = f"{self.root}/blobs/sha256"
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        return {
            path.rsplit("/", 1)[-1]: int(info.get("size") or 0)
            for path, info in found.items()
            if _DIGEST.fullmatch(path.rsplit("/", 1)[-1])
        }

    def delete(self, digest: str) -> None:
        try:
            self.fs.rm(self.blob_path(digest))
        except FileNotFoundError:
            pass

    def stale_uploads(self, older_than_s: float) -> list[str]:
        """Temporary files of uploads that were abandoned long enough ago."""
        try:
            found = self.fs.find(f"{self.root}/tmp", detail=True)
        except FileNotFoundError:
            return []
        cutoff = time.time() - older_than_s
        stale = []
        for path, info in found.items():
            mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
            ts = mtime.timestamp() if hasattr(mtime, "timestamp") else float(mtime or 0)
            if ts < cutoff:
                stale.append(path)
        return stale

    def remove_path(self, path: str) -> None:
        try:
            self.fs.rm(path)
        except FileNotFoundError:
            pass
