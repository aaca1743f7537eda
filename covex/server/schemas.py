"""Request bodies of the HTTP API (responses are the domain entities)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from covex.domain.entities import FileEntry, ModelVersion


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateModel(_Body):
    name: str
    description: str = ""
    tags: dict[str, str] = {}


class UpdateModel(_Body):
    description: str | None = None
    new_name: str | None = None


class SetTag(_Body):
    key: str
    value: str


class CreateVersion(_Body):
    files: list[FileEntry] = []
    source: str = ""
    description: str = ""
    tags: dict[str, str] = {}
    metrics: dict[str, float] = {}
    params: dict[str, str] = {}
    run_id: str = ""
    run_link: str = ""
    documents: dict[str, dict[str, Any]] = {}
    number: int | None = None


class SetCard(_Body):
    card: dict[str, Any]


class UpdateVersion(_Body):
    description: str


class FailVersion(_Body):
    message: str = ""


class LogMetrics(_Body):
    metrics: dict[str, float]


class LogParams(_Body):
    params: dict[str, str]


class Transition(_Body):
    stage: str
    archive_existing: bool = False
    comment: str = ""


class SetAlias(_Body):
    alias: str
    version: int = Field(ge=1)
    comment: str = ""


class MissingBlobs(_Body):
    digests: list[str]


class MissingBlobsResult(BaseModel):
    missing: list[str]


class VersionFiles(BaseModel):
    version: ModelVersion
    files: list[FileEntry]


class Stages(BaseModel):
    stages: list[str]


class RunGc(_Body):
    apply: bool = False
    grace_seconds: float = Field(default=3600.0, ge=0)


class ErrorBody(BaseModel):
    error_code: str
    message: str
