"""The registry's entities as immutable values. Timestamps are milliseconds since the epoch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Generic, Literal, TypeVar

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
    """What garbage collection found (and removed, when applied)."""

    applied: bool
    referenced: int
    unreferenced: list[str]
    bytes_freed: int
    stale_uploads: int = 0


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


DOCUMENT_KINDS = ("lineage", "signature", "profile", "card")
