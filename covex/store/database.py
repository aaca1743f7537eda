"""Engines, transactions and migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from covex.domain.errors import InvalidInput, ServiceUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"
_migrate_lock = threading.Lock()


_BEGIN_WRITE, _BEGIN_READ = "BEGIN IMMEDIATE", "BEGIN DEFERRED"
_BUSY_TIMEOUT_MS = 30000
_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default


class WriteWouldWait(Exception):  # a signal to the caller, never an error anyone sees
    """The write lock is taken and the caller asked not to wait for it (``without_waiting``)."""


class _Block:
    """One ``without_waiting`` block: whether its first write transaction has begun, and whether any of its
    write transactions has committed."""

    __slots__ = ("begun", "committed")

    def __init__(self) -> None:
        self.begun = False
        self.committed = False


_no_wait: ContextVar[_Block | None] = ContextVar("covex_write_no_wait", default=None)


@contextmanager
def without_waiting() -> Iterator[None]:
    """The first write transaction begun inside raises ``WriteWouldWait`` instead of waiting for SQLite's
    write lock (held by another thread or process); nothing has been written when it does.

    Only the first: a later write transaction in the same call waits as usual, because giving up there
    would leave the call half done. Callers use it for calls that write in one transaction.
    """
    token = _no_wait.set(_Block())
    try:
        yield
    finally:
        _no_wait.reset(token)


def may_start_over() -> bool:
    """Inside ``without_waiting`` with nothing committed yet: the call has changed nothing, so instead of
    waiting for the write lock (e.g. to audit a refusal) it may raise ``WriteWouldWait`` and be run again
    where waiting is fine."""
    block = _no_wait.get()
    return block is not None and not block.committed


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Transactions are begun by us (below), so pysqlite must not begin its own.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        # LIKE is case-sensitive as on PostgreSQL, and can use the name index.
        cur.execute("PRAGMA case_sensitive_like=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: no deadlocked lock upgrades under contention.
        # Straight to the driver: this runs for every transaction, and needs no result or events.
        options = conn.get_execution_options()
        driver: Any = conn.connection.driver_connection
        no_wait = bool(options.get("covex_no_wait"))
        info = conn.connection.info
        if options.get("covex_write") and info.get("covex_no_checkpoint", False) != no_wait:
            # A commit on the event loop must not copy the write-ahead log into the database (SQLite does it
            # at a commit once the log holds 1,000 pages): a server's chore checkpoints instead (checkpoint).
            driver.execute(f"PRAGMA wal_autocheckpoint={0 if no_wait else _AUTOCHECKPOINT_PAGES}")
            info["covex_no_checkpoint"] = no_wait
        if not no_wait:
            driver.execute(_BEGIN_WRITE if options.get("covex_write") else _BEGIN_READ)
            return
        driver.execute("PRAGMA busy_timeout=0")
        try:
            driver.execute(_BEGIN_WRITE)
        except sqlite3.OperationalError as exc:
            if driver.in_transaction or "locked" not in str(exc):
                raise
            raise WriteWouldWait from None
        finally:
            driver.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")


def checkpoint(engine: Engine) -> None:
    """Copy what SQLite's write-ahead log holds into the database, without waiting for anyone (PASSIVE)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def create_db_engine(url: str) -> Engine:
    """Create an engine for ``url``, creating the SQLite file's folder if needed."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"'uri' {url!r} is not a database URL: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, pool_size=8, max_overflow=32, pool_timeout=60)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        return create_engine(parsed, pool_size=10, max_overflow=40, pool_pre_ping=True, pool_timeout=60)
    except NoSuchModuleError as exc:
        raise InvalidInput(f"'uri' {url!r} names an unsupported database: {exc}") from None


def _alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""
    with _migrate_lock:
        try:
            with engine.connect().execution_options(covex_write=True) as conn:
                if engine.dialect.name == "postgresql":
                    with conn.begin():
                        # One migrator at a time across processes.
                        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
                        command.upgrade(_alembic_config(conn), revision)
                else:
                    with conn.begin():
                        command.upgrade(_alembic_config(conn), revision)
        except OperationalError as exc:
            raise ServiceUnavailable(f"cannot reach the database: {exc.orig}") from None


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


# The advisory lock that keeps gc from deleting a blob a version is being created on (PostgreSQL).
BLOB_LOCK = 727275


def lock_blobs(conn: Connection, *, exclusive: bool) -> None:
    """Hold the blob lock until ``conn``'s transaction ends: shared to add references, exclusive to delete.

    On SQLite every write transaction already excludes every other, so there is nothing to take.
    """
    if conn.dialect.name == "postgresql":
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        conn.exec_driver_sql(f"SELECT {function}({BLOB_LOCK})")


_sqlite_writers: dict[URL, threading.Lock] = {}


def _writer_lock(engine: Engine) -> threading.Lock | None:
    """One SQLite writer at a time per process: queueing on a lock beats SQLite's sleeping busy handler."""
    if engine.dialect.name != "sqlite":
        return None
    lock = _sqlite_writers.get(engine.url)
    if lock is None:
        with _migrate_lock:
            lock = _sqlite_writers.setdefault(engine.url, threading.Lock())
    return lock


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """One transaction; ``write`` takes the database's write lock at BEGIN (SQLite)."""
    if not write:  # a read begins DEFERRED: the default, no option to set
        with engine.connect() as conn, conn.begin():
            yield conn
        return
    lock = _writer_lock(engine)
    if lock is None:
        with engine.connect().execution_options(covex_write=True) as conn, conn.begin():
            yield conn
        return
    block = _no_wait.get()
    if block is None or block.begun:
        with lock, engine.connect().execution_options(covex_write=True) as conn, conn.begin():
            yield conn
        if block is not None:
            block.committed = True
        return
    block.begun = True  # only the first write transaction of the call may give up
    if not lock.acquire(blocking=False):
        raise WriteWouldWait
    try:
        with engine.connect().execution_options(covex_write=True, covex_no_wait=True) as conn, conn.begin():
            yield conn
        block.committed = True
    finally:
        lock.release()
