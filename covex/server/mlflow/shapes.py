"""Covex's models and versions in MLflow's JSON shapes, and MLflow's stages as Covex's.

MLflow has four fixed stages; Covex has a configured list. ``StageMap`` translates both ways with the
mapping in ``COVEX_MLFLOW_STAGES`` (default ``None``, ``Staging`` ↔ ``Test``, ``Production``,
``Archived``); a Covex stage without an MLflow name (``Dev``) is shown as itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from covex.domain.entities import Model, ModelVersion
from covex.domain.errors import InvalidInput

_STATUS = {"READY": "READY", "PENDING": "PENDING_REGISTRATION", "FAILED": "FAILED_REGISTRATION"}


class StageMap:
    """MLflow stage names ↔ Covex stage names."""

    def __init__(self, mapping: Mapping[str, str], stages: Sequence[str]) -> None:
        by_lower = {s.lower(): s for s in stages}
        unknown = [v for v in mapping.values() if v.lower() not in by_lower]
        if unknown:
            raise ValueError(
                f"COVEX_MLFLOW_STAGES maps to {', '.join(map(repr, unknown))}, which are not stages "
                f"({', '.join(stages)})"
            )
        self._to_covex = {k.lower(): by_lower[v.lower()] for k, v in mapping.items()}
        self._to_mlflow: dict[str, str] = {}
        for mlflow_name, covex_name in mapping.items():
            self._to_mlflow.setdefault(by_lower[covex_name.lower()], mlflow_name)
        self._stages = by_lower

    def covex(self, stage: str) -> str:
        """The Covex stage an MLflow stage name (or a Covex stage's own name) means, case-insensitively."""
        found = self._to_covex.get(stage.lower()) or self._stages.get(stage.lower())
        if found is None:
            known = sorted({*self._to_mlflow.values(), *self._stages.values()})
            raise InvalidInput(f"Invalid Model Version stage: {stage}. Value must be one of {', '.join(known)}.")
        return found

    def mlflow(self, stage: str) -> str:
        return self._to_mlflow.get(stage, stage)


def pairs(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """Tags, params and the like as MLflow lists them: ``[{"key": ..., "value": ...}]``."""
    return [{"key": k, "value": v} for k, v in tags.items()]


def model_version(v: ModelVersion, stages: StageMap) -> dict[str, Any]:
    """MLflow's ``ModelVersion``: the version number as a string, the stage by its MLflow name."""
    shape: dict[str, Any] = {
        "name": v.name,
        "version": str(v.version),
        "creation_timestamp": v.creation_timestamp,
        "last_updated_timestamp": v.last_updated_timestamp,
        "user_id": v.created_by,
        "current_stage": stages.mlflow(v.stage),
        "source": v.source or v.uri,
        "status": _STATUS[v.status],
        "tags": pairs(v.tags),
        "run_link": v.run_link,
        "aliases": sorted(v.aliases),
        # MLflow's server stores what its request message held, "" when unset, and answers it: its client
        # reads "" then, never None.
        "description": v.description,
        "run_id": v.run_id,
    }
    # MLflow sets a status message only when there is one; its client reads None otherwise.
    if v.status_message:
        shape["status_message"] = v.status_message
    return shape


def registered_model(m: Model, latest: Sequence[ModelVersion], stages: StageMap) -> dict[str, Any]:
    """MLflow's ``RegisteredModel`` with its latest version in each stage."""
    shape: dict[str, Any] = {
        "name": m.name,
        "creation_timestamp": m.creation_timestamp,
        "last_updated_timestamp": m.last_updated_timestamp,
        "user_id": m.created_by,
        "latest_versions": [model_version(v, stages) for v in latest],
        "tags": pairs(m.tags),
        "aliases": [{"alias": a, "version": str(n)} for a, n in sorted(m.aliases.items())],
    }
    if m.description:
        shape["description"] = m.description
    return shape
