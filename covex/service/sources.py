"""Registering a version from where MLflow says a model is: copied in, never left as a pointer that can break.

A source Covex's own tracking store holds (``models:/m-…``, ``runs:/…``, ``mlflow-artifacts:/…``), or a
registered version (``models:/churn/3``: MLflow's ``copy_model_version``), is registered from the files
already stored; one the team's MLflow server holds is copied in by ``fetch``
(an adapter's port) and stored content-addressed; any other source is recorded as a pointer, as MLflow does.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from covex.domain.entities import FileEntry, ModelVersion, NewVersion
from covex.domain.errors import InvalidInput
from covex.domain.uris import ModelRef, is_logged_model_uri, is_model_uri, parse_model_uri
from covex.service.base import ServiceBase
from covex.service.blobs import BlobService
from covex.service.versions import VersionService

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class CopiedModel:
    """What ``fetch`` learnt about a model it copied into a folder."""

    run_id: str = ""
    run_link: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


Fetch = Callable[[str, Path], CopiedModel | None]
"""Copy the model at a source into a folder; None: not a source it can fetch."""


class SourceService(ServiceBase):
    """Versions registered from a source URI."""

    def register_source(self, name: str, new: NewVersion, *, fetch: Fetch | None = None) -> ModelVersion:
        """Register ``new.source`` as a version of ``name``, with its files when Covex holds or can copy them.

        The run's metrics and params land on the version (what the caller gives wins) and the run is its lineage.
        """
        from covex.service.tracking import TrackingService  # the tracking store sits beside the registry

        versions = self._sibling(VersionService)
        copied_from = _registered(new.source)
        if copied_from is not None:  # MLflow's copy_model_version: the same files, stored once
            _, files = versions.list_files(copied_from)  # the caller must read the original
            return (
                versions.create_held_version(name, replace(new, files=files))
                if files
                else (versions.create_version(name, new))
            )
        if not _is_mlflow_model(new.source):  # s3://... and the like: a pointer, as MLflow records it
            return versions.create_version(name, new)
        stored = self._sibling(TrackingService).model_files(new.source)
        if stored is not None:
            held = _with_run(new, CopiedModel(stored.run_id, "", stored.metrics, stored.params))
            return versions.create_held_version(name, replace(held, files=stored.files))
        if fetch is not None:
            with self._tx(write=False) as conn:  # no copying for someone who may not register the result
                self._model_for(conn, name, "editor", "version.create", lock=False)
            with tempfile.TemporaryDirectory(prefix="covex-copy-") as folder:
                copied = fetch(new.source, Path(folder))
                if copied is not None:
                    files = self._store_folder(Path(folder))
                    held = _with_run(new, copied)
                    return versions.create_held_version(name, replace(held, files=files))
        return versions.create_version(name, new)

    def _store_folder(self, folder: Path) -> list[FileEntry]:
        blobs = self._sibling(BlobService)
        files = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    digest.update(chunk)
            size = path.stat().st_size
            blobs.put_blob(digest.hexdigest(), size, _chunks(path))
            files.append(FileEntry(path=path.relative_to(folder).as_posix(), digest=digest.hexdigest(), size=size))
        return files


def _registered(source: str) -> ModelRef | None:
    """The registered version a ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` source names."""
    if not is_model_uri(source) or is_logged_model_uri(source):
        return None
    try:
        return parse_model_uri(source)
    except InvalidInput:
        return None


def _is_mlflow_model(source: str) -> bool:
    """A source naming a model MLflow's tracking keeps (Covex's own, or the team's MLflow server's)."""
    return (
        is_logged_model_uri(source)
        or source.startswith(("runs:/", "mlflow-artifacts:"))
        or (source.startswith(("http://", "https://")) and "/api/2.0/mlflow-artifacts/artifacts/" in source)
    )


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        yield from iter(lambda: f.read(CHUNK), b"")


def _with_run(new: NewVersion, run: CopiedModel) -> NewVersion:
    return replace(
        new,
        run_id=new.run_id or run.run_id,
        run_link=new.run_link or run.run_link,
        metrics={**run.metrics, **(new.metrics or {})},
        params={**run.params, **(new.params or {})},
    )
