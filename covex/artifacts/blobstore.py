"""Content-addressed blob storage over any fsspec URL.

Each file is stored once as ``blobs/sha256/<2 hex>/<digest>``. A write streams
into ``tmp/<random>`` while hashing, and is moved into place only when the
digest (and size, when known) match, so nothing ever sits at a blob path with
content other than its digest.

A failure of the store itself (a full disk, a read-only folder, an I/O error, a
bucket that refuses) leaves as ``StorageFull`` or ``StorageUnavailable``: the
message says what failed and why, never where (paths are for the server's log).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from covex.artifacts.manifest import hash_stream
from covex.domain.errors import ArtifactCorrupted, CovexError, InvalidInput, NotFound, StorageFull, StorageUnavailable

_DIGEST = re.compile(r"[0-9a-f]{64}")
DEFAULT_CHUNK = 1024 * 1024
STORING = "storing an upload"
READING = "reading a stored file"
# Errors that mean "no room": the caller may retry once someone frees space (507, not 503).
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# Errors some stores raise without an errno (s3fs maps refusals to these classes).
_REASONS: dict[type[OSError], str] = {
    PermissionError: "permission denied",
    FileNotFoundError: "a file vanished",
    TimeoutError: "timed out",
    ConnectionError: "cannot be reached",
}

log = logging.getLogger("covex.storage")


def check_digest(digest: object, field: str = "digest") -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidInput(f"'{field}' must be a SHA-256 hex digest (64 lowercase hex characters)")
    return digest


def storage_error(exc: OSError, doing: str) -> StorageUnavailable:
    """What a caller is told when the store failed while ``doing`` something: why, in one line, never where."""
    if exc.errno:
        reason = os.strerror(exc.errno).lower()
    else:
        reason = next((text for cls, text in _REASONS.items() if isinstance(exc, cls)), "input/output error")
    log.warning("artifact storage failed while %s: %s", doing, exc)
    if exc.errno in _FULL:
        return StorageFull(f"artifact storage failed while {doing}: it is full ({reason})")
    return StorageUnavailable(f"artifact storage failed while {doing}: {reason}")


@contextmanager
def storage(doing: str) -> Iterator[None]:
    """Turn errors of the store into ``StorageFull`` / ``StorageUnavailable``."""
    try:
        yield
    except CovexError:
        raise  # PermissionDenied is an OSError too: a refusal of the registry, not of the store
    except OSError as exc:
        raise storage_error(exc, doing) from exc


@dataclass(frozen=True)
class PartialUpload:
    """The temporary file of an upload in flight, or abandoned."""

    path: str
    size: int
    modified: float  # seconds since the epoch


# Writes of chunks, overlapped with hashing the next (threads start on first use: importing starts none).
_WRITERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="covex-blob-write")


class BlobWriter:
    """One blob being written: feed chunks, then ``commit`` (verifies) or ``abort``.

    Any failure removes the temporary file (``abort``), and a failure to remove it never
    hides the error that caused it: ``gc`` removes what is left once it is old enough.
    """

    def __init__(self, store: BlobStore, expected_digest: str | None = None, expected_size: int | None = None) -> None:
        self._store = store
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        self._tmp = f"{store.root}/tmp/{uuid.uuid4().hex}"
        self._file: Any = None
        self._finished = False
        self._hash = hashlib.sha256()
        self.size = 0
        try:
            with storage(STORING):
                store.fs.makedirs(f"{store.root}/tmp", exist_ok=True)
                self._file = store.fs.open(self._tmp, "wb")
        except BaseException:
            self.abort()
            raise

    def write(self, chunk: bytes) -> None:
        try:
            self._take(chunk)
            self._store_chunk(chunk)
        except BaseException:
            self.abort()
            raise

    def _take(self, chunk: bytes) -> None:
        """Count and hash a chunk (the caller aborts on a failure, once no write is using the file)."""
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            raise ArtifactCorrupted(f"upload is longer than the {self.expected_size} bytes announced")
        self._hash.update(chunk)

    def _store_chunk(self, chunk: bytes) -> None:
        with storage(STORING):
            self._file.write(chunk)

    def write_all(self, chunks: Iterable[bytes]) -> str:
        """Write every chunk, then ``commit``; whatever fails on the way ``abort``s. Return the digest.

        Each chunk is hashed here while the previous one is being written by a thread of the writers'
        pool (both release the GIL), so a large blob costs about one of the two, not their sum.
        """
        writing: Future[None] | None = None
        try:
            for chunk in chunks:
                self._take(chunk)
                if writing is not None:
                    writing.result()
                writing = _WRITERS.submit(self._store_chunk, chunk)
            if writing is not None:
                writing.result()
        except BaseException:
            if writing is not None:
                wait([writing])  # the file is closed only once no write is using it
            self.abort()
            raise
        return self.commit()

    def commit(self) -> str:
        """Verify and move the blob into place; return its digest."""
        expected_digest, expected_size = self.expected_digest, self.expected_size
        try:
            with storage(STORING):
                self._file.close()  # buffered bytes reach the store here: a full disk may say so only now
            digest = self._hash.hexdigest()
            if expected_size is not None and expected_size != self.size:
                raise ArtifactCorrupted(
                    f"upload was cut short or padded: expected {expected_size} bytes, got {self.size}"
                )
            if expected_digest is not None and expected_digest != digest:
                raise ArtifactCorrupted(f"content does not match its digest: expected {expected_digest}, got {digest}")
            target = self._store.blob_path(digest)
            # Same digest, same bytes: replacing a stored copy is harmless, and its new time shows
            # the blob was uploaded again (the proof that an uploader holds the file).
            with storage(STORING):
                self._store.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                try:
                    self._store.fs.mv(self._tmp, target)
                except OSError:
                    self._drop_partial(target)
                    raise
        except BaseException:
            self.abort()
            raise
        self._finished = True
        return digest

    def _drop_partial(self, target: str) -> None:
        # A move across file systems copies: a copy that failed half-way leaves a short file at the
        # blob path. A complete copy (ours, or another uploader's) has the full size and stays.
        try:
            if self._store.fs.exists(target) and int(self._store.fs.size(target)) != self.size:
                self._store.fs.rm(target)
        except OSError as exc:
            log.error("could not remove a partly moved blob %s: %s; remove it by hand", target, exc)

    def abort(self) -> None:
        """Close and remove the temporary file. Never raises: the error that led here is the one to report."""
        if self._finished:
            return
        self._finished = True
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # the write that failed said why; closing only repeats it
        try:
            if self._store.fs.exists(self._tmp):
                self._store.fs.rm(self._tmp)
        except OSError as exc:
            log.warning("could not remove the temporary file %s of a failed upload: %s; gc removes it", self._tmp, exc)


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
        path = self.blob_path(digest)
        with storage(READING):
            try:
                return int(self.fs.size(path))
            except FileNotFoundError:
                return None

    def modified(self, digest: str) -> float | None:
        """When the blob was last written (seconds since the epoch); None if absent or the store cannot say."""
        path = self.blob_path(digest)
        with storage(READING):
            try:
                return float(self.fs.modified(path).timestamp())
            except (FileNotFoundError, NotImplementedError):
                return None

    def missing(self, digests: Iterable[str]) -> list[str]:
        with storage("checking stored files"):
            return [d for d in dict.fromkeys(digests) if not self.fs.exists(self.blob_path(d))]

    def writer(self, expected_digest: str | None = None, expected_size: int | None = None) -> BlobWriter:
        """Start a blob; ``commit`` stores it only if it matches the expected digest and size."""
        return BlobWriter(self, expected_digest, expected_size)

    def put(self, chunks: Iterable[bytes], expected_digest: str | None = None, expected_size: int | None = None) -> str:
        """Stream ``chunks`` into a blob; return its digest."""
        return self.writer(expected_digest, expected_size).write_all(chunks)

    def open(self, digest: str) -> BinaryIO:
        path = self.blob_path(digest)
        with storage(READING):
            try:
                return self.fs.open(path, "rb")  # type: ignore[no-any-return]
            except FileNotFoundError:
                raise NotFound(f"blob {digest} is not in the artifact store") from None

    def check_readable(self, digest: str) -> None:
        """Raise ``NotFound`` or a storage error now, rather than half-way through a response."""
        with self.open(digest) as f, storage(READING):
            f.read(1)

    def iter_chunks(self, digest: str) -> Iterator[bytes]:
        """The blob's content in chunks; opened before this returns, so a missing blob fails here."""
        return self._chunks(self.open(digest))

    def _chunks(self, f: BinaryIO) -> Iterator[bytes]:
        with f:
            while True:
                with storage(READING):
                    chunk = f.read(self.chunk_size)
                if not chunk:
                    return
                yield chunk

    def hash_blob(self, digest: str) -> tuple[str, int] | None:
        """The SHA-256 and size of what is stored under ``digest``, read in chunks; None if nothing is."""
        path = self.blob_path(digest)
        with storage(READING):
            try:
                f = self.fs.open(path, "rb")
            except FileNotFoundError:
                return None
            with f:
                return hash_stream(f, self.chunk_size)

    def list_blobs(self) -> dict[str, int]:
        """Every stored blob: digest → size."""
        base = f"{self.root}/blobs/sha256"
        with storage("listing stored files"):
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
        path = self.blob_path(digest)
        with storage("deleting a file"):
            try:
                self.fs.rm(path)
            except FileNotFoundError:
                pass

    def uploads(self) -> list[PartialUpload]:
        """The temporary files of uploads: in flight, or abandoned."""
        with storage("listing partial uploads"):
            try:
                found = self.fs.find(f"{self.root}/tmp", detail=True)
            except FileNotFoundError:
                return []
        return [PartialUpload(path, int(info.get("size") or 0), _mtime(info)) for path, info in found.items()]

    def stale_uploads(self, older_than_s: float) -> list[str]:
        """Temporary files of uploads that were abandoned long enough ago."""
        cutoff = time.time() - older_than_s
        return [u.path for u in self.uploads() if u.modified < cutoff]

    def remove_path(self, path: str) -> None:
        with storage("deleting a file"):
            try:
                self.fs.rm(path)
            except FileNotFoundError:
                pass


def _mtime(info: dict[str, Any]) -> float:
    # Local folders say "mtime" (seconds), S3 "LastModified" (a datetime).
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
    return mtime.timestamp() if isinstance(mtime, datetime) else float(mtime or 0)
