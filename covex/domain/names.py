"""Validation of the names users choose: models, aliases, tags, metrics, file paths."""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence

from covex.domain.errors import InvalidInput
from covex.domain.uris import MAX_ID, ModelRef

MAX_NAME_LENGTH = 256
MAX_KEY_LENGTH = 250
MAX_VALUE_LENGTH = 5000
# Free text: descriptions, comments, card fields. Locations: source URIs and run links.
MAX_TEXT_LENGTH = 20_000
MAX_URI_LENGTH = 2048
MAX_PATH_LENGTH = 1024  # a file's path inside a version
MAX_COMMENT_LENGTH = 10_000
MAX_ENTRIES = 1000  # tags, metrics or params in one request
# What the database stores: a signed 64-bit integer (version numbers, ids, sizes).
MAX_INT64 = 2**63 - 1

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"
MODEL_NAME_PATTERN = rf"{_SEGMENT}(/{_SEGMENT})?"
ALIAS_PATTERN = r"[A-Za-z_][A-Za-z0-9_\-]*"
KEY_PATTERN = r"[\w.\-/ :]+"
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"[A-Za-z]:")


def validate_model_name(name: object, field: str = "name") -> str:
    """Return ``name`` if it is a legal model name, else raise ``InvalidInput``.

    Letters, digits, ``_ . -``, optionally one ``/`` separating a namespace; each
    part starts with a letter or digit; at most 256 characters; no ``..``.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"'{field}' must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"'{field}' is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    if _CONTROL.search(name):
        raise InvalidInput(f"'{field}' must not contain control characters")
    if ".." in name:
        raise InvalidInput(f"'{field}' must not contain '..'")
    if name.count("/") > 1:
        raise InvalidInput(f"'{field}' may contain at most one '/' (namespace/name), got {name!r}")
    if not _MODEL_NAME.fullmatch(name):
        raise InvalidInput(
            f"'{field}' {name!r} is not a valid model name: use letters, digits, '_', '.', '-' "
            "and at most one '/', each part starting with a letter or digit"
        )
    return name


RESERVED_ALIASES = frozenset({"latest"})


def validate_stage(name: object, stages: Sequence[str], field: str = "stage") -> str:
    """The configured stage called ``name`` (case-insensitive), or ``InvalidInput``."""
    if isinstance(name, str):
        for stage in stages:
            if stage.lower() == name.lower():
                return stage
    raise InvalidInput(f"'{field}' {name!r} is not a stage; stages are {', '.join(stages)}")


def validate_alias(alias: object, stages: Iterable[str] = (), field: str = "alias") -> str:
    """Return ``alias`` if legal: not a number, not a stage name, not ``latest``."""
    if not isinstance(alias, str) or not alias:
        raise InvalidInput(f"'{field}' must be a non-empty string")
    if len(alias) > MAX_KEY_LENGTH:
        raise InvalidInput(f"'{field}' is longer than {MAX_KEY_LENGTH} characters")
    if alias.isdigit() or re.fullmatch(r"v\d+", alias, flags=re.IGNORECASE):
        raise InvalidInput(f"'{field}' {alias!r} looks like a version number; aliases must not")
    if alias.lower() in RESERVED_ALIASES:
        raise InvalidInput(f"'{field}' {alias!r} is reserved")
    if alias.lower() in {s.lower() for s in stages}:
        raise InvalidInput(f"'{field}' {alias!r} is a stage name; aliases must differ from stages")
    if not _ALIAS.fullmatch(alias):
        raise InvalidInput(
            f"'{field}' {alias!r} is not valid: start with a letter or '_', then letters, digits, '_' or '-'"
        )
    return alias


def check_encodable(value: str, field: str) -> str:
    """Refuse NUL and lone surrogates: no database stores them, and they must fail alike on all."""
    if "\x00" in value:
        raise InvalidInput(f"'{field}' must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"'{field}' is not valid Unicode text (it holds a lone surrogate)") from None
    return value


def validate_text(value: object, field: str, limit: int = MAX_TEXT_LENGTH, *, required: bool = False) -> str:
    """Return free text (``None`` reads as empty) of at most ``limit`` characters, else ``InvalidInput``."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"'{field}' must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidInput(f"'{field}' is {len(value)} characters long; the limit is {limit}")
    if required and not value.strip():
        raise InvalidInput(f"'{field}' must not be empty")
    return check_encodable(value, field)


_KEY_CHARS = re.compile(KEY_PATTERN)


