"""The first admin: created once, on a server's first start or by ``covex admin bootstrap``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import covex
from covex.domain.access import NewToken
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests.conftest import Registry


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Callable[[], RegistryService]]:
    """Factory: services on one new, empty registry (each its own connections, as server processes have)."""
    opened: list[RegistryService] = []
    settings = Settings(uri=str(tmp_path / "data"))

    def make() -> RegistryService:
        opened.append(open_service(settings))
        return opened[-1]

    yield make
    for service in opened:
        service.close()


def test_the_first_start_creates_the_admin_and_later_starts_do_not(fresh: Callable[[], RegistryService]) -> None:
    service = fresh()
    token = service.access.bootstrap_admin()
    assert token is not None
    assert ("admin", True) == (token.user, service.access.get_user("admin").is_admin)
    assert "admin" == service.with_credentials(token.secret).access.whoami().name  # the token works
    assert None is fresh().access.bootstrap_admin()  # the next start: an admin exists
    records = service.audit.list_records(action="user.bootstrap").items
    assert [("user:admin", "ok")] == [(r.target, r.outcome) for r in records]


def test_servers_starting_together_create_one_admin(fresh: Callable[[], RegistryService]) -> None:
    fresh().ping()  # the registry (and its schema) exists before the race, as after 'covex init'
    services = [fresh() for _ in range(4)]
    ready = threading.Barrier(len(services))
    made: list[NewToken | None] = []
    failed: list[BaseException] = []

    def start(service: RegistryService) -> None:
        ready.wait()
        try:
            made.append(service.access.bootstrap_admin())
        except BaseException as exc:  # reported below
            failed.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert ([], 1, 3) == (failed, sum(t is not None for t in made), made.count(None))


def test_a_registry_with_an_admin_needs_none(registry: Registry) -> None:
    assert (False, None) == (registry.service.access.needs_bootstrap(), registry.service.access.bootstrap_admin())


def test_the_name_is_checked(fresh: Callable[[], RegistryService]) -> None:
    with pytest.raises(covex.InvalidInput, match="'name'"):
        fresh().access.bootstrap_admin("no spaces allowed")
