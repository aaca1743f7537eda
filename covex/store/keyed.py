"""Key/value rows of one owner: a model's tags, and a version's tags, metrics and params."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Column, Connection, Table, delete, insert, select


def _owner(table: Table) -> Column[Any]:
    return table.c.model_id if "model_id" in table.c else table.c.version_id


def replace_keys(conn: Connection, table: Table, owner_id: int, items: Mapping[str, Any]) -> dict[str, Any]:
    """Set ``items`` on one owner, each replacing the key's row; return the values they replaced."""
    owner, keys = _owner(table), list(items)
    before = dict(
        conn.execute(select(table.c.key, table.c.value).where(owner == owner_id, table.c.key.in_(keys))).all()
    )
    if items:
        conn.execute(delete(table).where(owner == owner_id, table.c.key.in_(keys)))
        conn.execute(insert(table), [{owner.name: owner_id, "key": k, "value": v} for k, v in items.items()])
    return before


def delete_key(conn: Connection, table: Table, owner_id: int, key: str) -> Any:
    """Delete one key of one owner; return its value (None: it had none, and nothing changed)."""
    owner = _owner(table)
    before = conn.execute(select(table.c.value).where(owner == owner_id, table.c.key == key)).scalar_one_or_none()
    if before is not None:
        conn.execute(delete(table).where(owner == owner_id, table.c.key == key))
    return before
