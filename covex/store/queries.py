"""Build entities from rows, loading related rows in one query per table (never per row)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, Select, func, select

from covex.domain.entities import FileEntry, Model, ModelVersion
from covex.store.schema import (
    model_aliases,
    model_tags,
    model_versions,
    models,
    version_files,
    version_metrics,
    version_params,
    version_tags,
)

VERSION_COLUMNS = (*model_versions.c, models.c.name)


def version_select() -> Select[Any]:
    """Version rows with their model's name."""
    return select(*VERSION_COLUMNS).select_from(model_versions.join(models, models.c.id == model_versions.c.model_id))


def _grouped(conn: Connection, table: Any, owner: Any, ids: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = defaultdict(dict)
    if ids:
        for owner_id, key, value in conn.execute(select(owner, table.c.key, table.c.value).where(owner.in_(ids))):
            out[owner_id][key] = value
    return out


def load_models(conn: Connection, rows: Sequence[Row[Any]]) -> list[Model]:
    ids = [r.id for r in rows]
    tags = _grouped(conn, model_tags, model_tags.c.model_id, ids)
    aliases: dict[int, dict[str, int]] = defaultdict(dict)
    latest: dict[int, int] = {}
    if ids:
        q = (
            select(model_aliases.c.model_id, model_aliases.c.alias, model_versions.c.version)
            .join(model_versions, model_versions.c.id == model_aliases.c.version_id)
            .where(model_aliases.c.model_id.in_(ids))
        )
        for model_id, alias, version in conn.execute(q):
            aliases[model_id][alias] = version
        q2 = (
            select(model_versions.c.model_id, func.max(model_versions.c.version))
            .where(model_versions.c.model_id.in_(ids))
            .group_by(model_versions.c.model_id)
        )
        latest = {mid: v for mid, v in conn.execute(q2)}
    return [
        Model(
            name=r.name,
            description=r.description,
            tags=tags.get(r.id, {}),
            aliases=aliases.get(r.id, {}),
            latest_version=latest.get(r.id),
            created_by=r.created_by,
            creation_timestamp=r.creation_timestamp,
            last_updated_timestamp=r.last_updated_timestamp,
        )
        for r in rows
    ]


def load_versions(conn: Connection, rows: Sequence[Row[Any]]) -> list[ModelVersion]:
    """Rows must carry ``model_versions`` columns plus the model's ``name``."""
    ids = [r.id for r in rows]
    tags = _grouped(conn, version_tags, version_tags.c.version_id, ids)
    metrics = _grouped(conn, version_metrics, version_metrics.c.version_id, ids)
    params = _grouped(conn, version_params, version_params.c.version_id, ids)
    aliases: dict[int, list[str]] = defaultdict(list)
    if ids:
        q = select(model_aliases.c.version_id, model_aliases.c.alias).where(model_aliases.c.version_id.in_(ids))
        for version_id, alias in conn.execute(q.order_by(model_aliases.c.alias)):
            aliases[version_id].append(alias)
    return [
        ModelVersion(
            name=r.name,
            version=r.version,
            status=r.status,
            status_message=r.status_message,
            stage=r.stage,
            description=r.description,
            source=r.source,
            run_id=r.run_id,
            run_link=r.run_link,
            created_by=r.created_by,
            tags=tags.get(r.id, {}),
            metrics=metrics.get(r.id, {}),
            params=params.get(r.id, {}),
            aliases=aliases.get(r.id, []),
            manifest_digest=r.manifest_digest,
            file_count=r.file_count,
            size=r.size,
            creation_timestamp=r.creation_timestamp,
            last_updated_timestamp=r.last_updated_timestamp,
        )
        for r in rows
    ]


def load_files(conn: Connection, version_id: int) -> list[FileEntry]:
    q = select(version_files).where(version_files.c.version_id == version_id).order_by(version_files.c.path)
    return [FileEntry(path=r.path, digest=r.digest, size=r.size, mode=r.mode) for r in conn.execute(q)]
