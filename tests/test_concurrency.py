"""Many writers at once: version numbers, alias moves, stage transitions and uploads under contention.

Every writer starts behind one barrier so that the requests really overlap; every error a
writer meets is collected and must be none.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

import covex
from tests import support
from tests.conftest import Registry

WRITERS = 16
PER_WRITER = 4
T = TypeVar("T")


def run_concurrently(count: int, work: Callable[[int], T], timeout: float = 180) -> list[T]:
    """Run ``work(0..count-1)`` on ``count`` threads released together; fail if any raised or hung."""
    barrier = threading.Barrier(count)
    results: dict[int, T] = {}
    errors: dict[int, BaseException] = {}

    def call(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:
            errors[i] = exc

    # Daemon threads: a writer stuck on a lock fails the test instead of hanging the run.
    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert [] == [i for i, t in enumerate(threads) if t.is_alive()], f"writers still running after {timeout} s"
    assert {} == {i: repr(e) for i, e in errors.items()}
    return [results[i] for i in range(count)]


@contextmanager
def writer_clients(make: Callable[[], covex.Client], shared: bool) -> Iterator[list[covex.Client]]:
    """One client per writer, or one client shared by all writers."""
    with ExitStack() as stack:
        if shared:
            yield [stack.enter_context(make())] * WRITERS
        else:
            yield [stack.enter_context(make()) for _ in range(WRITERS)]


def racing_clients(registry: Registry) -> AbstractContextManager[list[covex.Client]]:
    """Over HTTP a client (connection pool) per writer; embedded, writers share one service and its pool."""
    return writer_clients(registry.client, shared=not registry.url.startswith("http"))


def create_versions(clients: list[covex.Client], model: str) -> dict[int, int]:
    """Each writer creates PER_WRITER versions tagged with its index; return version -> writer."""

    def work(i: int) -> list[int]:
        return [
            clients[i].create_version(model, source=f"s3://bucket/{i}/{n}", metrics={"writer": i}).version
            for n in range(PER_WRITER)
        ]

    per_writer = run_concurrently(WRITERS, work)
    for numbers in per_writer:
        assert sorted(numbers) == numbers  # one writer's own calls get increasing numbers
    return {number: i for i, numbers in enumerate(per_writer) for number in numbers}


def assert_gap_free(client: covex.Client, model: str, owners: dict[int, int]) -> None:
    total = WRITERS * PER_WRITER
    assert list(range(1, total + 1)) == sorted(owners)
    listed = client.list_versions(model, max_results=1000).items
    assert list(range(total, 0, -1)) == [v.version for v in listed]
    assert owners == {v.version: int(v.metrics["writer"]) for v in listed}
    assert total == client.get_model(model).latest_version


@pytest.mark.parametrize("shared", [False, True], ids=["client-per-writer", "shared-client"])
def test_concurrent_versions_are_numbered_without_gaps(registry: Registry, shared: bool) -> None:
    with registry.client() as admin:
        admin.create_model("churn")
        with writer_clients(registry.client, shared) as clients:
            owners = create_versions(clients, "churn")
        assert_gap_free(admin, "churn", owners)


def test_clients_opening_a_new_sqlite_folder_together(tmp_path: Path) -> None:
    """Sixteen embedded clients create (and migrate) one fresh SQLite registry at once, then write."""
    folder = tmp_path / "data"
    clients = run_concurrently(WRITERS, lambda _i: covex.Client(folder, user="tester"))
    try:
        clients[0].create_model("churn")
        owners = create_versions(clients, "churn")
        assert_gap_free(clients[-1], "churn", owners)
    finally:
        for c in clients:
            c.close()


def test_concurrent_creation_of_one_model_name_has_one_winner(registry: Registry) -> None:
    def work(i: int) -> int | None:
        try:
            clients[i].create_model("churn", description=f"writer {i}")
            return i
        except covex.AlreadyExists:
            return None

    with registry.client() as admin, racing_clients(registry) as clients:
        winners = [i for i in run_concurrently(WRITERS, work) if i is not None]
        assert 1 == len(winners)
        assert f"writer {winners[0]}" == admin.get_model("churn").description


def ready_versions(client: covex.Client, model: str, count: int) -> list[int]:
    client.create_model(model)
    return [client.create_version(model, source=f"s3://bucket/{n}").version for n in range(count)]


def race_alias(clients: list[covex.Client], model: str, versions: list[int]) -> None:
    def work(i: int) -> None:
        for _ in range(3):
            clients[i].set_alias(model, "champion", versions[i % len(versions)])

    run_concurrently(WRITERS, work)


def assert_one_alias_holder(client: covex.Client, model: str) -> None:
    holders = [v.version for v in client.list_versions(model, max_results=1000) if "champion" in v.aliases]
    assert 1 == len(holders)
    assert {"champion": holders[0]} == client.get_model(model).aliases
    assert holders[0] == client.get_version(f"models:/{model}@champion").version
    assert holders[0] == client.get_version(model, "@champion").version


def race_production(clients: list[covex.Client], model: str, versions: list[int]) -> None:
    def work(i: int) -> None:
        for _ in range(2):
            clients[i].transition_stage(model, versions[i % len(versions)], "Production", archive_existing=True)

    run_concurrently(WRITERS, work)


def assert_one_in_production(client: covex.Client, model: str, count: int) -> None:
    listed = client.list_versions(model, max_results=1000).items
    assert {"Production": 1, "Archived": count - 1} == dict(Counter(v.stage for v in listed))
    (winner,) = [v.version for v in listed if v.stage == "Production"]
    assert winner == client.get_latest_version(model, "Production").version
    assert winner == client.get_version(f"models:/{model}/Production").version


def test_concurrent_alias_moves_leave_one_holder(registry: Registry) -> None:
    with registry.client() as admin, racing_clients(registry) as clients:
        versions = ready_versions(admin, "churn", WRITERS)
        race_alias(clients, "churn", versions)
        assert_one_alias_holder(admin, "churn")


def test_concurrent_promotions_leave_one_version_in_production(registry: Registry) -> None:
    with registry.client() as admin, racing_clients(registry) as clients:
        versions = ready_versions(admin, "churn", WRITERS)
        race_production(clients, "churn", versions)
        assert_one_in_production(admin, "churn", WRITERS)


def upload_trees(tree: Callable[..., Path], count: int) -> list[Path]:
    """Small folders: one file shared by all (same blob written concurrently), one unique per folder."""
    shared = b"shared weights " * 300
    return [
        tree({"shared.bin": shared, f"own/{i}.bin": f"writer {i} ".encode() * (i + 1), "MLmodel": "flavors: {}\n"})
        for i in range(count)
    ]


def race_uploads(clients: list[covex.Client], model: str, sources: list[Path]) -> dict[int, Path]:
    versions = run_concurrently(WRITERS, lambda i: clients[i].create_version(model, sources[i]))
    assert {"READY"} == {v.status for v in versions}
    return {v.version: sources[i] for i, v in enumerate(versions)}


def assert_uploads_download(client: covex.Client, model: str, by_version: dict[int, Path], out: Path) -> None:
    assert list(range(1, WRITERS + 1)) == sorted(by_version)
    for number, source in by_version.items():
        target = client.download(model, out / str(number), number)
        assert support.read_tree(source) == support.read_tree(target)


def test_concurrent_uploads(registry: Registry, tree: Callable[..., Path], tmp_path: Path) -> None:
    sources = upload_trees(tree, WRITERS)
    with registry.client() as admin, racing_clients(registry) as clients:
        admin.create_model("churn")
        by_version = race_uploads(clients, "churn", sources)
        assert_uploads_download(admin, "churn", by_version, tmp_path / "out")


# -- two server processes on one PostgreSQL database ------------------------------------------------


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two ``covex server`` processes started together on one fresh database and one artifacts folder."""
    reason = support.postgres_available()
    if reason:
        pytest.skip(reason)
    artifacts = tmp_path_factory.mktemp("shared-artifacts")
    with support.fresh_postgres_database() as url, ExitStack() as stack:
        env = {"COVEX_URI": url, "COVEX_ARTIFACTS": str(artifacts), "COVEX_AUTH": "false"}
        contexts = [support.server_process(env) for _ in range(2)]
        # Start both at once: they migrate the empty database concurrently.
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(ctx.__enter__) for ctx in contexts]
            for ctx, future in zip(contexts, futures, strict=True):
                if future.exception() is None:
                    stack.push(ctx)
            urls = [f.result() for f in futures]
        yield urls


