"""Config-driven registration: one YAML file describes a finished model; Covex checks it, then registers it.

    model: store-sales
    model_source: {mlflow_model: ./out/model}
    metrics_file: ./out/metrics.json
    datasets: [{name: train, path: ./data/train.csv}]
    aliases: [candidate]

``load_config`` reads and checks everything (keys, types, files, the metrics file, the
data frames) and writes nothing; every problem names the key and its line in the file.
``run_config`` then registers the model through the SDK, once: a digest over the inputs
is stored in the version tag ``covex.source_digest``, and the same config with the same
files returns the version registered before instead of creating another.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from covex.domain.cards import CARD_FIELDS, validate_card
from covex.domain.entities import ModelVersion
from covex.domain.errors import CovexError, InvalidInput, NotFound
from covex.domain.names import validate_alias, validate_key, validate_model_name, validate_value
from covex.domain.uris import parse_model_uri
from covex.ml.registering import SOURCE_DIGEST_TAG

if TYPE_CHECKING:
    from covex.client import Client

DIGEST_FORMAT = 1
SOURCE_KINDS = ("mlflow_model", "pickle", "joblib", "mlflow_run")
FRAME_SUFFIXES = (".csv", ".parquet", ".pq")
INPUT_EXAMPLE_ROWS = 5

Loc = tuple[str | int, ...]

# -- the schema -----------------------------------------------------------------------------


def _base(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base")
    return base if isinstance(base, Path) else Path.cwd()


PathKind = Literal["file", "folder", "any"]


def _existing(kind: PathKind, value: str, info: ValidationInfo) -> Path:
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
        return _existing(kind, value, info) if isinstance(value, str) else value  # else the type check reports it

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
        raise PydanticCustomError("not_scalar", "must be text or a number, not {kind}", {"kind": _type_name(value)})
    return value


def _metric_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise PydanticCustomError("not_a_number", "must be a number, got {value}", {"value": _type_name(value)})
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise PydanticCustomError(
                "not_a_number", "must be a number, got {value}", {"value": _type_name(value)}
            ) from None
    if isinstance(value, int | float) and not math.isfinite(value):
        raise PydanticCustomError("not_finite", "must be a finite number, got {value}", {"value": value})
    return value


def _one_or_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _requirements(value: Any, info: ValidationInfo) -> Any:
    """A list of pip requirements, or the path of a requirements file (read here)."""
    if not isinstance(value, str):
        return value
    path = _existing("file", value, info)
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


TextValue = Annotated[str, BeforeValidator(_text_value)]
Metric = Annotated[float, BeforeValidator(_metric_value)]
NonEmpty = Annotated[str, Field(min_length=1)]


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


class RunInfo(_Section):
    """The training run that produced the model."""

    id: TextValue = ""
    link: str = ""


class Config(_Section):
    """A registration config, validated; paths are absolute, files exist and parse."""

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
    parent: str | None = None
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
    _digest: str | None = PrivateAttr(default=None)

    @property
    def file(self) -> Path:
        """The config file, absolute."""
        return self._file

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
        return dict(self._card)

    def line(self, loc: Loc) -> int:
        """The line in the file of the key at ``loc`` (or of its closest enclosing key)."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self._lines:
                return self._lines[loc[:end]]
        return 1

    def error(self, loc: Loc, message: str, cls: type[CovexError] = InvalidInput) -> CovexError:
        return _located(cls, self._label, self.line(loc), loc, message)

    def digest(self) -> str:
        """SHA-256 over everything that makes the version what it is.

        Model content, metrics, params, tags, description, dataset contents, reference data,
        card and parent; not aliases, stage or the run id and link.
        """
        if self._digest is None:
            self._digest = _config_digest(self)
        return self._digest


class RegistrationResult(BaseModel):
    """What ``run_config`` did: the version, and whether it was created now or found from an earlier run."""

    model_config = ConfigDict(frozen=True)

    version: ModelVersion
    created: bool
    digest: str


# -- reading the YAML, keeping lines --------------------------------------------------------


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _located(cls: type[CovexError], label: str, line: int, loc: Loc, message: str) -> CovexError:
    key = _dotted(loc)
    if not key:
        return cls(f"{label} line {line}: {message}")
    if message.startswith(f"'{key}'"):
        return cls(f"{label} line {line}: {message}")
    return cls(f"{label} line {line}: '{key}': {message}")


