"""The keys of a registration config, their types and the checks a key can make on its own."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from covex.domain.errors import CovexError, InvalidInput
from covex.domain.yaml_reader import Loc
from covex.ml.config.messages import located, type_name

SOURCE_KINDS = ("mlflow_model", "pickle", "joblib", "mlflow_run")

# -- values ---------------------------------------------------------------------------------


def _base(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base")
    return base if isinstance(base, Path) else Path.cwd()


PathKind = Literal["file", "folder", "any"]


def existing_path(kind: PathKind, value: str, info: ValidationInfo) -> Path:
    """Resolve a path written in the config against the config's folder; it must exist."""
    if not value.strip():
        raise PydanticCustomError("empty_path", "must be a path, not an empty string")
    path = (_base(info) / Path(value).expanduser()).resolve()
    if not path.exists():
        what = {"file": "file", "folder": "folder", "any": "path"}[kind]
        raise PydanticCustomError("missing_path", "{what} {value} does not exist", {"what": what, "value": value})
    if kind == "file" and not path.is_file():
        raise PydanticCustomError("not_a_file", "{value} is not a file", {"value": value})
    if kind == "folder" and not path.is_dir():
        raise PydanticCustomError("not_a_folder", "{value} is not a folder", {"value": value})
    return path


def _local_path(kind: PathKind) -> BeforeValidator:
    def check(value: Any, info: ValidationInfo) -> Any:
        return existing_path(kind, value, info) if isinstance(value, str) else value  # else the type check reports it

    return BeforeValidator(check)


LocalFile = Annotated[Path, _local_path("file")]
LocalFolder = Annotated[Path, _local_path("folder")]
LocalPath = Annotated[Path, _local_path("any")]


def _text_value(value: Any) -> Any:
    """Params and tags: numbers, booleans and dates written in YAML become their text."""
    if isinstance(value, bool | int | float | date | datetime) and not isinstance(value, str):
        return str(value)
    if value is None:
        raise PydanticCustomError("null_value", "needs a value (write '' for an empty string)")
    if isinstance(value, dict | list):
        raise PydanticCustomError("not_scalar", "must be text or a number, not {kind}", {"kind": type_name(value)})
    return value


def _metric_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise PydanticCustomError("not_a_number", "must be a number, got {value}", {"value": type_name(value)})
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise PydanticCustomError(
                "not_a_number", "must be a number, got {value}", {"value": type_name(value)}
            ) from None
    if isinstance(value, int):
        try:
            value = float(value)
        except OverflowError:  # an integer of hundreds of digits (0xfff...): no float holds it
            raise PydanticCustomError("not_finite", "must be a finite number, got one too large") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("not_finite", "must be a finite number, got {value}", {"value": value})
    return value


def _one_or_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _requirements(value: Any, info: ValidationInfo) -> Any:
    """A list of pip requirements, or the path of a requirements file (read here)."""
    if not isinstance(value, str):
        return value
    path = existing_path("file", value, info)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PydanticCustomError(
            "unreadable", "cannot read {value}: {error}", {"value": value, "error": str(exc)}
        ) from None
    found = [line.split("#", 1)[0].strip() for line in lines]
    found = [line for line in found if line]
    if not found:
        raise PydanticCustomError("no_requirements", "{value} lists no requirements", {"value": value})
    return found


def _parent(value: Any) -> Any:
    """``parent: models:/...`` is short for ``parent: {uri: models:/..., required: true}``."""
    return {"uri": value} if isinstance(value, str) else value


TextValue = Annotated[str, BeforeValidator(_text_value)]
Metric = Annotated[float, BeforeValidator(_metric_value)]
NonEmpty = Annotated[str, Field(min_length=1)]

# -- sections -------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSource(_Section):
    """Where the model comes from: exactly one of the four kinds."""

    mlflow_model: LocalFolder | None = None
    pickle: LocalFile | None = None
    joblib: LocalFile | None = None
    mlflow_run: NonEmpty | None = None
    flavor: Literal["sklearn", "xgboost", "lightgbm"] | None = None
    pip_requirements: Annotated[list[NonEmpty] | None, BeforeValidator(_requirements)] = None
    tracking_uri: NonEmpty | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = [k for k in SOURCE_KINDS if data.get(k) is not None]
        if len(given) != 1:
            found = f"got {' and '.join(given)}" if given else "got none"
            raise PydanticCustomError(
                "source_choice",
                "give exactly one of mlflow_model, pickle, joblib or mlflow_run ({found})",
                {"found": found},
            )
        kind = given[0]
        for key in ("flavor", "pip_requirements"):
            if data.get(key) is not None and kind not in ("pickle", "joblib"):
                raise PydanticCustomError(
                    "source_option", "'{key}' applies to pickle and joblib sources only", {"key": key}
                )
        if data.get("tracking_uri") is not None and kind != "mlflow_run":
            raise PydanticCustomError("source_option", "'tracking_uri' applies to mlflow_run only")
        run = data.get("mlflow_run")
        if isinstance(run, str) and not re.fullmatch(r"runs:/[^/]+/.+", run):
            raise PydanticCustomError(
                "run_uri", "'mlflow_run' must look like runs:/<run id>/<artifact path>, got {run}", {"run": repr(run)}
            )
        return data

    @model_validator(mode="after")
    def _mlflow_folder(self) -> ModelSource:
        if self.mlflow_model is not None and not (self.mlflow_model / "MLmodel").is_file():
            raise PydanticCustomError(
                "not_mlflow",
                "'mlflow_model' {path} is not an MLflow model folder (it has no MLmodel file)",
                {"path": str(self.mlflow_model)},
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in SOURCE_KINDS if getattr(self, k) is not None)


