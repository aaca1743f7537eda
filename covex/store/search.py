"""Turn parsed filters and order keys into SQLAlchemy clauses (values always bound)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import BigInteger, ColumnElement, Float, and_, exists, func, literal, not_, or_, select, true
from sqlalchemy.sql.elements import UnaryExpression

from covex.domain.errors import InvalidInput
from covex.domain.filters import INT64_MAX, BoolOp, Comparison, Field, Node, OrderKey, Value
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


def _bound(value: Value) -> Any:
    # Bound bare, an integer takes the column's type and PostgreSQL casts it to INTEGER (32 bits),
    # even against a Float metric: "metrics.auc < 3000000000" failed there and not on SQLite. Each
    # number is bound as its own type, 64 bits at most (the parser sees to that), on both alike.
    if isinstance(value, int):
        return literal(value, BigInteger)
    if isinstance(value, float):
        return literal(value, Float)
    return value


# Backslash escapes % and _ on every database (PostgreSQL's default; SQLite has none unless told).
ESCAPE = "\\"


def _compare(column: Any, op: str, raw: Value | tuple[Value, ...]) -> ColumnElement[bool]:
    value = [_bound(v) for v in raw] if isinstance(raw, tuple) else _bound(raw)
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
            return column.in_(value)  # type: ignore[no-any-return]
        case "NOT IN":
            return column.not_in(value)  # type: ignore[no-any-return]
        case "LIKE":
            return column.like(value, escape=ESCAPE)  # type: ignore[no-any-return]
        case "NOT LIKE":
            return column.not_like(value, escape=ESCAPE)  # type: ignore[no-any-return]
        case "ILIKE":
            return column.ilike(value, escape=ESCAPE)  # type: ignore[no-any-return]
        case "NOT ILIKE":
            return column.not_ilike(value, escape=ESCAPE)  # type: ignore[no-any-return]
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
        if kind == "stage" and cmp.op in ("=", "!=", "IN", "NOT IN"):
            # Stage names match case-insensitively everywhere, in filters too.
            lowered = (
                tuple(str(v).lower() for v in cmp.value) if isinstance(cmp.value, tuple) else str(cmp.value).lower()
            )
            return _compare(func.lower(model_versions.c.stage), cmp.op, lowered)
        return _compare(model_versions.c[kind], cmp.op, cmp.value)

    return _compile(node, leaf)


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
# Tokens this server issues are ~40 characters; a longer one is not ours, and json.loads would
# recurse into a deeply nested one until RecursionError.
MAX_PAGE_TOKEN_LENGTH = 200


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
        if not isinstance(token, str) or len(token) > MAX_PAGE_TOKEN_LENGTH:
            raise ValueError
        padded = token + "=" * (-len(token) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded.encode()))["offset"]
        # The databases take a 64-bit OFFSET; a bool is an int to Python but not an offset.
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= INT64_MAX:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("'page_token' is not a token this server issued") from None


SEARCHES_CACHED = 512
"""How many searches' statements (one per filter text and order) each kind of search keeps built."""
S = TypeVar("S")


def cached_statement(build: Callable[[str | None, tuple[str, ...]], S], filter: Any, order_by: Any) -> S:
    """``build(filter, order_by)`` from an ``lru_cache`` when both are text, as they nearly always are.

    Parsing a filter and building its statement costs more than running it on SQLite; statements
    are immutable, so a repeated search (a dashboard, a pipeline's poll) reuses the one built
    before. Anything else (a wrong type) goes uncached to the builder, whose parser names the error.
    """
    key: tuple[Any, ...] | None = None
    if order_by is None:
        key = ()
    elif isinstance(order_by, Sequence) and not isinstance(order_by, str):
        key = tuple(order_by)
    if (filter is None or isinstance(filter, str)) and key is not None and all(isinstance(k, str) for k in key):
        return build(filter, key)
    uncached: Callable[[Any, Any], S] = build.__wrapped__  # type: ignore[attr-defined]
    return uncached(filter, order_by)
