"""The store's queries stay cheap: a fixed number of statements per call, and an index for every lookup."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, event, inspect

import covex
from covex.domain.entities import NewVersion
from covex.domain.uris import ModelRef
from covex.service import RegistryService, open_service
from covex.store.schema import metadata
from tests.conftest import Registry

DB_PARAMS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement (with its parameters) sent to the database inside the block."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def count(engine: Engine, call: Callable[[], Any]) -> int:
    with statements(engine) as seen:
        call()
    return len(seen)


@pytest.fixture(params=DB_PARAMS)
def service(request: pytest.FixtureRequest, registries: Callable[[str, str], Registry]) -> RegistryService:
    """The in-process service on each database, on an empty registry."""
    reg = registries("embedded", request.param)
    reg.reset()
    return reg.service


@pytest.fixture
def populated(service: RegistryService) -> Callable[[int], RegistryService]:
    """Factory: ``populated(n)``: n models and n versions of ``churn``, all with tags, metrics, params, aliases."""

    def make(n: int) -> RegistryService:
        service.create_model("churn", tags={"team": "crm"})
        for i in range(n):
            service.create_version(
                "churn",
                NewVersion(source=f"s3://b/{i}", tags={"t": str(i)}, metrics={"auc": i / n}, params={"C": str(i)}),
            )
            service.set_alias("churn", f"alias_{i}", i + 1)
        for i in range(n - 1):
            service.create_model(f"m{i:03}", tags={"team": "crm", "i": str(i)})
            service.create_version(f"m{i:03}", NewVersion(source="s3://b/x"))
            service.set_alias(f"m{i:03}", "champion", 1)
        return service

    return make


CALLS: dict[str, Callable[[RegistryService, int], covex.Page[Any]]] = {
    "search_models": lambda svc, n: svc.search_models("tags.team = 'crm'", max_results=n),
    "search_versions": lambda svc, n: svc.search_versions("metrics.auc >= 0", ["metrics.auc DESC"], max_results=n),
    "list_versions": lambda svc, n: svc.search_versions(model="churn", max_results=n),
}


def test_statement_count_does_not_grow_with_results(populated: Callable[[int], RegistryService]) -> None:
    svc = populated(50)
    assert {name: (5, 50) for name in CALLS} == {name: (len(c(svc, 5)), len(c(svc, 50))) for name, c in CALLS.items()}
    assert all(item.tags for c in CALLS.values() for item in c(svc, 50))  # related rows are really loaded
    few = {name: count(svc.engine, lambda c=c: c(svc, 5)) for name, c in CALLS.items()}
    many = {name: count(svc.engine, lambda c=c: c(svc, 50)) for name, c in CALLS.items()}
    assert few == many


# -- indexes (SQLite, as built by the migrations) -------------------------------------------------


@pytest.fixture
def sqlite_service(tmp_path: Path) -> Iterator[RegistryService]:
    svc = open_service(covex.Settings(uri=str(tmp_path / "data"), user="tester"))
    yield svc
    svc.close()


def _indexes(engine: Engine, table: str) -> dict[tuple[str, ...], bool]:
    """Column lists the database can look up by (leading columns of any index) -> unique."""
    found: dict[tuple[str, ...], bool] = {}
    insp = inspect(engine)
    keys = [(tuple(ix["column_names"]), bool(ix["unique"])) for ix in insp.get_indexes(table)]
    keys += [(tuple(uq["column_names"]), True) for uq in insp.get_unique_constraints(table)]
    keys.append((tuple(insp.get_pk_constraint(table)["constrained_columns"]), True))
    for columns, unique in keys:
        for n in range(1, len(columns) + 1):
            prefix = columns[:n]
            found[prefix] = found.get(prefix, False) or (unique and n == len(columns))
    return found


@pytest.mark.parametrize(
    ("table", "columns", "unique"),
    [
        ("models", ("name",), True),
        ("model_versions", ("model_id", "version"), True),
        ("model_versions", ("stage",), False),
        ("model_versions", ("model_id", "stage"), False),
        ("version_metrics", ("key", "value"), False),
        ("model_aliases", ("version_id",), False),
        ("version_files", ("digest",), False),
    ],
)
def test_every_lookup_path_has_an_index(
    sqlite_service: RegistryService, table: str, columns: tuple[str, ...], unique: bool
) -> None:
    indexes = _indexes(sqlite_service.engine, table)
    assert columns in indexes
    assert unique == indexes[columns]


@pytest.mark.parametrize(
    "lookup",
    [
        lambda svc: svc.get_model("churn"),
        lambda svc: svc.get_version(ModelRef("churn", "version", "7")),
        lambda svc: svc.get_version(ModelRef("churn", "alias", "champion")),
        lambda svc: svc.get_version(ModelRef("churn", "stage", "Production")),
    ],
    ids=["model-by-name", "version-by-number", "version-by-alias", "version-by-stage"],
)
def test_lookups_search_indexes_and_never_scan(sqlite_service: RegistryService, lookup) -> None:
    svc = sqlite_service
    svc.create_model("other")
    svc.create_model("churn")
    for n in range(10):
        svc.create_version(
            "churn", NewVersion(source=f"s3://b/{n}", tags={"t": "x"}, metrics={"auc": 0.5}, params={"p": "1"})
        )
    svc.set_alias("churn", "champion", 7)
    svc.transition_stage("churn", 7, "Production")
    with statements(svc.engine) as seen:
        lookup(svc)
    queries = [(sql, params) for sql, params in seen if sql.lstrip().upper().startswith("SELECT")]
    assert queries
    with svc.engine.connect() as conn:
        plans = {sql: [step for *_, step in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", p)] for sql, p in queries}
    assert {} == {sql: plan for sql, plan in plans.items() if any(step.startswith("SCAN") for step in plan)}
    first = plans[queries[0][0]]  # starts from the model, by name (a version by number or alias: in the same statement)
    assert first[0] in {
        "SEARCH models USING INDEX sqlite_autoindex_models_1 (name=?)",
        "SEARCH models USING COVERING INDEX sqlite_autoindex_models_1 (name=?)",
    }


@pytest.mark.parametrize("db", DB_PARAMS)
def test_migrations_build_exactly_the_declared_schema(db: str, registries: Callable[[str, str], Registry]) -> None:
    engine = registries("embedded", db).engine
    with engine.connect() as conn:
        assert [] == compare_metadata(MigrationContext.configure(conn), metadata)
