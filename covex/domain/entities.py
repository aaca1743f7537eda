"""The registry's entities as immutable values. Timestamps are milliseconds since the epoch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

VersionStatus = Literal["PENDING", "READY", "FAILED"]


class _Entity(BaseModel):
    model_config = ConfigDict(frozen=True)


def _to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class Model(_Entity):
    """A registered model: a name that owns numbered versions."""

    name: str
    description: str = ""
    tags: dict[str, str] = {}
    aliases: dict[str, int] = {}
    latest_version: int | None = None
    created_by: str = ""
    creation_timestamp: int
    last_updated_timestamp: int

    @property
    def created_at(self) -> datetime:
        return _to_datetime(self.creation_timestamp)


class FileEntry(_Entity):
    """One file of a version: where it sits, what it holds (SHA-256) and how big it is."""

    path: str
    digest: str
    size: int
    mode: int = 0o644


class ModelVersion(_Entity):
    """One immutable, numbered version of a model."""

    name: str
    version: int
    status: VersionStatus
    status_message: str = ""
    stage: str
    description: str = ""
    source: str = ""
    run_id: str = ""
    run_link: str = ""
    created_by: str = ""
    tags: dict[str, str] = {}
    metrics: dict[str, float] = {}
    params: dict[str, str] = {}
    aliases: list[str] = []
    manifest_digest: str | None = None
    file_count: int = 0
    size: int = 0
    creation_timestamp: int
    last_updated_timestamp: int

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def created_at(self) -> datetime:
        return _to_datetime(self.creation_timestamp)


@dataclass(frozen=True, kw_only=True)
class NewVersion:
    """What a new version is made of: everything ``create_version`` records, checked by the service.

    ``files`` makes it PENDING until they are uploaded; without them it records ``source``
    only. ``number`` keeps a number from elsewhere (imports).
    """

    files: Sequence[FileEntry] = ()
    source: str = ""
    description: str = ""
    tags: Mapping[str, str] | None = None
    metrics: Mapping[str, float] | None = None
    params: Mapping[str, str] | None = None
    run_id: str = ""
    run_link: str = ""
    documents: Mapping[str, Any] | None = None
    number: int | None = None


T = TypeVar("T")


class Page(_Entity, Generic[T]):
    """One page of a listing; pass ``next_page_token`` back for the next one."""

    items: list[T]
    next_page_token: str | None = None

    def __iter__(self) -> Iterator[T]:  # type: ignore[override]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> T:
        return self.items[index]


class GcReport(_Entity):
    """What garbage collection found, removed (when applied) and kept, and why.

    Nothing younger than ``grace_seconds`` is removed: an upload may be in flight. Referenced
    blobs are only checked for existence here; ``fsck`` re-hashes them.
    """

    applied: bool
    referenced: int  # distinct blobs that versions list
    unreferenced: list[str]  # removable (removed, when applied)
    bytes_freed: int
    stale_uploads: int = 0  # partial uploads older than the grace period: removable
    stale_upload_bytes: int = 0
    grace_seconds: float = 3600.0
    young_unreferenced: int = 0  # unreferenced blobs kept: younger than the grace period
    young_unreferenced_bytes: int = 0
    partial_uploads: int = 0  # partial uploads kept: younger than the grace period (maybe in flight)
    partial_upload_bytes: int = 0
    referenced_present: int = 0  # referenced blobs that are stored (existence only)
    referenced_missing: int = 0  # blobs READY versions list that are not stored
    pending_timeout: float = 86400.0
    pending_expired: int = 0  # PENDING versions older than the timeout: marked FAILED (when applied)


class SweepReport(_Entity):
    """PENDING versions marked FAILED because they stayed PENDING longer than ``older_than`` seconds."""

    older_than: float
    failed: list[str]  # models:/ URIs


class BrokenFile(_Entity):
    """A file of a READY version whose stored content is missing or damaged."""

    uri: str  # models:/name/N
    path: str


class BlobProblem(_Entity):
    """One stored blob that is missing or does not match its digest, and the files it breaks."""

    digest: str
    size: int  # what the versions say
    reason: str
    files: list[BrokenFile]


class FsckReport(_Entity):
    """One batch of an integrity check: the READY versions of up to ``limit`` models, in name order.

    ``next`` is the model to resume after (None: every model was checked); ``models_done`` of
    ``models_total`` is how far the whole check has come.
    """

    after: str | None = None
    next: str | None = None
    models: int = 0
    versions: int = 0
    files: int = 0
    blobs: int = 0  # distinct blobs re-hashed
    bytes: int = 0
    models_done: int = 0
    models_total: int = 0
    missing: list[BlobProblem] = []
    corrupted: list[BlobProblem] = []

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupted

    def then(self, later: FsckReport) -> FsckReport:
        """This batch and the ``later`` one as one report (a blob both found broken listed once)."""
        return FsckReport(
            after=self.after,
            next=later.next,
            models=self.models + later.models,
            versions=self.versions + later.versions,
            files=self.files + later.files,
            blobs=self.blobs + later.blobs,
            bytes=self.bytes + later.bytes,
            models_done=later.models_done,
            models_total=later.models_total,
            missing=_merged(self.missing, later.missing),
            corrupted=_merged(self.corrupted, later.corrupted),
        )


def _merged(earlier: list[BlobProblem], later: list[BlobProblem]) -> list[BlobProblem]:
    by_digest = {p.digest: p for p in earlier}
    for p in later:
        seen = by_digest.get(p.digest)
        by_digest[p.digest] = p if seen is None else seen.model_copy(update={"files": seen.files + p.files})
    return list(by_digest.values())


class ModelEvent(_Entity):
    """A stage move or alias change: what moved, from where to where, who did it and when."""

    name: str
    version: int | None
    kind: Literal["stage", "alias"]
    subject: str = ""
    before: str | None = None
    after: str | None = None
    actor: str = ""
    timestamp: int
    comment: str = ""
    request_id: int | None = None


DOCUMENT_KINDS = ("lineage", "signature", "profile", "card", "reference")