@contextmanager
def split_clients(urls: list[str]) -> Iterator[list[covex.Client]]:
    """Writers alternate between the servers, one client each."""
    with ExitStack() as stack:
        yield [stack.enter_context(covex.Client(urls[i % len(urls)])) for i in range(WRITERS)]


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_number_versions_without_gaps(two_servers: list[str]) -> None:
    with covex.Client(two_servers[0]) as admin, split_clients(two_servers) as clients:
        admin.create_model("numbers")
        owners = create_versions(clients, "numbers")
        assert_gap_free(admin, "numbers", owners)
    with covex.Client(two_servers[1]) as other:
        assert_gap_free(other, "numbers", owners)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_race_aliases_and_stages(two_servers: list[str]) -> None:
    with covex.Client(two_servers[1]) as admin, split_clients(two_servers) as clients:
        versions = ready_versions(admin, "races", WRITERS)
        race_alias(clients, "races", versions)
        race_production(clients, "races", versions)
        for url in two_servers:
            with covex.Client(url) as c:
                assert_one_alias_holder(c, "races")
                assert_one_in_production(c, "races", WRITERS)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_share_uploads(two_servers: list[str], tree: Callable[..., Path], tmp_path: Path) -> None:
    sources = upload_trees(tree, WRITERS)
    with covex.Client(two_servers[0]) as admin, split_clients(two_servers) as clients:
        admin.create_model("uploads")
        by_version = race_uploads(clients, "uploads", sources)
    for url in two_servers:
        with covex.Client(url) as c:
            assert_uploads_download(c, "uploads", by_version, tmp_path / url.rsplit(":", 1)[1])