class DatasetSpec(_Section):
    """A dataset the model saw: a local CSV/Parquet file (hashed and described) and/or a URI."""

    name: NonEmpty
    path: LocalFile | None = None
    uri: NonEmpty | None = None
    role: Literal["training", "evaluation"] = "training"
    digest: NonEmpty | None = None
    rows: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> DatasetSpec:
        if self.path is None and self.uri is None:
            raise PydanticCustomError("dataset_location", "give the dataset's 'path' (a local file) or its 'uri'")
        return self


class ParentSpec(_Section):
    """The version this one was retrained from; ``required: false`` lets a first run register without one."""

    uri: NonEmpty
    required: StrictBool = True


class RunInfo(_Section):
    """The training run that produced the model."""

    id: TextValue = ""
    link: str = ""


SECTIONS: dict[str, type[BaseModel]] = {"model_source": ModelSource, "run": RunInfo, "parent": ParentSpec}

# -- the config -----------------------------------------------------------------------------


class Config(_Section):
    """A registration config, validated; paths are absolute, files exist and parse.

    ``load_config`` makes one: it also reads the files the config names (metrics, frames,
    datasets) and computes the identity digest, kept in the private attributes.
    """

    model: str
    description: str = ""
    model_source: ModelSource
    input_example: LocalFile | None = None
    metrics: dict[str, Metric] = {}
    metrics_file: LocalFile | None = None
    params: dict[str, TextValue] = {}
    tags: dict[str, TextValue] = {}
    datasets: list[DatasetSpec] = []
    reference_data: LocalFile | None = None
    card: dict[str, Any] | None = None
    parent: Annotated[ParentSpec | None, BeforeValidator(_parent)] = None
    run: RunInfo = RunInfo()
    aliases: Annotated[list[str], BeforeValidator(_one_or_list)] = []
    stage: str | None = None
    code_path: LocalPath | None = None

    _file: Path = PrivateAttr(default=Path("registry.yaml"))
    _label: str = PrivateAttr(default="registry.yaml")
    _lines: dict[Loc, int] = PrivateAttr(default_factory=dict)
    _all_metrics: dict[str, float] = PrivateAttr(default_factory=dict)
    _datasets: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _reference_frame: Any = PrivateAttr(default=None)
    _example_frame: Any = PrivateAttr(default=None)
    _card: dict[str, Any] = PrivateAttr(default_factory=dict)
    _digest: str = PrivateAttr(default="")

    @property
    def file(self) -> Path:
        """The config file, absolute."""
        return self._file

    @property
    def label(self) -> str:
        """The config file as the user named it, for messages."""
        return self._label

    @property
    def all_metrics(self) -> dict[str, float]:
        """``metrics_file`` merged with the inline ``metrics``."""
        return dict(self._all_metrics)

    @property
    def described_datasets(self) -> list[dict[str, Any]]:
        """The datasets as lineage records: content digests, rows and column types computed."""
        return [dict(d) for d in self._datasets]

    @property
    def reference_frame(self) -> Any:
        """The ``reference_data`` file as a pandas DataFrame (or None)."""
        return self._reference_frame

    @property
    def example_frame(self) -> Any:
        """The first rows of ``input_example`` as a pandas DataFrame (or None)."""
        return self._example_frame

    @property
    def card_fields(self) -> dict[str, Any]:
        """The ``card`` fields, checked."""
        return dict(self._card)

    def states(self, key: str) -> bool:
        """Whether the file gives ``key`` (a key left out leaves the version's value alone on a re-run)."""
        return key in self.model_fields_set

    def line(self, loc: Loc) -> int:
        """The line in the file of the key at ``loc`` (or of its closest enclosing key)."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self._lines:
                return self._lines[loc[:end]]
        return 1

    def error(self, loc: Loc, message: str, cls: type[CovexError] = InvalidInput) -> CovexError:
        """An error of class ``cls`` naming the file, the line of ``loc`` and the key."""
        return located(cls, self._label, self.line(loc), loc, message)

    def digest(self) -> str:
        """SHA-256 of the version's identity: model files, metrics, params, datasets, reference data.

        See ``covex.ml.config.identity``: tags, description, card, parent, run, aliases and
        stage are not part of it.
        """
        return self._digest