def validate_key(key: object, field: str) -> str:
    """Validate a tag, metric or param name.

    Letters, digits, ``_ - . / : `` and spaces. A key may look like a path
    (``mlflow.source/git``), so it must read the same once normalised as a path:
    no ``.`` or ``..`` parts, no leading, trailing or doubled ``/``.
    """
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput(f"'{field}' must be a non-empty string")
    if key != key.strip():
        raise InvalidInput(f"'{field}' {key!r} must not start or end with a space")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"'{field}' {key[:40]!r}... is longer than {MAX_KEY_LENGTH} characters")
    if _CONTROL.search(key):
        raise InvalidInput(f"'{field}' {key!r} must not contain control characters")
    if not _KEY_CHARS.fullmatch(key):
        raise InvalidInput(f"'{field}' {key!r} may hold only letters, digits, '_', '-', '.', '/', ':' and spaces")
    if posixpath.normpath(key) != key or key.startswith(("/", "../")) or key in (".", ".."):
        raise InvalidInput(f"'{field}' {key!r} must not hold '.' or '..' parts or stray '/'")
    return key


def validate_value(value: object, field: str) -> str:
    """Validate a tag or param value (a string of bounded length)."""
    if not isinstance(value, str):
        raise InvalidInput(f"'{field}' must be a string, got {type(value).__name__}")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidInput(f"'{field}' is longer than {MAX_VALUE_LENGTH} characters")
    return check_encodable(value, field)


def validate_metric(value: object, field: str) -> float:
    """Validate a metric value: a finite number (JSON carries no NaN or infinity), not a bool."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"'{field}' must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidInput(f"'{field}' is too large for a 64-bit float") from None
    if not math.isfinite(number):
        raise InvalidInput(f"'{field}' must be a finite number, got {number}")
    return number


def validate_artifact_path(path: object, field: str = "path") -> str:
    """Return a normalised relative POSIX path, rejecting absolute paths and ``..``."""
    if not isinstance(path, str) or not path:
        raise InvalidInput(f"'{field}' must be a non-empty relative path")
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidInput(f"'{field}' is {len(path)} characters long; the limit is {MAX_PATH_LENGTH}")
    if _CONTROL.search(path):
        raise InvalidInput(f"'{field}' {path!r} must not contain control characters")
    if "\\" in path:
        raise InvalidInput(f"'{field}' {path!r} must use '/' as separator")
    if path.startswith("/") or _DRIVE.match(path):
        raise InvalidInput(f"'{field}' {path!r} must be relative, not absolute")
    if ".." in path.split("/"):
        raise InvalidInput(f"'{field}' {path!r} must not contain '..'")
    normal = posixpath.normpath(path)
    if normal in (".", "") or normal.startswith("../"):
        raise InvalidInput(f"'{field}' {path!r} does not name a file")
    return check_encodable(normal, field)


def validate_tags(tags: Mapping[str, str] | None, field: str) -> dict[str, str]:
    """Validate a mapping of names to strings (tags, params)."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidInput(f"'{field}' must be a mapping of names to strings")
    _check_count(tags, field)
    return {validate_key(k, f"{field} key"): validate_value(v, f"{field}.{k}") for k, v in tags.items()}


def validate_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    """Validate a mapping of metric names to numbers."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidInput("'metrics' must be a mapping of names to numbers")
    _check_count(metrics, "metrics")
    return {validate_key(k, "metrics key"): validate_metric(v, f"metrics.{k}") for k, v in metrics.items()}


def validate_id(value: object, field: str) -> int:
    """An id or version number: an integer from 1 to ``MAX_ID`` (what every database stores alike)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"'{field}' must be an integer, got {value!r}")
    if not 1 <= value <= MAX_ID:
        raise InvalidInput(f"'{field}' must be an integer from 1 to {MAX_ID}, got {value}")
    return value


def validate_ref(ref: ModelRef, stages: Sequence[str]) -> ModelRef:
    """Check every part of a reference to a version before it is looked up (the same on every backend)."""
    validate_model_name(ref.name)
    if ref.kind == "alias":
        validate_alias(ref.value, stages)
    elif ref.kind == "stage":
        validate_stage(ref.value, stages)
    elif ref.kind == "version":
        validate_id(ref.version, "version")
    return ref


def validate_target(kind: object, target: object, stages: Sequence[str]) -> tuple[str, str]:
    """What a policy protects: ``("stage", <configured stage>)`` or ``("alias", <valid alias>)``."""
    if kind == "stage":
        return "stage", validate_stage(target, stages)
    if kind == "alias":
        return "alias", validate_alias(target, stages)
    raise InvalidInput(f"'kind' must be 'stage' or 'alias', got {kind!r}")


def _check_count(entries: Mapping[str, object], field: str) -> None:
    if len(entries) > MAX_ENTRIES:
        raise InvalidInput(f"'{field}' holds {len(entries)} entries; the limit is {MAX_ENTRIES} per request")
