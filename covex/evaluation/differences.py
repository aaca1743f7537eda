"""How two versions differ besides their numbers: parameters, signature, training data and lineage."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from covex.domain.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from covex.batch.model import ScoringModel
    from covex.client import Client
    from covex.domain.entities import ModelVersion


def check_signatures(models: Sequence[ScoringModel]) -> None:
    """Refuse versions whose signatures give one input column two different types: they do not take
    the same rows, so scoring them side by side compares nothing."""
    seen: dict[str, tuple[str, str]] = {}
    for m in models:
        for column, kind in m.input_types.items():
            if column in seen and seen[column][0] != kind:
                other_kind, other = seen[column]
                raise InvalidInput(
                    f"{m.version.uri} and {other} take input column {column!r} as {kind} and {other_kind}: "
                    "versions compared on the same rows need compatible signatures"
                )
            seen.setdefault(column, (kind, m.version.uri))


def _changed(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    keys = sorted(set(old) | set(new))
    return {k: {"baseline": old.get(k), "this": new.get(k)} for k in keys if old.get(k) != new.get(k)}


def _lineage(client: Client, uri: str) -> dict[str, Any]:
    try:
        return client.get_lineage(uri)
    except NotFound:
        return {}


def _datasets(lineage: dict[str, Any]) -> dict[str, Any]:
    return {str(d.get("name")): d.get("digest") for d in lineage.get("datasets") or [] if isinstance(d, dict)}


def _commit(lineage: dict[str, Any]) -> Any:
    git = lineage.get("git")
    return git.get("commit") if isinstance(git, dict) else None


def input_types(client: Client, version: ModelVersion) -> dict[str, str]:
    """The signature's input column types by name, from the version's signature document."""
    try:
        signature = client.get_document(version.uri, "signature")
    except NotFound:
        return {}
    inputs = signature.get("inputs") or []
    if isinstance(inputs, str):  # MLflow keeps the columns as JSON text
        try:
            inputs = json.loads(inputs)
        except ValueError:
            return {}
    if not isinstance(inputs, list):
        return {}
    return {str(c.get("name")): str(c.get("type")) for c in inputs if isinstance(c, dict) and c.get("name")}


def between(client: Client, this: ModelVersion, base: ModelVersion) -> dict[str, Any]:
    """What differs from the baseline: params, signature columns and types, datasets, and lineage."""
    if this.name == base.name and this.version == base.version:
        return {}
    old, new = _lineage(client, base.uri), _lineage(client, this.uri)
    lineage = _changed(
        {"parent": old.get("parent"), "run_id": old.get("run_id"), "git_commit": _commit(old)},
        {"parent": new.get("parent"), "run_id": new.get("run_id"), "git_commit": _commit(new)},
    )
    return {
        "model": _changed(
            {"source": base.source, "flavors": old.get("flavors")},
            {"source": this.source, "flavors": new.get("flavors")},
        ),
        "params": _changed(dict(base.params), dict(this.params)),
        "signature": _changed(input_types(client, base), input_types(client, this)),
        "datasets": _changed(_datasets(old), _datasets(new)),
        "lineage": lineage,
    }
