"""The few statements every read and every common write runs, sent straight to SQLite's driver.

A lookup in a local SQLite file takes a few microseconds; SQLAlchemy's execution path around it
(compiled-cache lookup, parameter processing, execution context, result object) takes about 15 µs
more per statement, which is most of an embedded ``get_version``. A ``Prepared`` statement is
compiled once per dialect and, on SQLite, run on the driver's cursor inside the caller's
transaction, with its rows returned as named tuples. It stays on SQLAlchemy's path (so nothing
changes) on every other database, where the network dominates, and for a statement whose columns
or parameters need SQLAlchemy's type processing on that dialect. Listeners of
``before_cursor_execute`` still see the statement, and driver errors become SQLAlchemy's, as on
the normal path.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, exc
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.expression import Executable


class _Compiled(NamedTuple):
    sql: str
    order: tuple[str, ...] | None  # parameter names in position order; None: the driver takes a mapping
    defaults: dict[str, Any]  # values bound in the statement itself (literals)
    row: type[tuple[Any, ...]]


class Prepared:
    """A fixed statement with bound parameters, run with the least work the database allows."""

    def __init__(self, statement: Executable, keys: Sequence[str] = (), *, on_reuse: bool = False) -> None:
        """``keys``: an INSERT's columns, each given by every call (a column left out could need a default).

        ``on_reuse``: for a statement built per request (a search's): its first run takes SQLAlchemy's path,
        whose compiled cache serves every statement of the same shape whatever its values; it is compiled
        for the driver when it runs again.
        """
        self.statement = statement
        self.keys = tuple(keys)
        self._compiled: dict[str, _Compiled | None] = {}
        self._unused = on_reuse

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row (of a query, or of an INSERT, UPDATE or DELETE with RETURNING), each with the columns as
        attributes (as ``Row`` has them)."""
        compiled = self._for(conn.dialect)
        if compiled is None:
            result = conn.execute(self.statement, params)
            return list(result.all()) if result.returns_rows else []
        make = compiled.row
        return [make(*r) for r in self._run(conn, compiled, self._args(compiled, params), many=False)]

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement without RETURNING once per set of parameters (an INSERT of several rows)."""
        if not rows:
            return
        compiled = self._for(conn.dialect)
        if compiled is None:
            conn.execute(self.statement, list(rows))
            return
        self._run(conn, compiled, [self._args(compiled, r) for r in rows], many=True)

    @staticmethod
    def _args(compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        args: Any = {**compiled.defaults, **params}
        return args if compiled.order is None else tuple(args[name] for name in compiled.order)

    @staticmethod
    def _run(conn: Connection, compiled: _Compiled, args: Any, *, many: bool) -> list[Any]:
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        try:
            if conn._has_events or conn.engine._has_events:  # e.g. a test counting statements
                conn.dispatch.before_cursor_execute(conn, cursor, compiled.sql, args, None, many)
            try:
                if many:
                    cursor.executemany(compiled.sql, args)
                    return []
                cursor.execute(compiled.sql, args)
                rows: list[Any] = cursor.fetchall()
                return rows
            except conn.dialect.loaded_dbapi.Error as error:
                raise exc.DBAPIError.instance(
                    compiled.sql, args, error, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
                ) from error
        finally:
            cursor.close()

    def one_or_none(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        rows = self.all(conn, params)
        if len(rows) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when one or none was required")
        return rows[0] if rows else None

    def _for(self, dialect: Dialect) -> _Compiled | None:
        if self._unused:
            self._unused = False
            return None
        if dialect.name not in self._compiled:
            self._compiled[dialect.name] = (
                _compile(self.statement, dialect, self.keys) if dialect.name == "sqlite" else None
            )
        return self._compiled[dialect.name]


def _compile(statement: Any, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled | None:
    """The statement as the driver takes it; None when a column or parameter needs type processing, a value
    is computed at execution (a column default, an IN list), or the statement is not a fixed one."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    if compiled._bind_processors or compiled.post_compile_params or compiled.literal_execute_params:
        return None
    if compiled.insert_prefetch or compiled.update_prefetch:
        return None
    names: list[str] = []
    columns = statement.selected_columns if hasattr(statement, "selected_columns") else statement.exported_columns
    for column in columns:
        if column.type._cached_result_processor(dialect, None) is not None:
            return None
        names.append(column.key if isinstance(column.key, str) and column.key.isidentifier() else "_")
    order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup is not None else None
    defaults = {  # the literals the statement binds itself, by the names the driver's parameters have
        key: bind.effective_value
        for key, bind in compiled.binds.items()
        if not bind.required and bind.callable is None and (order is None or key in order) and key not in keys
    }
    return _Compiled(compiled.string, order, defaults, _row_type(tuple(names)))


@lru_cache(maxsize=256)
def _row_type(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    """A row class per set of column names (making one costs more than compiling a small statement)."""
    return namedtuple("row", names, rename=True)
