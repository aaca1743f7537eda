"""MLflow's tracking records as Covex holds them: experiments, runs, logged models and their artifacts.

Pure values and checks (no I/O). Names, keys and lengths follow MLflow's own limits, so a script that
works against an MLflow server works against Covex, and one MLflow would refuse is refused here too.
"""

from __future__ import annotations

import math
import posixpath
import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel

from covex.domain.entities import FileEntry
from covex.domain.errors import InvalidInput
from covex.domain.filters import MAX_FILTER_LENGTH

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_EXPERIMENT_NAME = 500
MAX_NAME = 250
MAX_PATH = 1024
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_RESULTS = 50_000
DEFAULT_EXPERIMENT = "0"
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
MODEL_STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
ARTIFACTS_SCHEME = "mlflow-artifacts:"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
REGISTRY_PREFIX = "registry/"
Lifecycle = Literal["active", "deleted"]


class Experiment(BaseModel, frozen=True):
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: Lifecycle
    creation_time: int
    last_update_time: int
    created_by: str
    tags: dict[str, str] = {}


class Metric(BaseModel, frozen=True):
    key: str
    value: float
    timestamp: int
    step: int
    run_id: str = ""
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


class RunInfo(BaseModel, frozen=True):
    run_id: str
    run_name: str
    experiment_id: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: Lifecycle


class Run(BaseModel, frozen=True):
    info: RunInfo
    metrics: list[Metric] = []  # the latest value per key
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    dataset_inputs: list[dict[str, object]] = []
    model_inputs: list[str] = []
    model_outputs: list[tuple[str, int]] = []  # (model id, step)


class LoggedModel(BaseModel, frozen=True):
    model_id: str
    experiment_id: str
    name: str
    artifact_uri: str
    status: str
    status_message: str
    model_type: str
    source_run_id: str
    creation_timestamp_ms: int
    last_updated_timestamp_ms: int
    created_by: str
    lifecycle_stage: Lifecycle
    tags: dict[str, str] = {}
    params: dict[str, str] = {}
    metrics: list[Metric] = []


class ArtifactFile(BaseModel, frozen=True):
    """One entry of an artifact listing: a file (with its size) or a folder, named relative to the listed one."""

    path: str
    is_dir: bool
    file_size: int | None = None


class StoredModel(BaseModel, frozen=True):
    files: list[FileEntry]  # paths relative to the model folder (the one holding MLmodel)
    run_id: str = ""  # the run that produced it ("" if none)
    model_id: str | None = None  # the logged model, if any
    metrics: dict[str, float] = {}  # the run's latest value per key, then the logged model's
    params: dict[str, str] = {}  # the run's params, then the logged model's


# -- ids, names, keys -------------------------------------------------------------------


def new_run_id() -> str:
    return uuid.uuid4().hex


def new_model_id() -> str:
    return f"m-{uuid.uuid4().hex}"


def is_run_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def is_model_id(text: str) -> bool:
    return text.startswith("m-") and is_run_id(text[2:])


def check_experiment_id(value: str) -> int:
    """An experiment id (a decimal number as text) as the number it is; NotFound-worthy ids are the caller's job."""
    if not isinstance(value, str) or not value.isdigit() or len(value) > 10:
        raise InvalidInput(f"Invalid value {value!r} for parameter 'experiment_id': it must be a number.")
    return int(value)


def check_experiment_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("Invalid experiment name: it must be a non-empty string.")
    if len(name) > MAX_EXPERIMENT_NAME:
        raise InvalidInput(f"Experiment name exceeds the maximum length of {MAX_EXPERIMENT_NAME} characters.")
    return name


def check_name(name: str, what: str) -> str:
    if len(name) > MAX_NAME:
        raise InvalidInput(f"{what} exceeds the maximum length of {MAX_NAME} characters.")
    return name


def check_key(key: str, what: str = "key") -> str:
    """A param, metric or tag key as MLflow allows it: ≤ 250 characters, no ``..`` part, not absolute."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"Invalid value for parameter '{what}': a key must be a non-empty string.")
    if len(key) > MAX_KEY:
        raise InvalidInput(f"'{key[:40]}...' exceeds the maximum length of {MAX_KEY} characters for a {what}.")
    if "\x00" in key or key.startswith("/") or ".." in key.split("/"):
        raise InvalidInput(f"Invalid {what} name {key!r}: it may not hold '..', a leading '/' or NUL.")
    return key


def check_value(value: str, key: str, limit: int, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"Invalid value for {what} {key!r}: it must be a string.")
    if len(value) > limit:
        raise InvalidInput(f"{what.capitalize()} {key!r} has a value of {len(value)} characters; at most {limit}.")
    return value


def metric_value(value: object, key: str) -> float:
    """A metric's value: a number, or one of protobuf's JSON spellings of NaN and the infinities."""
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"Invalid value {value!r} for metric {key!r}: it must be a number.")
    return float(value)


def json_number(value: float) -> float | str:
    """A float as protobuf's JSON writes it: NaN and the infinities as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def check_status(status: str, allowed: tuple[str, ...], what: str) -> str:
    if status not in allowed:
        raise InvalidInput(f"Invalid value {status!r} for {what}: it must be one of {', '.join(allowed)}.")
    return status


