"""Request bodies of the HTTP API (responses are the domain entities)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.config import JsonDict

from covex.domain import names
from covex.domain.access import PRINCIPAL_PATTERN
from covex.domain.entities import FileEntry, ModelVersion
from covex.domain.uris import MAX_ID


def _whole(pattern: str) -> str:
    return f"^{pattern}$"


# What the service enforces, stated in the OpenAPI document. The service checks (with messages that
# name the field and say why), so these only document: pydantic would refuse first, in its own words.
MODEL_NAME: JsonDict = {"pattern": _whole(names.MODEL_NAME_PATTERN), "maxLength": names.MAX_NAME_LENGTH}
ALIAS: JsonDict = {"pattern": _whole(names.ALIAS_PATTERN), "maxLength": names.MAX_KEY_LENGTH}
KEY: JsonDict = {"pattern": _whole(names.KEY_PATTERN), "maxLength": names.MAX_KEY_LENGTH}
PRINCIPAL: JsonDict = {"pattern": _whole(PRINCIPAL_PATTERN), "maxLength": 128}
NUMBER: JsonDict = {"minimum": 1, "maximum": MAX_ID}
DIGEST: JsonDict = {"pattern": "^[0-9a-f]{64}$"}


def text(limit: int) -> JsonDict:
    return {"maxLength": limit}


ModelNameIn = Annotated[str, Path(json_schema_extra=MODEL_NAME, description="a model name, 'team/churn'")]


def _whole_number(value: Any) -> Any:
    # From a URL every value is text, and pydantic would read "1.0" as 1: a number here is digits only.
    if isinstance(value, str) and not re.fullmatch(r"-?[0-9]{1,19}", value):
        raise ValueError("must be an integer (digits only)")
    return value


WholeNumber = BeforeValidator(_whole_number)
QueryInt = Annotated[int, WholeNumber]
VersionIn = Annotated[int, Path(json_schema_extra=NUMBER), WholeNumber]
DigestIn = Annotated[str, Path(json_schema_extra=DIGEST, description="a SHA-256 hex digest")]
PrincipalIn = Annotated[str, Path(json_schema_extra=PRINCIPAL)]
ModelName = Annotated[str, Field(json_schema_extra=MODEL_NAME)]
Alias = Annotated[str, Field(json_schema_extra=ALIAS)]
Key = Annotated[str, Field(json_schema_extra=KEY)]
Principal = Annotated[str, Field(json_schema_extra=PRINCIPAL)]
Text = Annotated[str, Field(json_schema_extra=text(names.MAX_TEXT_LENGTH))]
CommentText = Annotated[str, Field(json_schema_extra=text(names.MAX_COMMENT_LENGTH))]
Uri = Annotated[str, Field(json_schema_extra=text(names.MAX_URI_LENGTH))]
Value = Annotated[str, Field(json_schema_extra=text(names.MAX_VALUE_LENGTH))]


class RequestBody(BaseModel):
    """A request body: unknown fields are refused, and values are not coerced ("yes" is not a boolean)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class CreateModel(RequestBody):
    name: ModelName
    description: Text = ""
    tags: dict[Key, Value] = {}


class UpdateModel(RequestBody):
    description: Text | None = None
    new_name: ModelName | None = None


class SetTag(RequestBody):
    key: Key
    value: Value


class CreateVersion(RequestBody):
    files: list[FileEntry] = []
    source: Uri = ""
    description: Text = ""
    tags: dict[Key, Value] = {}
    metrics: dict[Key, float] = {}
    params: dict[Key, Value] = {}
    run_id: Annotated[str, Field(json_schema_extra=text(names.MAX_KEY_LENGTH))] = ""
    run_link: Uri = ""
    documents: dict[str, dict[str, Any]] = {}
    number: int | None = None


class SetCard(RequestBody):
    card: dict[str, Any]


class UpdateVersion(RequestBody):
    description: Text


class FailVersion(RequestBody):
    message: Text = ""


class LogMetrics(RequestBody):
    metrics: dict[Key, float]


class LogParams(RequestBody):
    params: dict[Key, Value]


class Transition(RequestBody):
    stage: str
    archive_existing: bool = False
    comment: CommentText = ""


class SetAlias(RequestBody):
    alias: Alias
    version: int = Field(ge=1, json_schema_extra=NUMBER)
    comment: CommentText = ""


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
