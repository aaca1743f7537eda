"""Build entities from rows, loading everything related to a page of rows in one more query (never per row)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    Connection,
    Float,
    Row,
    Select,
    String,
    Text,
    bindparam,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)

from covex.domain.entities import FileEntry, Model, ModelVersion
from covex.store.prepared import Prepared
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
# Built once: statements are immutable (``where`` returns a copy), and building one costs more than running it.
_VERSION_SELECT = select(*VERSION_COLUMNS).select_from(
    model_versions.join(models, models.c.id == model_versions.c.model_id)
)


def version_select() -> Select[Any]:
    """Version rows with their model's name."""
    return _VERSION_SELECT


# The lookups of every call, built once with bound parameters (each docstring names them).
MODEL_BY_NAME = select(models).where(models.c.name == bindparam("name"))
"""A model row by ``name``."""
MODEL_BY_NAME_LOCKED = MODEL_BY_NAME.with_for_update()
"""The same, locking the row: every change to a model's versions, stages or aliases holds it."""
VERSION_BY_NUMBER = _VERSION_SELECT.where(
    model_versions.c.model_id == bindparam("model_id"), model_versions.c.version == bindparam("version")
)
"""A version row (with its model's name) by ``model_id`` and ``version`` number."""
VERSION_BY_ALIAS = _VERSION_SELECT.join(model_aliases, model_aliases.c.version_id == model_versions.c.id).where(
    model_versions.c.model_id == bindparam("model_id"), model_aliases.c.alias == bindparam("alias")
)
"""The version row ``alias`` of model ``model_id`` points at."""
VERSION_BY_MODEL_NAME_AND_NUMBER = Prepared(
    _VERSION_SELECT.where(models.c.name == bindparam("name"), model_versions.c.version == bindparam("version"))
)
"""A version row by its model's ``name`` and its ``version`` number: one statement instead of two."""
VERSION_BY_MODEL_NAME_AND_ALIAS = Prepared(
    _VERSION_SELECT.join(model_aliases, model_aliases.c.version_id == model_versions.c.id).where(
        models.c.name == bindparam("name"), model_aliases.c.alias == bindparam("alias")
    )
)
"""The version row ``alias`` of the model called ``name`` points at: one statement instead of two."""
LATEST_READY = (
    _VERSION_SELECT.where(model_versions.c.model_id == bindparam("model_id"), model_versions.c.status == "READY")
    .order_by(model_versions.c.version.desc())
    .limit(1)
)
"""The newest READY version row of ``model_id``."""
LATEST_IN_STAGE = LATEST_READY.where(model_versions.c.stage == bindparam("stage"))
"""The newest READY version row of ``model_id`` in ``stage``."""


def _in(column: Any) -> Any:
    return column.in_(bindparam("ids", expanding=True))


def _is(column: Any) -> Any:
    return column == bindparam("id")


def _in_json(column: Any) -> Any:
    """``column IN`` the ids of a JSON array (SQLite's ``json_each``): one fixed statement for any number of
    ids, where an expanding IN is written out again for every call."""
    return column.in_(select(func.json_each(bindparam("ids_json")).table_valued("value").c.value))


# Typed NULLs: PostgreSQL needs each UNION column to have one type.
_NO_KEY = cast(null(), String)
_NO_TEXT = cast(null(), Text)
_NO_NUMBER = cast(null(), Float)


def _version_extras(match: Any) -> Any:
    """Everything hanging off versions, in one statement: (kind, version id, key, text, number)."""
    return union_all(
        select(literal("tag"), version_tags.c.version_id, version_tags.c.key, version_tags.c.value, _NO_NUMBER).where(
            match(version_tags.c.version_id)
        ),
        select(
            literal("param"), version_params.c.version_id, version_params.c.key, version_params.c.value, _NO_NUMBER
        ).where(match(version_params.c.version_id)),
        select(
            literal("metric"), version_metrics.c.version_id, version_metrics.c.key, null(), version_metrics.c.value
        ).where(match(version_metrics.c.version_id)),
        select(literal("alias"), model_aliases.c.version_id, model_aliases.c.alias, _NO_TEXT, _NO_NUMBER).where(
            match(model_aliases.c.version_id)
        ),
    )


# A page of versions (an expanding IN), and one version (a plain parameter: no IN to expand per call).
_VERSION_EXTRAS = _version_extras(_in)
_ONE_VERSION_EXTRAS = Prepared(_version_extras(_is))
_SQLITE_VERSION_EXTRAS = Prepared(_version_extras(_in_json))


