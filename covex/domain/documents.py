"""A version's JSON documents (lineage, signature, profile, card): checked once, when they are written.

What is stored is read back by every client that shows the version, so a document must be
JSON any reader can render: bounded in size and depth, text a database stores (no NUL, no
lone surrogates), and, for the documents Covex renders itself, the shape it renders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from covex.domain.cards import validate_card
from covex.domain.entities import DOCUMENT_KINDS
from covex.domain.errors import InvalidInput
from covex.domain.monitoring import check_reference
from covex.domain.names import check_encodable

MAX_DOCUMENT_LENGTH = 1024 * 1024  # as JSON text
MAX_DEPTH = 32  # objects and lists inside one another


def check_kind(kind: object) -> str:
    if kind not in DOCUMENT_KINDS:
        raise InvalidInput(f"'kind' must be one of {', '.join(DOCUMENT_KINDS)}, got {kind!r}")
    return str(kind)


def check_json(value: Any, field: str, depth: int = 0) -> None:
    """JSON that every database stores and every reader renders: bounded depth, storable text."""
    if depth > MAX_DEPTH:
        raise InvalidInput(f"'{field}' nests objects and lists more than {MAX_DEPTH} deep")
    if isinstance(value, str):
        check_encodable(value, field)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"'{field}' has a key that is not text: {key!r}")
            check_encodable(key, f"{field} key")
            check_json(item, f"{field}.{key}", depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(item, f"{field}[{i}]", depth + 1)


def validate_documents(documents: Mapping[str, Any] | None) -> dict[str, str]:
    """Check documents by kind and serialise each to JSON text."""
    if documents is not None and not isinstance(documents, Mapping):
        raise InvalidInput("'documents' must be a mapping of kind to JSON object")
    out: dict[str, str] = {}
    for kind, body in (documents or {}).items():
        check_kind(kind)
        field = f"documents.{kind}"
        if kind == "card":
            body = validate_card(body)
        if not isinstance(body, dict):
            raise InvalidInput(f"'{field}' must be a JSON object")
        check_json(body, field)
        if kind == "lineage":
            _check_lineage(body, field)
        elif kind == "signature":
            _check_signature(body, field)
        elif kind == "reference":
            check_reference(body)
        try:
            text = json.dumps(body, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"'{field}' is not valid JSON: {exc}") from None
        if len(text) > MAX_DOCUMENT_LENGTH:
            raise InvalidInput(f"'{field}' is {len(text)} characters as JSON; the limit is {MAX_DOCUMENT_LENGTH}")
        out[kind] = text
    return out


def _check_lineage(lineage: dict[str, Any], field: str) -> None:
    """The shape ``covex versions show`` and the model card render (other keys are kept as they are)."""
    _optional(lineage, "git", dict, field)
    git = lineage.get("git") or {}
    for key in ("commit", "branch", "remote"):
        _optional(git, key, str, f"{field}.git")
    _optional(git, "dirty", bool, f"{field}.git")
    for key in ("parent", "run_id", "run_link"):
        _optional(lineage, key, str, field)
    _list_of(lineage, "flavors", str, field)
    _optional(lineage, "environment", dict, field)
    _optional(lineage.get("environment") or {}, "python", str, f"{field}.environment")
    _list_of(lineage, "datasets", dict, field)
    for i, dataset in enumerate(lineage.get("datasets") or []):
        where = f"{field}.datasets[{i}]"
        if not isinstance(dataset.get("name"), str):
            raise InvalidInput(f"'{where}.name' must be text")
        for key in ("uri", "role", "digest"):
            _optional(dataset, key, str, where)
        _optional(dataset, "rows", int, where)


def _check_signature(signature: dict[str, Any], field: str) -> None:
    for part in ("inputs", "outputs"):
        columns = signature.get(part)
        if isinstance(columns, str):  # MLflow keeps these as JSON text
            try:
                columns = json.loads(columns)
            except ValueError:
                raise InvalidInput(f"'{field}.{part}' is text that is not JSON") from None
        if columns is not None and not (isinstance(columns, list) and all(isinstance(c, dict) for c in columns)):
            raise InvalidInput(f"'{field}.{part}' must be a list of column objects")


def _optional(body: Mapping[str, Any], key: str, kind: type, field: str) -> None:
    value = body.get(key)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise InvalidInput(f"'{field}.{key}' must be {_names[kind]}, got {type(value).__name__}")


def _list_of(body: Mapping[str, Any], key: str, kind: type, field: str) -> None:
    value = body.get(key)
    if value is not None and not (isinstance(value, list) and all(isinstance(v, kind) for v in value)):
        raise InvalidInput(f"'{field}.{key}' must be a list of {_plurals[kind]}")


_names: dict[type, str] = {str: "text", bool: "true or false", int: "an integer", dict: "an object"}
_plurals: dict[type, str] = {str: "texts", dict: "objects"}
