"""Prepared statements answer exactly what SQLAlchemy's path answers, and fail the way it fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    exc,
    insert,
    select,
    update,
)

import covex
from covex.domain.entities import NewVersion
from covex.domain.uris import parse_model_uri
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


# -- writes -------------------------------------------------------------------------------------


def _things(tmp_path: Path, *weight: Column[float]) -> tuple[Engine, Table]:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    table = Table(
        "things",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String, nullable=False),
        Column("note", String, nullable=False, default="none"),
        *weight,
    )
    table.create(engine)
    return engine, table


def test_an_insert_returning_and_an_update_run_on_the_driver(tmp_path: Path) -> None:
    engine, table = _things(tmp_path)
    add = Prepared(insert(table).returning(table.c.id), keys=("name", "note"))
    rename = Prepared(update(table).where(table.c.id == bindparam("at")).values(name=bindparam("new")))
    many = Prepared(insert(table), keys=("name", "note"))
    with engine.begin() as conn:
        assert [tuple(r) for r in add.all(conn, {"name": "a", "note": "x"})] == [(1,)]
        assert add.all(conn, {"name": "b", "note": "y"})[0].id == 2
        assert rename.all(conn, {"at": 1, "new": "A"}) == []
        many.many(conn, [{"name": "c", "note": "z"}, {"name": "d", "note": "w"}])
        many.many(conn, [])
        rows = [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]
    assert rows == [(1, "A", "x"), (2, "b", "y"), (3, "c", "z"), (4, "d", "w")]
    assert None not in (add._compiled["sqlite"], rename._compiled["sqlite"], many._compiled["sqlite"])


def test_an_insert_must_be_given_every_key_it_names(tmp_path: Path) -> None:
    """A key left out would get None on the driver where SQLAlchemy would have put the column's default."""
    engine, table = _things(tmp_path)
    add = Prepared(insert(table), keys=("name", "note"))
    with engine.begin() as conn, pytest.raises(KeyError, match="note"):
        add.all(conn, {"name": "a"})


def test_an_insert_that_needs_a_default_or_a_type_processor_stays_on_sqlalchemy(tmp_path: Path) -> None:
    engine, table = _things(tmp_path, Column("weight", Float, nullable=False, default=0.0))
    defaulted = Prepared(insert(table), keys=("name",))  # note and weight take their defaults
    weighed = Prepared(insert(table), keys=("name", "note", "weight"))  # Float has a bind processor
    with engine.begin() as conn:
        defaulted.all(conn, {"name": "a"})
        weighed.many(conn, [{"name": "b", "note": "n", "weight": 2}])
        rows = [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]
    assert rows == [(1, "a", "none", 0.0), (2, "b", "n", 2.0)]
    assert defaulted._compiled["sqlite"] is None and weighed._compiled["sqlite"] is None


def test_the_statements_of_a_create_run_on_the_driver(service: RegistryService) -> None:
    """Every statement a create runs, but the metrics' insert (a Float), skips SQLAlchemy's path on SQLite."""
    from covex.service import base, scans, versions

    dialect = service.engine.dialect
    hot = [base._MODEL, base._MODEL_LOCKED, base._HEAD, base._APPEND, base._ADVANCE, base._WEBHOOKS_ON_MODEL]
    hot += [versions._NEXT_VERSION, versions._INSERT_VERSION, scans._QUEUE]
    hot += [versions._INSERT_KEYED["version_tags"], versions._INSERT_KEYED["version_params"]]
    assert all(p._for(dialect) is not None for p in hot)
    created = service.create_version("churn", NewVersion(source="s3://b/9", tags={"a": "1"}, params={"p": "2"}))
    assert service.get_version(parse_model_uri(f"models:/churn/{created.version}")) == created
    assert service.audit.verify().ok


def test_a_page_s_extras_by_a_json_list_of_ids_are_the_expanding_in_s(service: RegistryService) -> None:
    """On SQLite a page's tags, aliases and metrics come by one fixed statement (ids as a JSON array)."""
    service.create_model("other", tags={"k": "v"})
    service.create_version("other", NewVersion(source="s3://o/1", metrics={"m": 1.5}))
    with database.transaction(service.engine, write=False) as conn:
        for ids in ([1, 2], [2, 1, 99], list(range(1, 200))):
            for many, by_json in (
                (queries._MODEL_EXTRAS, queries._SQLITE_MODEL_EXTRAS),
                (queries._VERSION_EXTRAS, queries._SQLITE_VERSION_EXTRAS),
            ):
                expected = sorted(map(tuple, conn.execute(many, {"ids": ids})), key=repr)
                got = sorted(map(tuple, by_json.all(conn, {"ids_json": json.dumps(ids)})), key=repr)
                assert got == expected and got
            assert queries._SQLITE_MODEL_EXTRAS._compiled["sqlite"] is not None


def test_a_statement_built_per_request_is_compiled_for_the_driver_when_it_runs_again(service: RegistryService) -> None:
    """A new search shape costs one SQLAlchemy compilation shared by its values; a repeated one runs on the driver."""
    once = Prepared(select(queries.MODEL_BY_NAME.selected_columns.name).where(bindparam("x") == 1), on_reuse=True)
    with database.transaction(service.engine, write=False) as conn:
        assert [tuple(r) for r in once.all(conn, {"x": 1})] == [("churn",)]
        assert "sqlite" not in once._compiled
        assert [tuple(r) for r in once.all(conn, {"x": 1})] == [("churn",)]
        assert once._compiled["sqlite"] is not None
