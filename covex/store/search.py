"""Turn parsed filters and order keys into SQLAlchemy clauses (values always bound)."""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, literal, not_, or_, select, true
from sqlalchemy.sql.elements import UnaryExpression

from covex.domain.errors import InvalidInput
from covex.domain.filters import BoolOp, Comparison, Field, Node, OrderKey
from covex.store.schema import (
    model_aliases,
    model_tags,
    model_versions,
    models,
    version_metrics,
    version_params,
    version_tags,
)

_NEGATIVE = {"!=": "=", "NOT IN": "IN", "NOT LIKE": "LIKE", "NOT ILIKE": "ILIKE"}


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    match op:
        case "=":
            return column == value  # type: ignore[no-any-return]
        case "!=":
            return column != value  # type: ignore[no-any-return]
        case "<":
            return column < value  # type: ignore[no-any-return]
        case "<=":
            return column <= value  # type: ignore[no-any-return]
        case ">":
            return column > value  # type: ignore[no-any-return]
        case ">=":
            return column >= value  # type: ignore[no-any-return]
        case "IN":
            return column.in_(list(value))  # type: ignore[no-any-return]
        case "NOT IN":
            return column.not_in(list(value))  # type: ignore[no-any-return]
        case "LIKE":
            return column.like(value)  # type: ignore[no-any-return]
        case "NOT LIKE":
            return column.not_like(value)  # type: ignore[no-any-return]
        case "ILIKE":
            return column.ilike(value)  # type: ignore[no-any-return]
        case "NOT ILIKE":
            return column.not_ilike(value)  # type: ignore[no-any-return]
    raise InvalidInput(f"invalid filter: unsupported operator {op}")


def _compile(node: Node, leaf: Any) -> ColumnElement[bool]:
    if isinstance(node, BoolOp):
        parts = [_compile(t, leaf) for t in node.terms]
        return and_(*parts) if node.op == "AND" else or_(*parts)
    return leaf(node)  # type: ignore[no-any-return]


def _keyed(table: Any, owner_col: Any, owner_id: Any, cmp: Comparison) -> ColumnElement[bool]:
    return exists().where(
        owner_col == owner_id, table.c.key == cmp.field.key, _compare(table.c.value, cmp.op, cmp.value)
    )


def _alias(owner_col: Any, owner_id: Any, cmp: Comparison) -> ColumnElement[bool]:
    # "alias != 'x'" means "does not hold alias x", not "holds some other alias".
    positive = _NEGATIVE.get(cmp.op)
    op = positive or cmp.op
    clause = exists().where(owner_col == owner_id, _compare(model_aliases.c.alias, op, cmp.value))
    return not_(clause) if positive else clause


def model_filter(node: Node | None) -> ColumnElement[bool]:
    if node is None:
        return true()

    def leaf(cmp: Comparison) -> ColumnElement[bool]:
        kind = cmp.field.kind
        if kind == "tags":
            return _keyed(model_tags, model_tags.c.model_id, models.c.id, cmp)
        if kind == "alias":
            return _alias(model_aliases.c.model_id, models.c.id, cmp)
        return _compare(models.c[kind], cmp.op, cmp.value)

    return _compile(node, leaf)


def version_filter(node: Node | None) -> ColumnElement[bool]:
    if node is None:
        return true()
    keyed = {"tags": version_tags, "metrics": version_metrics, "params": version_params}

    def leaf(cmp: Comparison) -> ColumnElement[bool]:
        kind = cmp.field.kind
        if kind in keyed:
            table = keyed[kind]
            return _keyed(table, table.c.version_id, model_versions.c.id, cmp)
        if kind == "alias":
            return _alias(model_aliases.c.version_id, model_versions.c.id, cmp)
        if kind == "name":
            return _compare(models.c.name, cmp.op, cmp.value)
        if kind == "version" and any(isinstance(v, float) and not v.is_integer() for v in _values(cmp)):
            return false() if cmp.op in ("=", "IN") else _compare(model_versions.c.version, cmp.op, cmp.value)
        return _compare(model_versions.c[kind], cmp.op, cmp.value)

    return _compile(node, leaf)


def _values(cmp: Comparison) -> tuple[Any, ...]:
    return cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)


def _direction(column: Any, descending: bool) -> UnaryExpression[Any]:
    ordered: UnaryExpression[Any] = column.desc() if descending else column.asc()
    return ordered.nulls_last()


def model_order(keys: list[OrderKey]) -> list[UnaryExpression[Any]]:
    clauses = [_direction(models.c[k.field.kind], k.descending) for k in keys]
    return [*clauses, models.c.name.asc()]


def version_order(keys: list[OrderKey]) -> list[UnaryExpression[Any]]:
    clauses = []
    for k in keys:
        f: Field = k.field
        if f.kind == "metrics":
            column: Any = (
                select(version_metrics.c.value)
                .where(version_metrics.c.version_id == model_versions.c.id, version_metrics.c.key == literal(f.key))
                .scalar_subquery()
            )
        elif f.kind == "name":
            column = models.c.name
        else:
            column = model_versions.c[f.kind]
        clauses.append(_direction(column, k.descending))
    if not keys:
        clauses = [models.c.name.asc(), model_versions.c.version.desc()]
    return [*clauses, model_versions.c.id.asc()]


MAX_RESULTS_LIMIT = 10_000


def check_max_results(max_results: int) -> int:
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS_LIMIT:
        raise InvalidInput(f"'max_results' must be an integer from 1 to {MAX_RESULTS_LIMIT}, got {max_results!r}")
    return max_results


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded.encode()))["offset"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("'page_token' is not a token this server issued") from None