# -- artifact paths ----------------------------------------------------------------------


def check_path(path: str, *, allow_empty: bool = True) -> str:
    """An artifact path relative to the artifact store's root: no ``..``, not absolute, no NUL or ``\\``."""
    if not isinstance(path, str):
        raise InvalidInput("Invalid path: it must be a string.")
    if "\x00" in path or "\\" in path or "#" in path or path.startswith("/") or len(path) > MAX_PATH:
        raise InvalidInput(f"Invalid path {path[:80]!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts or (len(path) >= 2 and path[1] == ":"):
        raise InvalidInput(f"Invalid path {path[:80]!r}")
    if not parts and not allow_empty:
        raise InvalidInput("Invalid path: it names no file.")
    return "/".join(parts)


def run_root(experiment_id: str, run_id: str) -> str:
    return f"{experiment_id}/{run_id}/artifacts"


def model_root(experiment_id: str, model_id: str) -> str:
    return f"{experiment_id}/models/{model_id}/artifacts"


def split_root(path: str) -> tuple[str, str, str] | None:
    """``(kind, owner id, path inside the root)`` of a path under a run's or logged model's artifact root.

    ``kind`` is ``"run"`` or ``"model"``; None when the path is not inside such a root.
    """
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts" and is_model_id(parts[2]):
        return "model", parts[2], "/".join(parts[4:])
    if len(parts) >= 3 and parts[2] == "artifacts" and is_run_id(parts[1]):
        return "run", parts[1], "/".join(parts[3:])
    return None


def artifact_path_of(source: str) -> str | None:
    """The artifact store path an ``mlflow-artifacts:/`` or ``http(s)://.../mlflow-artifacts/artifacts/`` URI names."""
    if source.startswith(ARTIFACTS_SCHEME):
        rest = source[len(ARTIFACTS_SCHEME) :]
        if rest.startswith("//"):  # mlflow-artifacts://host:port/path
            rest = rest[2:].partition("/")[2]
        return check_path(rest.lstrip("/"))
    if source.startswith(("http://", "https://")):
        _, found, rest = source.partition(ARTIFACTS_API)
        if not found or (rest and not rest.startswith("/")):
            return None
        return check_path(rest.split("?", 1)[0].lstrip("/"))
    return None


def model_folder(paths: list[str], folder: str) -> str:
    """``folder`` when it holds an ``MLmodel`` file directly; otherwise InvalidInput."""
    marker = posixpath.join(folder, "MLmodel") if folder else "MLmodel"
    if marker not in paths:
        raise InvalidInput(f"no MLmodel file in {folder or 'the artifact root'!r}: it is not an MLflow model")
    return folder


# -- search ------------------------------------------------------------------------------
# The basic part of MLflow's search syntax: clauses joined by AND, each ``<kind>.<key> <op> <value>``.

_CLAUSE = re.compile(
    r"""\s*(?:(?P<kind>attributes?|params?|tags?|metrics?|run|datasets?)\.)?(?P<key>`[^`]+`|"[^"]+"|[\w.\-]+)\s*"""
    r"""(?P<op>!=|>=|<=|=|<|>|\bLIKE\b|\bILIKE\b)\s*(?P<value>'[^']*'|"[^"]*"|-?[\d.eE+\-]+)\s*$""",
    re.IGNORECASE,
)
_KIND = {"attribute": "attributes", "run": "attributes", "param": "params", "tag": "tags", "metric": "metrics"}


class Clause(BaseModel, frozen=True):
    kind: str  # attributes, params, tags or metrics
    key: str
    op: str
    value: str | float


def parse_filter(text: str | None) -> list[Clause]:
    """``text`` as clauses, or InvalidInput naming what is not understood (cut short: a filter may be long)."""
    if not text or not text.strip():
        return []
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidInput(f"Invalid filter: it is {len(text)} characters long; the limit is {MAX_FILTER_LENGTH}")
    shown = _shown(text)
    clauses = []
    # ``and`` between whitespace, found by lookarounds: ``\s+and\s+`` retried every run of spaces (quadratic).
    for part in re.split(r"(?<=\s)and(?=\s)", text.strip(), flags=re.IGNORECASE):
        found = _CLAUSE.match(part)
        if found is None:
            raise InvalidInput(f"Invalid filter {shown}: could not parse {_shown(part.strip())}")
        kind = (found["kind"] or "attributes").lower()
        kind = _KIND.get(kind, kind)
        raw = found["value"]
        value: str | float = raw[1:-1] if raw[0] in "'\"" else _number(raw, shown)
        if kind == "metrics" and isinstance(value, str):
            raise InvalidInput(f"Invalid filter {shown}: a metric compares with a number")
        clauses.append(Clause(kind=kind, key=found["key"].strip('`"'), op=found["op"].upper(), value=value))
    return clauses


def _shown(text: str, limit: int = 60) -> str:
    """``text`` quoted for an error message, cut to about ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def _number(raw: str, shown: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"Invalid filter {shown}: {_shown(raw)} is not a number") from None


def matches(clauses: list[Clause], fields: dict[str, dict[str, Any]]) -> bool:
    """Whether one record (its ``attributes``, ``params``, ``tags`` and ``metrics``) meets every clause."""
    for clause in clauses:
        have = fields.get(clause.kind, {}).get(clause.key)
        if have is None or not _holds(have, clause.op, clause.value):
            return False
    return True


def _holds(have: Any, op: str, want: str | float) -> bool:
    if op in ("LIKE", "ILIKE"):
        return like(str(have), str(want), fold=op == "ILIKE")
    if isinstance(want, float):
        try:
            have = float(have)
        except (TypeError, ValueError):
            return False
    else:
        have = str(have)
    if op == "=":
        return bool(have == want)
    if op == "!=":
        return bool(have != want)
    if isinstance(want, str):
        raise InvalidInput(f"Invalid filter: {op!r} compares numbers only")
    return bool({"<": have < want, ">": have > want, "<=": have <= want, ">=": have >= want}[op])


# -- LIKE without a backtracking regex ---------------------------------------------------
# ``%`` as ``.*`` in a regex backtracks: ``'%%%%%b'`` against 250 characters took seconds. Here a
# pattern is its ``%``-free segments: the first fits at the start, the last at the end, the others
# leftmost-first in order between them (taking each middle segment as early as it fits never loses a
# match when ``%`` is the only wildcard of variable length). ``_`` is any one character; there is no
# escape character (as before: ``\\`` is a plain character), and both wildcards match a newline.


def like(value: str, pattern: str, *, fold: bool = False) -> bool:
    """Whether ``value`` matches SQL LIKE ``pattern`` (``fold``: ILIKE, both casefolded); linear in the value."""
    if fold:
        value, pattern = _fold(value), _fold(pattern)
    first, *middle = pattern.split("%")
    if not middle:
        return len(value) == len(first) and _fits(value, 0, first)
    last = middle.pop()
    end = len(value) - len(last)
    if end < len(first) or not _fits(value, 0, first) or not _fits(value, end, last):
        return False
    at = len(first)
    for segment in middle:
        found = _find(value, segment, at, end)
        if found < 0:
            return False
        at = found + len(segment)
    return True


def _fold(text: str) -> str:
    """``text`` casefolded one character for one, as SQL's ILIKE and a case-blind regex compare.

    ``str.casefold`` turns ``ß`` into ``ss`` and ``ﬁ`` into ``fi``: ``_`` then no longer matched the one
    character and ``'SS' ILIKE 'ß'`` held. A character whose fold is longer keeps its lower case, or itself.
    """
    folded = text.casefold()
    if len(folded) == len(text):  # every character folded to one (none folds to none)
        return folded
    return "".join(_fold_char(c) for c in text)


def _fold_char(c: str) -> str:
    for candidate in (c.casefold(), c.lower()):
        if len(candidate) == 1:
            return candidate
    return c


def _fits(value: str, at: int, segment: str) -> bool:
    """Whether ``segment`` (``_`` any one character) matches ``value`` from ``at`` on (``value`` long enough)."""
    if "_" not in segment:
        return value.startswith(segment, at)
    return all(c == "_" or c == value[at + i] for i, c in enumerate(segment))


def _find(value: str, segment: str, start: int, end: int) -> int:
    """The leftmost place of ``segment`` in ``value[start:end]``, or -1.

    A segment holding ``_`` is found by one pass over the value (shift-and: bit i of ``state`` says
    the last i + 1 characters read match the segment's first i + 1), so its cost is the value's
    length times the segment's in machine words, whatever the characters.
    """
    if "_" not in segment:
        return value.find(segment, start, end)
    if not segment.strip("_"):  # only ``_``: any place with room
        return start if end - start >= len(segment) else -1
    anything = sum(1 << i for i, c in enumerate(segment) if c == "_")
    masks: dict[str, int] = {}
    for i, c in enumerate(segment):
        if c != "_":
            masks[c] = masks.get(c, anything) | 1 << i
    done, state = 1 << (len(segment) - 1), 0
    for j in range(start, end):
        state = ((state << 1) | 1) & masks.get(value[j], anything)
        if state & done:
            return j - len(segment) + 1
    return -1
