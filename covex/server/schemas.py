"""Request bodies of the HTTP API (responses are the domain entities)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from covex.domain.entities import FileEntry, ModelVersion


class RequestBody(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class CreateModel(RequestBody):
    name: str
    description: str = ""
    tags: dict[str, str] = {}


class UpdateModel(RequestBody):
    description: str | None = None
    new_name: str | None = None


class SetTag(RequestBody):
    key: str
    value: str


class CreateVersion(RequestBody):
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


class SetCard(RequestBody):
    card: dict[str, Any]


class UpdateVersion(RequestBody):
    description: str


class FailVersion(RequestBody):
    message: str = ""


class LogMetrics(RequestBody):
    metrics: dict[str, float]


class LogParams(RequestBody):
    params: dict[str, str]


class Transition(RequestBody):
    stage: str
    archive_existing: bool = False
    comment: str = ""


class SetAlias(RequestBody):
    alias: str
    version: int = Field(ge=1)
    comment: str = ""


class MissingBlobs(RequestBody):
    digests: list[str]


class MissingBlobsResult(BaseModel):
    missing: list[str]


class VersionFiles(BaseModel):
    version: ModelVersion
    files: list[FileEntry]


class Stages(BaseModel):
    stages: list[str]


class RunGc(RequestBody):
    apply: bool = False
    grace_seconds: float = Field(default=3600.0, ge=0)


class ErrorBody(BaseModel):
    error_code: str
    message: str
