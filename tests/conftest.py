"""Fixtures: the registry on every backend (embedded and HTTP) and database (SQLite, PostgreSQL)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete
from typer.testing import CliRunner

import covex
from covex.cli import app
from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from covex.store.schema import grants, groups, models, policies, users, webhooks
from tests import support

DATABASES = ["sqlite", "postgresql"]
BACKENDS = ["embedded", "http"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (skips, saying why, if there is none)."""
    reason = support.postgres_available()
    if reason:
        pytest.skip(reason)
    with support.fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """Database URL per kind, created once per session."""
    urls: dict[str, str] = {}

    def get(kind: str) -> str:
        if kind not in urls:
            if kind == "postgresql":
                urls[kind] = request.getfixturevalue("postgres_url")
            else:
                urls[kind] = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'covex.db'}"
        return urls[kind]

    return get


class Registry:
    """One backend+database combination for the contract suite."""

    def __init__(self, service: RegistryService, settings: Settings, url: str) -> None:
        self.service = service
        self.settings = settings
        self.url = url

    @property
    def engine(self) -> Engine:
        return self.service.engine

    def reset(self) -> None:
        """Empty the registry, keeping the admin "tester" and the audit trail."""
        with self.engine.begin() as conn:
            for table in (models, policies, webhooks, groups, grants):
                conn.execute(delete(table))
            conn.execute(delete(users).where(users.c.name != "tester"))

    def client(self) -> covex.Client:
        return covex.Client(self.url, settings=self.settings)

    def user(self, name: str, *, groups: Sequence[str] = (), admin: bool = False, kind: str = "user") -> covex.Client:
        """A client acting as a new user (member of ``groups``, created if missing), by its own API token."""
        service = self.service
        access = service.access
        access.create_user(name, kind=kind, admin=admin)
        for group in groups:
            if group not in {g.name for g in access.list_groups()}:
                access.create_group(group)
            access.add_member(group, name)
        token = access.create_token(name, name="test").secret
        return self.client_with(token)

    def user_token(self, name: str) -> covex.Client:
        """A client acting as the existing user ``name``, by a new API token."""
        return self.client_with(self.service.access.create_token(name, name="test").secret)

    def cli(self, *args: str, token: str | None = None, input: str | None = None) -> support.CliResult:
        """Run the ``covex`` command on this registry as a user would (over HTTP with the admin's token)."""
        env = {
            "COVEX_URI": self.url,
            "COVEX_ARTIFACTS": self.settings.artifacts_url,
            "COVEX_TOKEN": token or self.settings.token or "",
            "COLUMNS": "200",
        }
        r = CliRunner().invoke(app, list(args), env=env, input=input)
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return support.CliResult(r.exit_code, r.stdout, r.stderr)

    def client_with(self, token: str) -> covex.Client:
        """A client sending ``token`` (embedded: acting as its user)."""
        return covex.Client(self.url, settings=self.settings.model_copy(update={"token": token}))


@pytest.fixture(scope="session")
def registries(
    database_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str, str], Registry]]:
    made: dict[tuple[str, str], Registry] = {}
    services: dict[str, tuple[RegistryService, Settings]] = {}
    servers: list[Any] = []

    def get(backend: str, db: str) -> Registry:
        if (backend, db) in made:
            return made[(backend, db)]
        if db not in services:
            settings = Settings(
                uri=database_url(db), artifacts=str(tmp_path_factory.mktemp(f"artifacts-{db}")), user="tester"
            )
            service = open_service(settings)
            # The HTTP side calls with the token of an admin named like the embedded local user.
            token = service.access.bootstrap("tester").secret
            services[db] = (service, settings.model_copy(update={"token": token}))
        service, settings = services[db]
        if backend == "embedded":
            reg = Registry(service, settings.model_copy(update={"token": None}), settings.uri)
        else:
            ctx = support.server_thread(create_app(service, auth=True))
            url = ctx.__enter__()
            servers.append(ctx)
            reg = Registry(service, settings.model_copy(update={"uri": url}), url)
        made[(backend, db)] = reg
        return reg

    yield get
    for ctx in servers:
        ctx.__exit__(None, None, None)
    for service, _ in services.values():
        service.close()


@pytest.fixture(
    params=[
        pytest.param((b, d), id=f"{b}-{d}", marks=[pytest.mark.postgres] if d == "postgresql" else [])
        for d in DATABASES
        for b in BACKENDS
    ]
)
def registry(request: pytest.FixtureRequest, registries: Callable[[str, str], Registry]) -> Registry:
    backend, db = request.param
    reg = registries(backend, db)
    reg.reset()
    return reg


@pytest.fixture
def client(registry: Registry) -> Iterator[covex.Client]:
    """A ``covex.Client`` on each backend and database, on an empty registry."""
    with registry.client() as c:
        yield c


@pytest.fixture
def tree(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``tree({"model.pkl": b"..."})`` writes files into a fresh folder."""
    counter = iter(range(10**6))

    def make(files: dict[str, bytes | str] | None = None, name: str | None = None) -> Path:
        root = tmp_path / (name or f"tree{next(counter)}")
        root.mkdir(parents=True, exist_ok=True)
        return support.make_tree(root, files or {"model.pkl": b"weights", "MLmodel": "flavors: {}\n"})

    return make


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A local Spark session (two cores), shared by the tests of one process."""
    pyspark = pytest.importorskip("pyspark.sql")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the executors' workers run this interpreter
    session = (
        pyspark.SparkSession.builder.master("local[2]")
        .appName("covex-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


# The longest tests, longest first. Run in parallel, each should start at once on a worker of its own,
# not queue behind another at the end of the run.
LONGEST = (
    "tests/test_readme.py::test_readme_runs_embedded",
    "tests/test_readme.py::test_readme_runs_against_a_server",
    "tests/server/test_fuzz.py::test_fuzz_with_token",
    "tests/server/test_fuzz.py::test_fuzz_stateful",
    "tests/server/test_fuzz.py::test_fuzz_without_token",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, put the longest tests where its scheduler hands each worker its first test.

    xdist's load scheduler gives each of N workers a first chunk of consecutive tests (a quarter of
    its share); a long test at the head of each chunk starts at once, in parallel, and the rest
    follow at the head of what remains. Every worker computes the same order from the same collection.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers < 2:
        return
    position = {nodeid: rank for rank, nodeid in enumerate(LONGEST)}
    longest = sorted(
        (i for i in items if i.nodeid.split("[")[0] in position), key=lambda i: position[i.nodeid.split("[")[0]]
    )
    if not longest:
        return
    rest = [i for i in items if i not in longest]
    chunk = max(len(items) // workers // 4, 2)
    for n, item in enumerate(longest):
        rest.insert(min(n * chunk, len(rest)) if n < workers else min(workers * chunk + n - workers, len(rest)), item)
    items[:] = rest
