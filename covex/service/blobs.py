"""Blobs: the content-addressed files versions are made of, and who may write or read them.

A blob is reachable only through the versions that hold it: uploading takes the editor role
on some model, reading takes the reader role on a model with a READY version that holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from covex.artifacts import BlobWriter, check_digest
from covex.domain.errors import InvalidInput
from covex.service.base import Refused, ServiceBase
from covex.store.schema import grants, model_versions, version_files


class BlobService(ServiceBase):
    """Store, read and look for blobs on behalf of the principal."""

    def _require_uploader(self) -> None:
        """Uploading blobs takes the editor role on some model: blobs are reachable only through versions."""
        if self.principal.is_admin:
            return
        with self._tx(write=False) as conn:
            allowed = conn.execute(
                select(grants.c.id)
                .where(grants.c.subject.in_(self.principal.subjects), grants.c.role.in_(["editor", "manager"]))
                .limit(1)
            ).first()
            if allowed is None:
                raise Refused(
                    f"{self.actor!r} may not upload files: it is an editor of no model",
                    action="blob.upload",
                    target="blobs",
                )

    def possessed(self, conn: Connection, digests: Sequence[str]) -> set[str] | None:
        """Which of ``digests`` the principal may read already (None: every blob, it reads every model).

        Only READY versions count: their files were uploaded, or proven held, by someone allowed to.
        """
        readable = self.readable_model_ids(conn)
        if readable is None:
            return None
        found: set[str] = set()
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), 500):
            found.update(
                conn.execute(
                    select(version_files.c.digest)
                    .join(model_versions, model_versions.c.id == version_files.c.version_id)
                    .where(
                        version_files.c.digest.in_(unique[start : start + 500]),
                        model_versions.c.status == "READY",
                        model_versions.c.model_id.in_(readable),
                    )
                    .distinct()
                ).scalars()
            )
        return found

    def stored_since(self, digest: str, version: Row[Any]) -> bool:
        """The blob was (re)written after ``version`` was created: uploaded for it (1 s for clock grain)."""
        modified = self.blobs.modified(digest)
        return modified is not None and modified * 1000 >= version.creation_timestamp - 1000

    def _require_blob_reader(self, digest: str) -> None:
        """Reading a blob takes the reader role on a model with a READY version that holds it."""
        with self._tx(write=False) as conn:
            possessed = self.possessed(conn, [digest])
            if possessed is not None and digest not in possessed:
                raise Refused(
                    f"{self.actor!r} may not read blob {digest}: no model it may read holds it",
                    action="blob.read",
                    target=f"blob:{digest}",
                )

    def open_blob_writer(self, digest: str, size: int) -> BlobWriter:
        """Start storing one blob; its ``commit`` verifies the digest and size before it lands."""
        check_digest(digest)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput("'size' must be a non-negative integer")
        self._require_uploader()
        return self.blobs.writer(digest, size)

    def put_blob(self, digest: str, size: int, chunks: Iterable[bytes]) -> None:
        """Store one blob from a stream of chunks, verifying its digest and size."""
        self.open_blob_writer(digest, size).write_all(chunks)

    def read_blob(self, digest: str) -> Iterator[bytes]:
        """Stream a stored blob (the reader verifies it against the digest)."""
        check_digest(digest)
        self._require_blob_reader(digest)
        return self.blobs.iter_chunks(digest)

    def blob_local_path(self, digest: str) -> str | None:
        """The stored blob's path on this machine when blobs are in a local folder."""
        path = self.blobs.local_path(check_digest(digest))
        self._require_blob_reader(digest)
        if path is not None:
            # The server streams the file itself, after answering 200: a file it cannot read must fail now.
            self.blobs.check_readable(digest)
        return path

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        for i, d in enumerate(digests):
            check_digest(d, f"digests[{i}]")
        self._require_uploader()
        absent = set(self.blobs.missing(digests))
        with self._tx(write=False) as conn:
            possessed = self.possessed(conn, digests)
        # A stored blob the caller cannot read is "missing" for it: uploading it proves it holds the file.
        return [d for d in dict.fromkeys(digests) if d in absent or (possessed is not None and d not in possessed)]