_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<body>[^}]*)\}|\$\{")
_VARIABLE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


class _Reader:
    """Turns YAML nodes into plain values, interpolating ${VAR} and recording each key's line."""

    def __init__(self, label: str, env: Mapping[str, str]) -> None:
        self.label = label
        self.env = env
        self.lines: dict[Loc, int] = {(): 1}
        self.loader = yaml.SafeLoader("")

    def fail(self, line: int, loc: Loc, message: str) -> InvalidInput:
        error = _located(InvalidInput, self.label, line, loc, message)
        assert isinstance(error, InvalidInput)
        return error

    def read(self, text: str) -> Any:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            raise self.fail(line, (), f"not valid YAML: {exc.problem or exc.context}") from None
        except yaml.YAMLError as exc:
            raise self.fail(1, (), f"not valid YAML: {exc}") from None
        if root is None:
            raise self.fail(1, (), "the file is empty; it needs at least 'model' and 'model_source'")
        if not isinstance(root, MappingNode):
            raise self.fail(
                root.start_mark.line + 1, (), "the file must be a mapping of keys (model:, model_source: ...)"
            )
        return self.build(root, ())

    def build(self, node: Node, loc: Loc) -> Any:
        if isinstance(node, MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.fail(line, loc, "YAML merge keys ('<<') are not supported; write the keys out")
                if not isinstance(key_node, ScalarNode):
                    raise self.fail(line, loc, "keys must be plain names")
                key = str(key_node.value)
                if key in out:
                    raise self.fail(line, (*loc, key), "appears twice; give each key once")
                self.lines[(*loc, key)] = line
                out[key] = self.build(value_node, (*loc, key))
            return out
        if isinstance(node, SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines[(*loc, i)] = item.start_mark.line + 1
                items.append(self.build(item, (*loc, i)))
            return items
        assert isinstance(node, ScalarNode)
        return self.scalar(node, loc)

    def scalar(self, node: ScalarNode, loc: Loc) -> Any:
        text = self.interpolate(node, loc)
        tag = node.tag
        if text != node.value and text and node.style is None:
            # A plain (unquoted) value is typed after substitution, as YAML would type the text:
            # `rows: ${ROWS}` is a number; quote it ("${ROWS}") to keep text.
            tag = self.loader.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        try:
            return self.loader.construct_object(ScalarNode(tag, text, node.start_mark, node.end_mark, node.style))
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.fail(node.start_mark.line + 1, loc, f"cannot read this value: {problem}") from None

    def interpolate(self, node: ScalarNode, loc: Loc) -> str:
        value = str(node.value)
        if "$" not in value:
            return value

        def line_of(pos: int) -> int:
            first = node.start_mark.line + 1
            if node.style in ("|", ">"):
                return first + 1 + value.count("\n", 0, pos)
            return first

        def substitute(m: re.Match[str]) -> str:
            if m.group() == "$$":
                return "$"
            body = m.group("body")
            if body is None:
                raise self.fail(line_of(m.start()), loc, "unterminated '${'; write ${NAME}, or $$ for a literal '$'")
            var = _VARIABLE.fullmatch(body)
            if var is None:
                raise self.fail(
                    line_of(m.start()),
                    loc,
                    f"'${{{body}}}' is not a valid reference; write ${{NAME}} or ${{NAME:-default}}",
                )
            name, default = var.group("name"), var.group("default")
            found = self.env.get(name)
            if found:
                return found
            if default is not None:
                return default
            if found is not None:  # set but empty, and no default
                return found
            raise self.fail(
                line_of(m.start()),
                loc,
                f"environment variable {name} is not set (write ${{{name}:-default}} to give a default)",
            )

        return _INTERPOLATION.sub(substitute, value)


# -- validation -----------------------------------------------------------------------------

_SECTIONS: dict[str, type[BaseModel]] = {"model_source": ModelSource, "run": RunInfo}


def _section_for(loc: Loc) -> type[BaseModel] | None:
    if not loc:
        return Config
    if len(loc) == 1 and isinstance(loc[0], str):
        return _SECTIONS.get(loc[0])
    if len(loc) == 2 and loc[0] == "datasets" and isinstance(loc[1], int):
        return DatasetSpec
    return None


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{value} (a number; quote it to make it text)"
    if isinstance(value, date | datetime):
        return f"{value} (a date; quote it to make it text)"
    return f"{value!r}"


def _pydantic_message(err: Mapping[str, Any]) -> tuple[Loc, str]:
    loc: Loc = tuple(p for p in err["loc"] if p != "[key]")
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        section = _section_for(loc[:-1])
        known = list(section.model_fields) if section else []
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        message = "unknown key"
        if hint:
            message += f" (did you mean '{hint[0]}'?)"
        if known:
            message += f"; known keys here: {', '.join(known)}"
        return loc, message
    if kind == "missing":
        return loc, f"'{_dotted(loc)}' is required"
    if kind == "string_type":
        return loc, f"must be text, got {_type_name(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        example: dict[Loc, str] = {
            ("model_source",): " such as {mlflow_model: ./out/model}",
            ("run",): " such as {id: ..., link: ...}",
        }
        return loc, f"must be a mapping (key: value){example.get(loc, '')}, got {_type_name(value)}"
    if kind == "list_type":
        return loc, f"must be a list, got {_type_name(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return loc, f"must be a whole number, got {_type_name(value)}"
    if kind == "string_too_short":
        return loc, "must not be empty"
    if kind == "value_error":
        error = err.get("ctx", {}).get("error")
        return loc, str(error) if error is not None else str(err["msg"])
    if kind == "literal_error":
        return loc, f"{err['msg'][0].lower()}{err['msg'][1:]}, got {_type_name(value)}"
    message = str(err["msg"])
    return loc, message[:1].lower() + message[1:]


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Read and check a registration config; nothing is written.

    Relative paths resolve against the config's folder; ``${NAME}`` and ``${NAME:-default}``
    take values from ``env`` (default: the process environment). Every file the config names
    is opened: the metrics file and the data frames are parsed, datasets are hashed. Any
    problem raises ``InvalidInput`` naming the file, the line and the key.
    """
    given = Path(path)
    label = str(path)
    try:
        text = given.expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"config file {label} does not exist") from None
    except IsADirectoryError:
        raise InvalidInput(f"config file {label} is a folder, not a YAML file") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"config file {label} is not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read config file {label}: {exc.strerror}") from None
    reader = _Reader(label, os.environ if env is None else env)
    data = reader.read(text)
    file = given.expanduser().resolve()
    try:
        config = Config.model_validate(data, context={"base": file.parent})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc, message = _pydantic_message(first)
        line = next((reader.lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in reader.lines), 1)
        raise _located(InvalidInput, label, line, loc, message) from None
    config._file, config._label, config._lines = file, label, reader.lines
    _check(config)
    return config


def _check(config: Config) -> None:
    """The checks beyond the schema: names, the metrics file, frames, datasets, the card."""
    try:
        validate_model_name(config.model, "model")
    except InvalidInput as exc:
        raise config.error(("model",), exc.message) from None
    for i, alias in enumerate(config.aliases):
        try:
            validate_alias(alias, (), f"aliases[{i}]")
        except InvalidInput as exc:
            raise config.error(("aliases", i), exc.message) from None
    if config.parent is not None:
        try:
            parse_model_uri(config.parent)
        except InvalidInput:
            raise config.error(
                ("parent",),
                f"must be a models:/ URI such as models:/{config.model}@champion, got {config.parent!r}",
            ) from None
    for field in ("params", "tags"):
        for key, value in getattr(config, field).items():
            try:
                validate_key(key, f"{field} key")
                validate_value(value, f"{field}.{key}")
            except InvalidInput as exc:
                raise config.error((field, key), exc.message) from None
    if SOURCE_DIGEST_TAG in config.tags:
        raise config.error(("tags", SOURCE_DIGEST_TAG), "is set by Covex; choose another tag name")

    metrics: dict[str, float] = {}
    if config.metrics_file is not None:
        metrics = _read_metrics(config, config.metrics_file)
    for key, value in config.metrics.items():
        try:
            validate_key(key, "metrics key")
        except InvalidInput as exc:
            raise config.error(("metrics", key), exc.message) from None
        if key in metrics:
            raise config.error(("metrics", key), "is also in 'metrics_file'; give each metric once")
        metrics[key] = float(value)
    config._all_metrics = metrics

    if config.input_example is not None:
        if config.model_source.kind not in ("pickle", "joblib"):
            raise config.error(
                ("input_example",),
                "applies to pickle and joblib sources only (an MLflow model keeps its own example and signature)",
            )
        config._example_frame = _read_frame(config, ("input_example",), config.input_example).head(INPUT_EXAMPLE_ROWS)
    if config.reference_data is not None:
        config._reference_frame = _read_frame(config, ("reference_data",), config.reference_data)
    config._datasets = [_describe(config, i, spec) for i, spec in enumerate(config.datasets)]
    config._card = _check_card(config)


def _raw(config: Config, path: Path) -> str:
    """The path as written in the config, for messages."""
    try:
        return str(path.relative_to(config.file.parent))
    except ValueError:
        return str(path)


def _read_metrics(config: Config, path: Path) -> dict[str, float]:
    loc: Loc = ("metrics_file",)
    shown = _raw(config, path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise config.error(loc, f"cannot read {shown}: {exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        metrics = _metrics_from_json(config, shown, text)
    elif suffix == ".csv":
        metrics = _metrics_from_csv(config, shown, text)
    else:
        raise config.error(loc, f"{shown} must be a .json or .csv file")
    if not metrics:
        raise config.error(loc, f"{shown} holds no metrics")
    for key in metrics:
        try:
            validate_key(key, "metric name")
        except InvalidInput as exc:
            raise config.error(loc, f"{shown}: {exc.message}") from None
    return metrics


def _number(config: Config, shown: str, name: str, value: Any) -> float:
    loc: Loc = ("metrics_file",)
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise config.error(loc, f"{shown}: metric {name!r} is not a number (got {json.dumps(value)})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise config.error(loc, f"{shown}: metric {name!r} is not a number (got {value!r})") from None
    if not math.isfinite(number):
        raise config.error(loc, f"{shown}: metric {name!r} is not a finite number (got {value!r})")
    return number


def _metrics_from_json(config: Config, shown: str, text: str) -> dict[str, float]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise config.error(
            ("metrics_file",), f"{shown} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise config.error(("metrics_file",), f"{shown} must hold a JSON object of metric names to numbers")
    out: dict[str, float] = {}

    def walk(prefix: str, obj: dict[str, Any]) -> None:
        for key, value in obj.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(f"{name}.", value)
            else:
                out[name] = _number(config, shown, name, value)

    walk("", data)
    return out


def _metrics_from_csv(config: Config, shown: str, text: str) -> dict[str, float]:
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    rows = [[cell.strip() for cell in row] for row in rows]
    loc: Loc = ("metrics_file",)
    if not rows:
        raise config.error(loc, f"{shown} is empty")
    header = [cell.lower() for cell in rows[0]]
    if header in (["name", "value"], ["metric", "value"], ["key", "value"]):
        body = rows[1:]
    elif len(rows) == 2 and len(rows[0]) == len(rows[1]) and not _numeric(rows[0][0]):
        if len(rows[0]) == 2 and _numeric(rows[1][1]) and not _numeric(rows[1][0]):
            body = rows  # two name,value rows without a header
        else:
            return {name: _number(config, shown, name, value) for name, value in zip(rows[0], rows[1], strict=True)}
    else:
        body = rows
    out: dict[str, float] = {}
    for i, row in enumerate(body):
        if len(row) != 2:
            raise config.error(
                loc,
                f"{shown} must have name,value rows (or one header row of names and one row of values); "
                f"row {i + 1 + (len(rows) - len(body))} has {len(row)} cells",
            )
        if row[0] in out:
            raise config.error(loc, f"{shown}: metric {row[0]!r} appears twice")
        out[row[0]] = _number(config, shown, row[0], row[1])
    return out


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_frame(config: Config, loc: Loc, path: Path) -> Any:
    import pandas as pd

    shown = _raw(config, path)
    suffix = path.suffix.lower()
    if suffix not in FRAME_SUFFIXES:
        raise config.error(loc, f"{shown} must be a CSV or Parquet file (.csv, .parquet)")
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pandas and pyarrow raise many kinds
        raise config.error(loc, f"cannot read {shown}: {type(exc).__name__}: {exc}") from None
    if frame.empty:
        raise config.error(loc, f"{shown} has no rows")
    return frame


def _describe(config: Config, index: int, spec: DatasetSpec) -> dict[str, Any]:
    from covex.ml.lineage import describe_dataset

    raw: dict[str, Any] = {"name": spec.name, "role": spec.role}
    for key in ("uri", "digest", "rows"):
        if getattr(spec, key) is not None:
            raw[key] = getattr(spec, key)
    if spec.path is not None:
        raw["path"] = str(spec.path)
    try:
        return describe_dataset(raw, index)
    except InvalidInput as exc:
        raise config.error(("datasets", index), exc.message) from None
    except Exception as exc:  # noqa: BLE001 - pandas and pyarrow raise many kinds
        shown = _raw(config, spec.path) if spec.path else spec.name
        raise config.error(("datasets", index, "path"), f"cannot read {shown}: {type(exc).__name__}: {exc}") from None


def _check_card(config: Config) -> dict[str, Any]:
    if config.card is None:
        return {}
    for key, value in config.card.items():
        loc: Loc = ("card", key)
        if key not in CARD_FIELDS:
            hint = difflib.get_close_matches(key, list(CARD_FIELDS), n=1)
            did = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise config.error(loc, f"unknown card field{did}; known fields: {', '.join(CARD_FIELDS)}")
        if key == "owners":
            owners = [value] if isinstance(value, str) else value
            if not isinstance(owners, list) or not all(isinstance(o, str) for o in owners):
                raise config.error(loc, f"must be a list of names, got {_type_name(value)}")
        elif not isinstance(value, str):
            raise config.error(loc, f"must be text, got {_type_name(value)}")
    return validate_card(dict(config.card))


# -- the digest -----------------------------------------------------------------------------


def _file_digest(path: Path) -> str:
    from covex.artifacts import hash_file

    return hash_file(path)[0]


def _source_fingerprint(config: Config) -> dict[str, Any]:
    source = config.model_source
    kind = source.kind
    out: dict[str, Any] = {"kind": kind}
    if source.mlflow_model is not None:
        from covex.artifacts import scan
        from covex.artifacts.manifest import manifest_digest

        out["content"] = manifest_digest([f.entry for f in scan(source.mlflow_model)])
    elif source.pickle is not None or source.joblib is not None:
        file = source.pickle or source.joblib
        assert file is not None
        out.update(content=_file_digest(file), flavor=source.flavor, pip_requirements=source.pip_requirements)
        out["input_example"] = _file_digest(config.input_example) if config.input_example else None
    else:
        out.update(uri=source.mlflow_run, tracking_uri=source.tracking_uri)
    return out


def _config_digest(config: Config) -> str:
    datasets = []
    for spec, described in zip(config.datasets, config.described_datasets, strict=True):
        entry = {k: v for k, v in described.items() if k != "uri"}
        entry["uri"] = spec.uri or ""  # a local path's location is not part of the identity, its content is
        datasets.append(entry)
    payload = {
        "format": DIGEST_FORMAT,
        "source": _source_fingerprint(config),
        "description": config.description,
        "metrics": config.all_metrics,
        "params": config.params,
        "tags": config.tags,
        "datasets": datasets,
        "reference_data": _file_digest(config.reference_data) if config.reference_data else None,
        "card": config.card_fields,
        "parent": config.parent,
        # Not the run id and link: a retried pipeline step with the same outputs finds its earlier version.
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# -- registering ----------------------------------------------------------------------------


def find_registered(client: Client, config: Config) -> ModelVersion | None:
    """The READY version an earlier run of the same config and files registered, if any."""
    query = f"name = '{config.model}' AND status = 'READY' AND tags.`{SOURCE_DIGEST_TAG}` = '{config.digest()}'"
    page = client.search_versions(query, order_by=["version DESC"], max_results=1)
    return page.items[0] if page.items else None


def check_against_registry(client: Client, config: Config) -> str | None:
    """Checks that need the registry (stage names, the parent); returns the canonical stage."""
    stages = client.stages
    stage = None
    if config.stage is not None:
        by_lower = {s.lower(): s for s in stages}
        stage = by_lower.get(config.stage.lower())
        if stage is None:
            raise config.error(("stage",), f"{config.stage!r} is not a stage; stages are {', '.join(stages)}")
    for i, alias in enumerate(config.aliases):
        try:
            validate_alias(alias, stages, f"aliases[{i}]")
        except InvalidInput as exc:
            raise config.error(("aliases", i), exc.message) from None
    if config.parent is not None:
        try:
            client.get_version(config.parent)
        except NotFound as exc:
            raise config.error(("parent",), exc.message, NotFound) from None
    return stage


def _label_existing(client: Client, config: Config, version: ModelVersion, stage: str | None) -> ModelVersion:
    """Finish what an earlier run may have left undone, without undoing later changes.

    An alias is set only if the model has no such alias yet (someone may have moved it since);
    the stage only if the version is still in the first stage.
    """
    changed = False
    taken = client.get_model(config.model).aliases
    for alias in config.aliases:
        if alias not in taken:
            client.set_alias(config.model, alias, version.version)
            changed = True
    if stage is not None and version.stage == client.stages[0] and stage != version.stage:
        client.transition_stage(config.model, version.version, stage)
        changed = True
    return client.get_version(config.model, version.version) if changed else version


def _load_pickled(config: Config, path: Path, kind: str) -> Any:
    try:
        if kind == "joblib":
            import joblib  # type: ignore[import-untyped]

            return joblib.load(path)
        import pickle

        with path.open("rb") as f:
            # The user's own model file, named in their own config: loading it is the point.
            return pickle.load(f)
    except Exception as exc:  # noqa: BLE001 - unpickling can raise anything
        raise config.error(
            ("model_source", kind), f"cannot load {_raw(config, path)}: {type(exc).__name__}: {exc}"
        ) from None


def register_config(client: Client, config: Config) -> RegistrationResult:
    """Register a loaded config, or return the version an earlier run of it registered."""
    from covex.ml.registering import log_model, register_model

    if not client.settings.is_remote:
        client.init()  # registering writes: like any first write, it creates a registry that is not there yet
    stage = check_against_registry(client, config)
    digest = config.digest()
    existing = find_registered(client, config)
    if existing is not None:
        return RegistrationResult(
            version=_label_existing(client, config, existing, stage), created=False, digest=digest
        )
    kwargs: dict[str, Any] = {
        "description": config.description,
        "tags": {**config.tags, SOURCE_DIGEST_TAG: digest},
        "metrics": config.all_metrics,
        "params": config.params,
        "datasets": config.described_datasets,
        "reference_data": config.reference_frame,
        "card": config.card_fields or None,
        "parent": config.parent,
        "code_path": config.code_path or config.file.parent,
        "aliases": list(config.aliases),
        "stage": stage,
    }
    if config.run.id:
        kwargs["run_id"] = config.run.id
    if config.run.link:
        kwargs["run_link"] = config.run.link
    source = config.model_source
    kind = source.kind
    try:
        if source.mlflow_model is not None:
            version = register_model(client, source.mlflow_model, config.model, **kwargs)
        elif source.mlflow_run is not None:
            if not (source.tracking_uri or "").startswith(("http://", "https://")):
                kwargs.setdefault("run_link", "")  # a link into the MLflow UI exists only on a tracking server
            version = register_model(
                client, source.mlflow_run, config.model, tracking_uri=source.tracking_uri, **kwargs
            )
        else:
            file = source.pickle or source.joblib
            assert file is not None
            model = _load_pickled(config, file, kind)
            version = log_model(
                client,
                model,
                config.model,
                input_example=config.example_frame,
                flavor=source.flavor,
                pip_requirements=source.pip_requirements,
                source=file.as_uri(),
                **kwargs,
            )
    except InvalidInput as exc:
        if exc.message.startswith(config._label):
            raise
        loc: Loc = ("input_example",) if exc.message.startswith("'input_example'") else ("model_source", kind)
        raise config.error(loc, exc.message) from None
    return RegistrationResult(version=version, created=True, digest=digest)


def run_config(
    client: Client, path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> RegistrationResult:
    """Validate the config at ``path`` (nothing is written if it is wrong), then register it once.

    The same config with the same files returns the version registered before
    (``created=False``) instead of creating a duplicate.
    """
    return register_config(client, load_config(path, env=env))
