"""Prepared statements answer exactly what SQLAlchemy's path answers, and fail the way it fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, bindparam, create_engine, exc, select

import covex
from covex.domain.entities import NewVersion
from covex.service import RegistryService, open_service
from covex.service.base import _TOKEN
from covex.store import database, queries
from covex.store.prepared import Prepared


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RegistryService]:
    svc = open_service(covex.Settings(uri=str(tmp_path / "data"), user="tester"))
    svc.create_model("churn", tags={"team": "crm", "tier": "1"})
    for n in range(3):
        svc.create_version(
            "churn",
            NewVersion(source=f"s3://b/{n}", tags={"t": str(n)}, metrics={"auc": n / 3, "f1": 0.5}, params={"C": "1"}),
        )
    svc.set_alias("churn", "champion", 2)
    svc.set_alias("churn", "challenger", 2)
    yield svc
    svc.close()


CASES = [
    (queries.VERSION_BY_MODEL_NAME_AND_ALIAS, {"name": "churn", "alias": "champion"}),
    (queries.VERSION_BY_MODEL_NAME_AND_ALIAS, {"name": "churn", "alias": "nobody"}),
    (queries.VERSION_BY_MODEL_NAME_AND_NUMBER, {"name": "churn", "version": 3}),
    (queries._ONE_VERSION_EXTRAS, {"id": 2}),
    (queries._ONE_MODEL_EXTRAS, {"id": 1}),
    (_TOKEN, {"token_hash": "0" * 64}),
]


@pytest.mark.parametrize(("prepared", "params"), CASES)
def test_rows_are_the_ones_sqlalchemy_returns(service: RegistryService, prepared: Prepared, params: dict) -> None:
    with database.transaction(service.engine, write=False) as conn:
        expected = [tuple(r) for r in conn.execute(prepared.statement, params)]
        got = prepared.all(conn, params)
    assert sorted(map(tuple, got), key=repr) == sorted(expected, key=repr)
    if got and prepared.statement.selected_columns[0].key == "id":  # named columns read as attributes, as on Row
        assert got[0].id == expected[0][0]


def test_the_version_lookups_run_on_the_driver(service: RegistryService) -> None:
    """The point of it: on SQLite these statements skip SQLAlchemy's execution path (else a no-op wrapper)."""
    with database.transaction(service.engine, write=False) as conn:
        for prepared, params in CASES[:5]:
            prepared.all(conn, params)
            assert prepared._compiled["sqlite"] is not None


def test_one_or_none(service: RegistryService) -> None:
    with database.transaction(service.engine, write=False) as conn:
        assert queries.VERSION_BY_MODEL_NAME_AND_ALIAS.one_or_none(conn, {"name": "churn", "alias": "x"}) is None
        row = queries.VERSION_BY_MODEL_NAME_AND_ALIAS.one_or_none(conn, {"name": "churn", "alias": "champion"})
        assert (row.name, row.version) == ("churn", 2)
        with pytest.raises(exc.MultipleResultsFound):
            queries._ONE_VERSION_EXTRAS.one_or_none(conn, {"id": 2})


def test_driver_errors_become_sqlalchemy_errors(tmp_path: Path) -> None:
    """The service maps SQLAlchemy's OperationalError to ServiceUnavailable: the driver's must arrive as one."""
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    table = Table("gone", MetaData(), Column("id", Integer), Column("name", String))
    table.create(engine)
    prepared = Prepared(select(table).where(table.c.id == bindparam("id")))
    with engine.begin() as conn:
        assert prepared.all(conn, {"id": 1}) == []
        table.drop(conn)
        with pytest.raises(exc.OperationalError, match="no such table"):
            prepared.all(conn, {"id": 1})


def test_columns_that_need_type_processing_stay_on_sqlalchemy(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    table = Table("flags", MetaData(), Column("id", Integer), Column("on", Boolean))
    table.create(engine)
    prepared = Prepared(select(table.c.on).where(table.c.id == bindparam("id")))
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "on": True}])
        rows = prepared.all(conn, {"id": 1})
    assert [r.on for r in rows] == [True]  # a bool, as SQLAlchemy reads it, not SQLite's 1
    assert type(rows[0].on) is bool
