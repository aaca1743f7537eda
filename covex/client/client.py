"""``covex.Client``: the Python SDK, embedded or over HTTP with one set of methods."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from covex.artifacts import LocalFile, scan
from covex.client.backend import Backend
from covex.client.governance import Access, Approvals, Audit, Monitoring, Webhooks
from covex.client.records import RecordsMixin
from covex.client.trust import Trust
from covex.domain.cards import render_card
from covex.domain.entities import FileEntry, FsckReport, GcReport, Model, ModelEvent, ModelVersion, NewVersion, Page
from covex.domain.errors import (
    ArtifactCorrupted,
    CovexError,
    InvalidInput,
    InvalidState,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
)
from covex.domain.names import validate_artifact_path
from covex.domain.scans import ScanReport
from covex.domain.uris import ModelRef, version_ref
from covex.settings import Settings

Progress = Callable[[int], None]
# A server busy with this user's other uploads answers 429: about two minutes of retries, then the error.
UPLOAD_ATTEMPTS = 12


def _latest_of_each(evaluations: list[dict[str, Any]], most: int = 5) -> list[dict[str, Any]]:
    """The newest evaluation of each key (a comparison asked again is one entry), at most ``most``."""
    seen: set[str] = set()
    out = []
    for e in evaluations:
        if e["key"] not in seen:
            seen.add(e["key"])
            out.append(e)
    return out[:most]


class Client(RecordsMixin):
    """The registry, from Python.

    ``Client()`` is embedded in ``./covex-data`` (or ``$COVEX_URI``);
    ``Client("http://host:8080", token=...)`` talks to a server;
    ``Client("postgresql+psycopg://...", artifacts="s3://bucket/prefix")`` is embedded
    on PostgreSQL and S3. Every backend raises the same ``covex.errors`` classes.

    An embedded registry is created by the first write (``on_create`` is told where), never
    by a read: reading where there is none raises ``NotFound``.
    """

    def __init__(
        self,
        uri: str | os.PathLike[str] | None = None,
        *,
        artifacts: str | None = None,
        token: str | None = None,
        settings: Settings | None = None,
        on_create: Callable[[str], None] | None = None,
        **overrides: Any,
    ) -> None:
        values: dict[str, Any] = dict(overrides)
        if uri is not None:
            values["uri"] = os.fspath(uri)
        if artifacts is not None:
            values["artifacts"] = artifacts
        if token is not None:
            values["token"] = token
        base = settings or Settings()
        self.settings = base.model_copy(update=values) if values else base
        self._backend: Backend
        if self.settings.is_remote:
            from covex.client.http import HttpBackend

            self._backend = HttpBackend(self.settings)
        else:
            from covex.client.embedded import EmbeddedBackend

            # Embedded, the SDK acts as the local user with admin rights; with a token, as its owner,
            # checked on every call like a server would. Nothing is opened (or created) until used.
            self._backend = EmbeddedBackend(self.settings, token=self.settings.token, on_create=on_create)

    def __repr__(self) -> str:
        return f"covex.Client({self.settings.uri!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()

    def close(self) -> None:
        """Release connections."""
        self._backend.close()

    @property
    def location(self) -> str:
        """Where the registry is: its data folder, SQLite file, database URL or server URL."""
        from covex.client.embedded import EmbeddedBackend

        if isinstance(self._backend, EmbeddedBackend):
            return self._backend.location
        return self.settings.uri

    def init(self) -> bool:
        """Create the embedded registry now if there is none (the first write would); True if this created it.

        Reads never create a registry: they raise ``NotFound`` where there is none. A server's
        registry is made by the server, so against a server this is refused.
        """
        from covex.client.embedded import EmbeddedBackend

        if not isinstance(self._backend, EmbeddedBackend):
            raise InvalidInput(
                f"{self.settings.uri} is a server; it creates its own registry (init needs a data folder or database)"
            )
        return self._backend.init()

    @property
    def access(self) -> Access:
        """Users, service accounts, groups, API tokens and grants."""
        return self._backend.access

    @property
    def approvals(self) -> Approvals:
        """Policies, approval requests, comments, rollback and placement history."""
        return self._backend.approvals

    @property
    def audit(self) -> Audit:
        """The tamper-evident audit trail: list, verify, export."""
        return self._backend.audit

    @property
    def webhooks(self) -> Webhooks:
        """Webhook subscriptions and their delivery log."""
        return self._backend.webhooks

    @property
    def monitoring(self) -> Monitoring:
        """Monitor configs, drift references and the results of checks, with their history."""
        return self._backend.monitoring

    @property
    def trust(self) -> Trust:
        """File scans, signing keys, signed statements, verification and bundles."""
        return self._backend.trust

    def scan(self, name_or_uri: str, version: int | str | None = None) -> ScanReport:
        """Scan a version's files now, without loading them; the result is kept on the version."""
        name, number = self._number(name_or_uri, version)
        return self._backend.trust.scan_version(name, number)

    @property
    def stages(self) -> list[str]:
        """The configured stages, in order (the first is where new versions start)."""
        return list(self._backend.stages)

    # -- models ---------------------------------------------------------------------

    def create_model(self, name: str, description: str = "", tags: Mapping[str, str] | None = None) -> Model:
        """Register a new model name."""
        return self._backend.create_model(name, description, tags)

    def get_model(self, name: str) -> Model:
        return self._backend.get_model(name)

    def rename_model(self, name: str, new_name: str) -> Model:
        return self._backend.rename_model(name, new_name)

    def update_model(self, name: str, *, description: str) -> Model:
        return self._backend.update_model(name, description=description)

    def set_model_tag(self, name: str, key: str, value: str) -> Model:
        return self._backend.set_model_tag(name, key, value)

    def delete_model_tag(self, name: str, key: str) -> Model:
        return self._backend.delete_model_tag(name, key)

    def delete_model(self, name: str) -> None:
        """Delete a model and all its versions."""
        self._backend.delete_model(name)

    def search_models(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[Model]:
        """Search models, e.g. ``"name LIKE 'churn%' AND tags.team = 'crm'"``."""
        return self._backend.search_models(filter, order_by, max_results, page_token)

    # -- versions -------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        path: str | os.PathLike[str] | None = None,
        *,
        source: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, str] | None = None,
        run_id: str = "",
        run_link: str = "",
        documents: Mapping[str, Any] | None = None,
        number: int | None = None,
        progress: Progress | None = None,
    ) -> ModelVersion:
        """Create the next version of ``name`` from a folder or file, or from a ``source`` URI only.

        Files are hashed, uploaded (blobs already stored are skipped) and verified;
        the version is READY when all are. If the upload breaks, the version is
        marked FAILED and the error is raised; calling again creates a new version
        and uploads only what is still missing.
        """
        local = scan(path, self.settings.chunk_size) if path is not None else []
        if path is not None and not source:
            source = Path(path).resolve().as_uri()
        new = NewVersion(
            files=[f.entry for f in local],
            source=source or "",
            description=description,
            tags=tags,
            metrics=metrics,
            params=params,
            run_id=run_id,
            run_link=run_link,
            documents=documents,
            number=number,
        )
        version = self._backend.create_version(name, new)
        if not local:
            return version
        try:
            missing = set(self._backend.missing_blobs([f.entry.digest for f in local]))
            if progress:
                progress(sum(f.entry.size for f in local if f.entry.digest not in missing))
            for f in local:
                if f.entry.digest in missing:
                    missing.discard(f.entry.digest)
                    try:
                        self._upload(f, progress)
                    except CovexError as exc:
                        # Say which file: a version may hold thousands.
                        raise type(exc)(f"{f.entry.path}: {exc.message}") from None
            return self._backend.finalize_version(name, version.version)
        except BaseException as exc:
            # A refused upload may leave the server closing the connection it answered on: try twice.
            for _ in range(2):
                try:
                    self._backend.fail_version(name, version.version, f"upload failed: {exc}")
                    break
                except ServiceUnavailable:
                    continue
                except Exception:  # noqa: BLE001 - the original error is the one to report
                    break
            raise

    def _upload(self, f: LocalFile, progress: Progress | None) -> None:
        """Send one file; when the server has too many of this user's uploads at once, wait and send it again."""
        reported = sent = 0

        def once(n: int) -> None:  # a retry reads the file again: count each byte once
            nonlocal reported, sent
            sent += n
            if progress and sent > reported:
                progress(sent - reported)
                reported = sent

        for attempt in range(UPLOAD_ATTEMPTS):
            sent = 0
            chunks = _read(f.local, self.settings.chunk_size, once)
            try:
                self._backend.put_blob(f.entry.digest, f.entry.size, _as_hashed(chunks, f))
                return
            except TooManyRequests:
                if attempt == UPLOAD_ATTEMPTS - 1:
                    raise
                time.sleep(min(0.2 * 2**attempt, 10.0) * (1 + random.random()))  # jitter: not for security

    def get_version(self, name_or_uri: str, version: int | str | None = None) -> ModelVersion:
        """Get a version by ``models:/`` URI, or by name and number, ``@alias``, stage or ``latest``."""
        return self._backend.get_version(self._ref(name_or_uri, version))

    def _ref(self, name_or_uri: str, version: int | str | None) -> ModelRef:
        ref = version_ref(name_or_uri, version)
        if ref.kind == "stage":  # only now ask for the stages (a request, over HTTP), to say what else fits
            ref = version_ref(name_or_uri, version, self.stages)
        return ref

    def list_versions(self, name: str, *, max_results: int = 100, page_token: str | None = None) -> Page[ModelVersion]:
        """The versions of one model, newest first."""
        return self._backend.search_versions(None, None, max_results, page_token, model=name)

    def search_versions(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[ModelVersion]:
        """Search versions, e.g. ``"name = 'churn' AND metrics.auc > 0.9"``."""
        return self._backend.search_versions(filter, order_by, max_results, page_token)

    def get_latest_version(self, name: str, stage: str | None = None) -> ModelVersion:
        """The highest READY version, optionally within ``stage``."""
        return self._backend.get_version(ModelRef(name, "stage", stage) if stage else ModelRef(name, "latest"))

    def _number(self, name_or_uri: str, version: int | str | None) -> tuple[str, int]:
        if not isinstance(version, bool) and isinstance(version, int) and not name_or_uri.startswith("models:/"):
            return name_or_uri, version_ref(name_or_uri, version).version  # checks the range, on every backend
        v = self.get_version(name_or_uri, version)
        return v.name, v.version

    def update_version(self, name: str, version: int | str | None, *, description: str) -> ModelVersion:
        return self._backend.update_version(*self._number(name, version), description=description)

    def set_version_tag(self, name: str, version: int | str | None, key: str, value: str) -> ModelVersion:
        return self._backend.set_version_tag(*self._number(name, version), key, value)

    def delete_version_tag(self, name: str, version: int | str | None, key: str) -> ModelVersion:
        return self._backend.delete_version_tag(*self._number(name, version), key)

    def log_metrics(self, name: str, version: int | str | None, metrics: Mapping[str, float]) -> ModelVersion:
        """Add or overwrite metrics of a version."""
        return self._backend.log_metrics(*self._number(name, version), metrics)

    def log_params(self, name: str, version: int | str | None, params: Mapping[str, str]) -> ModelVersion:
        """Add or overwrite params of a version."""
        return self._backend.log_params(*self._number(name, version), params)

    def delete_version(self, name: str, version: int | str | None) -> None:
        """Delete a version; its number is never reused."""
        self._backend.delete_version(*self._number(name, version))

    # -- stages and aliases ---------------------------------------------------------

    def transition_stage(
        self,
        name: str,
        version: int | str | None,
        stage: str,
        *,
        archive_existing: bool = False,
        comment: str = "",
    ) -> ModelVersion:
        """Move a version to ``stage``; ``archive_existing`` archives the others there in the same step.

        A stage with a policy is entered only through an approved request (``client.approvals``).
        """
        model, number = self._number(name, version)
        return self._backend.transition_stage(model, number, stage, archive_existing=archive_existing, comment=comment)

    def set_alias(self, name: str, alias: str, version: int | str | None, *, comment: str = "") -> ModelVersion:
        """Point ``alias`` at a version (moving it off any other); ``comment`` says why, in the history."""
        model, number = self._number(name, version)
        return self._backend.set_alias(model, alias, number, comment=comment)

    def delete_alias(self, name: str, alias: str) -> None:
        self._backend.delete_alias(name, alias)

    # -- files ----------------------------------------------------------------------

    def list_files(self, name_or_uri: str, version: int | str | None = None) -> list[FileEntry]:
        """The files of a version with their digests and sizes."""
        return self._backend.list_files(self._ref(name_or_uri, version))[1]

    def get_version_files(
        self, name_or_uri: str, version: int | str | None = None
    ) -> tuple[ModelVersion, list[FileEntry]]:
        """A version and its files, resolved in one step (an alias cannot move in between)."""
        return self._backend.list_files(self._ref(name_or_uri, version))

    # -- documents and history ------------------------------------------------------

    def get_document(self, name_or_uri: str, kind: str, version: int | str | None = None) -> dict[str, Any]:
        """A version's ``lineage``, ``signature``, ``profile`` or ``card``."""
        return self._backend.get_document(self._ref(name_or_uri, version), kind)

    def get_lineage(self, name_or_uri: str, version: int | str | None = None) -> dict[str, Any]:
        """Code (Git), datasets, parent version, training run and environment of a version."""
        return self.get_document(name_or_uri, "lineage", version)

    def get_card(self, name_or_uri: str, version: int | str | None = None) -> dict[str, Any]:
        """The author's model card fields (empty when none was written)."""
        try:
            return self.get_document(name_or_uri, "card", version)
        except NotFound:
            self.get_version(name_or_uri, version)  # the version itself must exist
            return {}

    def set_card(
        self,
        name_or_uri: str,
        card: Mapping[str, Any],
        version: int | str | None = None,
        *,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Merge ``card``'s fields into a version's model card and return the whole card.

        A field given as None is removed; ``replace=True`` makes ``card`` the whole card.
        """
        return self._backend.set_card(*self._number(name_or_uri, version), card, replace=replace)

    def render_card(self, name_or_uri: str, version: int | str | None = None) -> str:
        """The model card as Markdown: the author's fields plus metrics, signature, lineage and history."""
        mv = self.get_version(name_or_uri, version)
        docs: dict[str, dict[str, Any] | None] = {}
        for kind in ("card", "signature", "lineage"):
            try:
                docs[kind] = self._backend.get_document(ModelRef(mv.name, "version", str(mv.version)), kind)
            except NotFound:
                docs[kind] = None
        events = [e.model_dump() for e in self._backend.history(mv.name, mv.version)]
        deployed = [d.model_dump() for d in self._backend.list_deployments(mv.name, mv.version)]
        checked = [r.model_dump() for r in self._backend.monitoring.list_results(mv.name, mv.version, max_results=5)]
        evaluated = [e.model_dump() for e in self._backend.list_evaluations(mv.name, mv.version, max_results=20)]
        return render_card(
            mv,
            docs["card"] or {},
            signature=docs["signature"],
            lineage=docs["lineage"],
            history=events,
            deployments=deployed,
            monitoring=checked,
            evaluations=_latest_of_each(evaluated),
            scan=self._backend.trust.latest_scan(mv.name, mv.version),
        )

    def history(self, name: str, version: int | None = None) -> list[ModelEvent]:
        """Stage moves and alias changes of a model, oldest first; ``version`` keeps those touching it."""
        return self._backend.history(name, None if version is None else version_ref(name, version).version)

    def download(
        self,
        name_or_uri: str,
        dst: str | os.PathLike[str],
        version: int | str | None = None,
        *,
        progress: Progress | None = None,
    ) -> Path:
        """Download every file of a READY version into folder ``dst``, verifying each digest."""
        _check_destination(dst)  # before asking the registry: a bad folder fails fast
        mv, files = self._backend.list_files(self._ref(name_or_uri, version))
        if mv.status != "READY":
            raise InvalidState(f"version {mv.version} of {mv.name!r} is {mv.status}; only READY versions download")
        return self.download_files(files, dst, progress=progress)

    def download_files(
        self, files: Sequence[FileEntry], dst: str | os.PathLike[str], *, progress: Progress | None = None
    ) -> Path:
        """Download files already listed (``get_version_files``) into folder ``dst``, verifying each digest."""
        root = _check_destination(dst)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInput(f"'dst' {os.fspath(dst)!r}: cannot create folder {root}: {exc.strerror}") from None
        for f in files:
            target = (root / validate_artifact_path(f.path)).resolve()
            if root not in target.parents:
                raise InvalidInput(f"file path {f.path!r} leads outside {root}")
            with _writing(target):
                target.parent.mkdir(parents=True, exist_ok=True)
            self._fetch(f, target, progress)
        return root

    def _fetch(self, f: FileEntry, target: Path, progress: Progress | None) -> None:
        partial = target.with_name(target.name + ".covex-partial")
        h = hashlib.sha256()
        size = 0
        try:
            with _writing(target):
                out = partial.open("wb")
            with out:
                for chunk in self._backend.read_blob(f.digest):
                    h.update(chunk)
                    size += len(chunk)
                    with _writing(target):
                        out.write(chunk)
                    if progress:
                        progress(len(chunk))
            if size != f.size or h.hexdigest() != f.digest:
                raise ArtifactCorrupted(
                    f"{f.path}: downloaded content does not match its digest "
                    f"(expected {f.digest}, {f.size} bytes; got {h.hexdigest()}, {size} bytes)"
                )
            with _writing(target):
                partial.chmod(f.mode or 0o644)
                os.replace(partial, target)
        finally:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)

    def gc(self, *, apply: bool = False, grace_seconds: float = 3600.0) -> GcReport:
        """Find blobs no version references; delete them only with ``apply=True``."""
        return self._backend.gc(apply=apply, grace_seconds=grace_seconds)

    def fsck(self, *, after: str | None = None, limit: int = 10) -> FsckReport:
        """Re-hash the stored files of the READY versions of the next ``limit`` models after ``after`` (admins).

        Models go in name order: call again with the report's ``next`` until it is None (as
        ``covex fsck`` does). The report names each blob that is missing or does not match its
        digest, with the files of the versions it breaks.
        """
        return self._backend.fsck(after=after, limit=limit)


@contextlib.contextmanager
def _writing(target: Path) -> Iterator[None]:
    """Errors of the local file system while writing ``target`` (only: a failing read of the store
    stays what it is) become one ``CovexError`` naming the file."""
    try:
        yield
    except OSError as exc:
        # Disk full, a read-only folder, a folder where the version has a file: not the registry's fault.
        raise CovexError(f"cannot write {target}: {exc.strerror or exc}") from None


def _check_destination(dst: str | os.PathLike[str]) -> Path:
    """The folder ``dst`` resolved, if it is one or can become one: no file at or above it."""
    root = Path(dst).expanduser().resolve()
    for place in (root, *root.parents):
        if place.is_dir():
            return root
        if place.exists():
            what = "is a file" if place == root else f"is under {place}, which is a file"
            raise InvalidInput(f"'dst' {os.fspath(dst)!r} {what}; give a folder to download into")
    return root


def _read(path: Path, chunk_size: int, progress: Progress | None) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            if progress:
                progress(len(chunk))
            yield chunk


def _as_hashed(chunks: Iterator[bytes], f: LocalFile) -> Iterator[bytes]:
    """Pass on a file's chunks, never more bytes than were hashed.

    A file that grew or shrank since it was hashed raises ``ArtifactCorrupted`` here, on
    every backend, instead of breaking the HTTP request with a protocol error.
    """
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        if sent > f.entry.size:
            break
        yield chunk
    if sent != f.entry.size:
        raise ArtifactCorrupted(
            f"{f.local} changed while it was uploaded: {f.entry.size} bytes were hashed, "
            f"{'more' if sent > f.entry.size else sent} were read"
        )