def _model_extras(match: Any) -> Any:
    """Everything hanging off models: tags, aliases with their version numbers, the latest number."""
    return union_all(
        select(literal("tag"), model_tags.c.model_id, model_tags.c.key, model_tags.c.value, _NO_NUMBER).where(
            match(model_tags.c.model_id)
        ),
        select(
            literal("alias"),
            model_aliases.c.model_id,
            model_aliases.c.alias,
            _NO_TEXT,
            cast(model_versions.c.version, Float),
        )
        .join(model_versions, model_versions.c.id == model_aliases.c.version_id)
        .where(match(model_aliases.c.model_id)),
        select(
            literal("latest"),
            model_versions.c.model_id,
            _NO_KEY,
            _NO_TEXT,
            cast(func.max(model_versions.c.version), Float),
        )
        .where(match(model_versions.c.model_id))
        .group_by(model_versions.c.model_id),
    )


_MODEL_EXTRAS = _model_extras(_in)
_ONE_MODEL_EXTRAS = Prepared(_model_extras(_is))
_SQLITE_MODEL_EXTRAS = Prepared(_model_extras(_in_json))


def _extras(conn: Connection, rows: Sequence[Row[Any]], many: Any, one: Prepared, sqlite_many: Prepared) -> Any:
    if len(rows) == 1:
        return one.all(conn, {"id": rows[0].id})
    if conn.dialect.name == "sqlite":
        return sqlite_many.all(conn, {"ids_json": json.dumps([r.id for r in rows])})
    return conn.execute(many, {"ids": [r.id for r in rows]})


_MODELS = TypeAdapter(list[Model])
_VERSIONS = TypeAdapter(list[ModelVersion])


def load_models(conn: Connection, rows: Sequence[Row[Any]]) -> list[Model]:
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    aliases: dict[int, dict[str, int]] = defaultdict(dict)
    latest: dict[int, int] = {}
    if rows:
        for kind, owner, key, text, number in _extras(
            conn, rows, _MODEL_EXTRAS, _ONE_MODEL_EXTRAS, _SQLITE_MODEL_EXTRAS
        ):
            if kind == "tag":
                tags[owner][key] = text
            elif kind == "alias":
                aliases[owner][key] = int(number)
            else:
                latest[owner] = int(number)
    # One validation of the whole list in pydantic-core: several times faster than model_construct per row.
    return _MODELS.validate_python(
        [
            dict(
                name=r.name,
                description=r.description,
                tags=tags.get(r.id, {}),
                aliases=dict(sorted(aliases.get(r.id, {}).items())),
                latest_version=latest.get(r.id),
                created_by=r.created_by,
                creation_timestamp=r.creation_timestamp,
                last_updated_timestamp=r.last_updated_timestamp,
            )
            for r in rows
        ]
    )


def load_versions(conn: Connection, rows: Sequence[Row[Any]]) -> list[ModelVersion]:
    """Rows must carry ``model_versions`` columns plus the model's ``name``."""
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    params: dict[int, dict[str, str]] = defaultdict(dict)
    metrics: dict[int, dict[str, float]] = defaultdict(dict)
    aliases: dict[int, list[str]] = defaultdict(list)
    if rows:
        for kind, owner, key, text, number in _extras(
            conn, rows, _VERSION_EXTRAS, _ONE_VERSION_EXTRAS, _SQLITE_VERSION_EXTRAS
        ):
            if kind == "tag":
                tags[owner][key] = text
            elif kind == "param":
                params[owner][key] = text
            elif kind == "metric":
                metrics[owner][key] = float(number)
            else:
                aliases[owner].append(key)
    return _VERSIONS.validate_python(
        [
            dict(
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
                aliases=sorted(aliases.get(r.id, [])),
                manifest_digest=r.manifest_digest,
                file_count=r.file_count,
                size=r.size,
                creation_timestamp=r.creation_timestamp,
                last_updated_timestamp=r.last_updated_timestamp,
            )
            for r in rows
        ]
    )


def load_files(conn: Connection, version_id: int) -> list[FileEntry]:
    q = select(version_files).where(version_files.c.version_id == version_id).order_by(version_files.c.path)
    return [FileEntry(path=r.path, digest=r.digest, size=r.size, mode=r.mode) for r in conn.execute(q)]
