"""The artifacts of MLflow runs and logged models, and the read-only view of registered versions' files.

Paths are those of MLflow's artifact proxy, relative to its root: ``<experiment>/<run id>/artifacts/...``,
``<experiment>/models/<model id>/artifacts/...`` and ``registry/<model name>/-/<version>/...``. Each
file is a blob of the content-addressed store (stored once, whoever logs it again) and an entry
path → digest, size; downloads are hashed on the way out and cut short when they do not match.
See ``covex.service.tracking`` for who may do what.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, Row, Select, delete, insert, select

from covex.domain import tracking as dom
from covex.domain.entities import FileEntry
from covex.domain.errors import ArtifactCorrupted, InvalidInput, NotFound, ServiceUnavailable
from covex.domain.tracking import ArtifactFile
from covex.domain.uris import parse_model_uri
from covex.service.base import Refused, ServiceBase, now_ms
from covex.service.blobs import BlobService
from covex.store import database
from covex.store.schema import tracking_artifacts as artifacts
from covex.store.schema import tracking_logged_models as logged
from covex.store.schema import tracking_runs as runs

log = logging.getLogger("covex.service")
MAX_LISTED_FILES = 50_000


class TrackingBase(ServiceBase):
    """Runs and logged models as owners of changes and of artifact roots."""

    def _run_row(self, conn: Connection, run_id: str, action: str | None = None, *, read: bool = True) -> Row[Any]:
        """The run ``run_id``; with ``action``, checked active and changeable by the principal.

        Without ``action`` (a read) it is NotFound for a principal who may not read it, unless ``read`` is False.
        """
        row = None
        if isinstance(run_id, str) and dom.is_run_id(run_id):
            row = conn.execute(_for_change(conn, select(runs).where(runs.c.id == run_id), action)).one_or_none()
        if row is None or (action is None and read and not self._may_read(conn, row.created_by)):
            raise NotFound(f"Run with id={run_id!r} not found")
        if action is not None:
            self._require_owner(row.created_by, action, f"run:{run_id}")
            if row.lifecycle_stage != "active":
                raise InvalidInput(f"The run {run_id} must be in the 'active' state. Current state is deleted.")
        return row

    def _logged_row(self, conn: Connection, model_id: str, action: str | None = None, *, read: bool = True) -> Row[Any]:
        """The logged model ``model_id``; with ``action``, checked changeable by the principal (as ``_run_row``)."""
        row = None
        if isinstance(model_id, str) and dom.is_model_id(model_id):
            row = conn.execute(_for_change(conn, select(logged).where(logged.c.id == model_id), action)).one_or_none()
        if row is None or (action is None and read and not self._may_read(conn, row.created_by)):
            raise NotFound(f"Logged model with ID {model_id!r} not found.")
        if action is not None:
            self._require_owner(row.created_by, action, f"logged_model:{model_id}")
        return row

    def _reads_all(self, conn: Connection) -> bool:
        """Whether the principal reads every run and logged model: an admin, or a reader (or more) of every model."""
        return self.principal.is_admin or self.readable_model_ids(conn) is None

    def _may_read(self, conn: Connection, creator: str) -> bool:
        return creator == self.principal.name or self._reads_all(conn)

    def _readable(self, conn: Connection, table: Any) -> list[Any]:
        """The conditions a search of runs or logged models adds: none, or "created by the principal"."""
        return [] if self._reads_all(conn) else [table.c.created_by == self.principal.name]

    def _require_owner(self, creator: str, action: str, target: str) -> None:
        if not self.principal.is_admin and creator != self.principal.name:
            what = target.split(":", 1)[0].replace("_", " ")
            raise Refused(
                f"{self.principal.name!r} may not change {what} {target.split(':', 1)[1]}: "
                f"only its creator ({creator!r}) or an admin may",
                action=action,
                target=target,
            )

    # -- artifacts ------------------------------------------------------------------

    def _artifact_root(self, conn: Connection, path: str, action: str | None, *, read: bool = True) -> tuple[str, str]:
        """``(root, path inside it)`` for a path under a run's or logged model's root (NotFound otherwise).

        Without ``action``, NotFound too for a root the principal may not read (unless ``read`` is False).
        """
        found = dom.split_root(path)
        if found is None:
            if action is not None:
                raise Refused(
                    f"{self.actor!r} may not write {path!r}: artifacts go under a run's or logged model's root",
                    action=action,
                    target=f"artifact:{path}",
                )
            raise NotFound(f"no artifact at {path!r}")
        kind, owner, inner = found
        row = (
            self._run_row(conn, owner, action, read=read)
            if kind == "run"
            else self._logged_row(conn, owner, action, read=read)
        )
        root = (
            dom.run_root(str(row.experiment_id), owner)
            if kind == "run"
            else dom.model_root(str(row.experiment_id), owner)
        )
        if not path.startswith(root):
            raise NotFound(f"no artifact at {path!r}: {kind} {owner} belongs to experiment {row.experiment_id}")
        return root, inner

    def put_artifact(self, path: str, size: int | None, chunks: Iterable[bytes]) -> FileEntry:
        """Store one file under a run's or logged model's artifact root (the caller's own, or any for an admin)."""
        path = self._writable(path)
        with self._tx(write=False) as conn:
            self._artifact_root(conn, path, "tracking.artifact.put")  # refused before a byte is read
        digest = self.blobs.writer(None, size).write_all(chunks)
        stored = self.blobs.size(digest)
        with self._tx(write=True) as conn:
            root, inner = self._artifact_root(conn, path, "tracking.artifact.put")
            if not inner:
                raise InvalidInput(f"Invalid path {path!r}: it names the artifact root, not a file")
            entry = {"root": root, "path": inner, "digest": digest, "size": stored or 0, "created_at": now_ms()}
            database.lock_blobs(conn, exclusive=False)  # gc deletes nothing while this reference lands
            if self.blobs.size(digest) is None:  # gc took an identical old blob between the write and the lock
                raise ServiceUnavailable(f"the file for {path!r} was removed while it was stored; upload it again")
            before = conn.execute(select(artifacts.c.digest).where(*_at(root, inner))).scalar_one_or_none()
            conn.execute(delete(artifacts).where(*_at(root, inner)))
            conn.execute(insert(artifacts), entry)
            self._audit(
                conn, "tracking.artifact.put", f"artifact:{path}", before, {"digest": digest, "size": entry["size"]}
            )
        return FileEntry(path=inner, digest=digest, size=entry["size"])

    def delete_artifacts(self, path: str) -> int:
        """Delete a file, or a folder and everything in it; return how many files went."""
        path = self._writable(path)
        with self._tx(write=True) as conn:
            root, inner = self._artifact_root(conn, path, "tracking.artifact.delete")
            doomed = [
                e.path
                for e in self._entries(conn, root)
                if not inner or e.path == inner or e.path.startswith(inner + "/")
            ]
            for start in range(0, len(doomed), 500):
                conn.execute(
                    delete(artifacts).where(artifacts.c.root == root, artifacts.c.path.in_(doomed[start : start + 500]))
                )
            self._audit(conn, "tracking.artifact.delete", f"artifact:{path}", None, {"files": len(doomed)})
            return len(doomed)

    def list_artifacts(self, path: str) -> list[ArtifactFile]:
        """The files and folders directly in folder ``path`` (none when it is a file, or holds nothing)."""
        path = dom.check_path(path)
        if _in_registry(path):
            files = self._registry_files(path)
            return _children([FileEntry(path=p, digest=e.digest, size=e.size) for p, e in files[1].items()], files[0])
        with self._tx(write=False) as conn:
            try:
                root, inner = self._artifact_root(conn, path, None)
            except NotFound:
                return []
            return _children(self._entries(conn, root), inner)

    def open_artifact(self, path: str) -> tuple[int, Iterator[bytes]]:
        """A file's size and content; the content is hashed as it streams and cut short if it is not what was stored."""
        path = dom.check_path(path, allow_empty=False)
        if _in_registry(path):
            inner, files = self._registry_files(path)
            entry = files.get(inner)
            if entry is not None:
                # A version's list of files proves nothing until it is READY: read the blob as the blob API does,
                # which needs a READY version the caller may read that holds it.
                content = self._sibling(BlobService).read_blob(entry.digest)
                return entry.size, verified(entry, content, path)
        else:
            with self._tx(write=False) as conn:
                root, inner = self._artifact_root(conn, path, None)
                row = conn.execute(select(artifacts).where(*_at(root, inner))).one_or_none()
                entry = None if row is None else FileEntry(path=row.path, digest=row.digest, size=row.size)
        if entry is None:
            raise NotFound(f"no artifact at {path!r}")
        return entry.size, verified(entry, self.blobs.iter_chunks(entry.digest), path)

    def _writable(self, path: str) -> str:
        path = dom.check_path(path, allow_empty=False)
        if _in_registry(path):
            raise Refused(
                "registered versions are immutable: their files cannot be written or deleted",
                action="tracking.artifact.put",
                target=f"artifact:{path}",
            )
        return path

    def _entries(self, conn: Connection, root: str) -> list[FileEntry]:
        q = select(artifacts.c.path, artifacts.c.digest, artifacts.c.size).where(artifacts.c.root == root)
        return [FileEntry(path=r.path, digest=r.digest, size=r.size) for r in conn.execute(q.limit(MAX_LISTED_FILES))]

    def _registry_files(self, path: str) -> tuple[str, dict[str, FileEntry]]:
        """``registry/<name>/-/<version>/<inner>``: the inner path and the version's files (reader role)."""
        from covex.service.versions import VersionService  # a sibling: versions imports nothing of tracking

        rest = path[len(dom.REGISTRY_PREFIX) :]
        name, sep, tail = rest.partition("/-/")
        version, _, inner = tail.partition("/")
        if not sep or not name or not version.isdigit():
            raise NotFound(f"no artifact at {path!r}: registered files are at registry/<model>/-/<version>/<path>")
        _, files = self._sibling(VersionService).list_files(parse_model_uri(f"models:/{name}/{version}"))
        return inner, {f.path: f for f in files}


def _for_change(conn: Connection, query: Select[Any], action: str | None) -> Select[Any]:
    """``query`` locking its row when a writing transaction is about to change what hangs off it.

    Writers of one run or logged model then queue (PostgreSQL) instead of both finding a key unset and
    both inserting it, which the loser's primary key refused as an internal error. SQLite has one writer.
    """
    writing = action is not None and conn.get_execution_options().get("covex_write", False)
    return query.with_for_update() if writing else query


def _in_registry(path: str) -> bool:
    return path == dom.REGISTRY_PREFIX.rstrip("/") or path.startswith(dom.REGISTRY_PREFIX)


def _at(root: str, inner: str) -> tuple[Any, Any]:
    return artifacts.c.root == root, artifacts.c.path == inner


def _children(entries: list[FileEntry], folder: str) -> list[ArtifactFile]:
    """The entries directly in ``folder`` (sub-folders once each), by name; none when ``folder`` is a file."""
    prefix = folder + "/" if folder else ""
    found: dict[str, ArtifactFile] = {}
    for e in entries:
        if not e.path.startswith(prefix):
            continue
        name, sub, _ = e.path[len(prefix) :].partition("/")
        found[name] = (
            ArtifactFile(path=name, is_dir=True) if sub else ArtifactFile(path=name, is_dir=False, file_size=e.size)
        )
    return [found[k] for k in sorted(found)]


def verified(entry: FileEntry, chunks: Iterator[bytes], shown: str) -> Iterator[bytes]:
    """``chunks`` hashed as they pass, one held back: the last goes out only once the digest and size match.

    A mismatch logs and raises ``ArtifactCorrupted``; a response already started is then cut short,
    so a client reading ``Content-Length`` bytes sees a short read rather than wrong content.
    """
    sha, size, held = hashlib.sha256(), 0, b""
    with _closing(chunks):
        for chunk in chunks:
            if held:
                yield held
            sha.update(chunk)
            size += len(chunk)
            held = chunk
    if sha.hexdigest() != entry.digest or size != entry.size:
        log.error("artifact %s: stored content does not match its digest %s; download cut short", shown, entry.digest)
        raise ArtifactCorrupted(f"the stored content of {shown!r} does not match its digest")
    if held:
        yield held


class _closing:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()
