"""``without_waiting``: the first write transaction gives up at once when SQLite's write lock is taken."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from covex.store import database
from covex.store.schema import models


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = database.create_db_engine(f"sqlite:///{tmp_path / 'covex.db'}")
    database.upgrade(engine)
    yield engine
    engine.dispose()


def _add(conn: object, name: str) -> None:
    conn.execute(models.insert().values(name=name, description="", creation_timestamp=0, last_updated_timestamp=0))  # type: ignore[attr-defined]


def _names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(models.c.name).order_by(models.c.name)).scalars())


def _held_by_another_connection(engine: Engine) -> sqlite3.Connection:
    other = sqlite3.connect(engine.url.database, isolation_level=None, check_same_thread=False)  # type: ignore[arg-type]
    other.execute("BEGIN IMMEDIATE")
    return other


def test_gives_up_at_once_and_writes_nothing_while_another_connection_writes(engine: Engine) -> None:
    other = _held_by_another_connection(engine)
    started = time.monotonic()
    with pytest.raises(database.WriteWouldWait), database.without_waiting():
        with database.transaction(engine, write=True) as conn:
            _add(conn, "never")
    assert time.monotonic() - started < 5  # not SQLite's 30 s busy timeout
    other.execute("ROLLBACK")
    other.close()
    assert _names(engine) == []
    with engine.connect() as conn:  # the pooled connection waits again for the lock, as every other caller does
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    with database.without_waiting(), database.transaction(engine, write=True) as conn:
        _add(conn, "now")
    assert _names(engine) == ["now"]


def test_gives_up_while_a_thread_of_this_process_writes(engine: Engine) -> None:
    lock = database._writer_lock(engine)
    assert lock is not None
    with lock, pytest.raises(database.WriteWouldWait), database.without_waiting():
        with database.transaction(engine, write=True):
            pass
    with database.transaction(engine, write=True) as conn:  # the lock was not left taken
        _add(conn, "after")
    assert _names(engine) == ["after"]


def test_only_the_first_write_transaction_may_give_up(engine: Engine) -> None:
    """A call that wrote once must not give up halfway: its later write transactions wait."""
    with database.without_waiting():
        with database.transaction(engine, write=True) as conn:
            _add(conn, "first")
        other = _held_by_another_connection(engine)
        release = threading.Timer(0.5, lambda: other.execute("ROLLBACK"))
        release.start()
        with database.transaction(engine, write=True) as conn:
            _add(conn, "second")
        release.join()
        other.close()
    assert _names(engine) == ["first", "second"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(models)).scalar_one() == 2


def test_outside_the_block_writes_wait_for_the_lock(engine: Engine) -> None:
    other = _held_by_another_connection(engine)
    release = threading.Timer(0.5, lambda: other.execute("ROLLBACK"))
    release.start()
    with database.transaction(engine, write=True) as conn:
        _add(conn, "waited")
    release.join()
    other.close()
    assert _names(engine) == ["waited"]


def test_a_commit_that_does_not_wait_leaves_the_checkpoint_to_the_server_s_chore(engine: Engine) -> None:
    """A commit on the event loop must not copy the write-ahead log into the database (it may take long)."""
    db = Path(str(engine.url.database))
    big = "x" * 2_000_000  # 2 MB of log in each of three commits: more than SQLite's 1,000-page autocheckpoint
    before = db.stat().st_size
    for n in range(3):
        with database.without_waiting(), database.transaction(engine, write=True) as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
            conn.execute(
                models.insert().values(name=f"m{n}", description=big, creation_timestamp=0, last_updated_timestamp=0)
            )
    assert db.stat().st_size == before  # everything is still in the log
    database.checkpoint(engine)  # what a server's chore does every second (MaintenanceService.checkpoint)
    assert db.stat().st_size > before + 5_000_000
    with database.transaction(engine, write=True) as conn:  # the same pooled connection checkpoints as usual again
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000


def test_other_commits_checkpoint_as_sqlite_does(engine: Engine) -> None:
    db = Path(str(engine.url.database))
    before = db.stat().st_size
    for n in range(3):
        with database.transaction(engine, write=True) as conn:
            conn.execute(
                models.insert().values(
                    name=f"m{n}", description="x" * 2_000_000, creation_timestamp=0, last_updated_timestamp=0
                )
            )
    assert db.stat().st_size > before + 4_000_000
