"""Someone with no account cannot grow or bury the audit trail.

1,000 requests without a token once added 1,000 records in about a second and tripled a real
user's write latency. Now the first refusal from a source is recorded, the rest of the
interval only counted, and the count recorded as one record; refusals of known principals
are still recorded one by one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

import covex
from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.service.refusals import MAX_SOURCES, OTHER_SOURCES, AnonymousRefusals
from covex.settings import Settings
from covex.store.schema import audit_log
from tests import support


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, RegistryService]]:
    settings = Settings(uri=str(tmp_path), user="tester", anonymous_audit_interval=3600, dispatch_interval=0)
    service = open_service(settings)
    service.access.bootstrap("tester")
    with support.server_thread(create_app(service, settings)) as url:
        yield url, service
    service.close()


def _refusals(service: RegistryService) -> list[dict[str, object]]:
    with service.engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.actor, audit_log.c.action, audit_log.c.after)
            .where(audit_log.c.outcome == "refused")
            .order_by(audit_log.c.seq)
        )
        return [{"actor": r.actor, "action": r.action, **json.loads(r.after)} for r in rows]


def test_a_thousand_anonymous_requests_make_one_record_and_one_count(server: tuple[str, RegistryService]) -> None:
    url, service = server
    with httpx.Client(base_url=url, timeout=30) as http:
        for i in range(1000):
            headers = {} if i % 2 else {"Authorization": "Bearer cvx_forged"}
            assert 401 == http.get("/api/v1/models", headers=headers).status_code
    first = _refusals(service)
    assert [{"actor": "", "action": "authenticate", "reason": first[0]["reason"], "source": "127.0.0.1"}] == first
    assert 1 == service.flush_refusals(everything=True)
    counted = _refusals(service)[1]
    assert (999, "127.0.0.1", "authenticate") == (counted["count"], counted["source"], counted["action"])
    assert service.audit.verify().ok


def test_each_source_is_recorded_on_its_own(server: tuple[str, RegistryService]) -> None:
    url, service = server
    for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(base_url=url, timeout=30, transport=transport) as http:
            for _ in range(3):
                assert 401 == http.get("/api/v1/whoami").status_code
    assert ["127.0.0.1", "127.0.0.2", "127.0.0.3"] == [r["source"] for r in _refusals(service)]
    assert 3 == service.flush_refusals(everything=True)
    assert [2, 2, 2] == [r["count"] for r in _refusals(service)[3:]]


def test_refusals_of_a_known_principal_are_each_recorded(server: tuple[str, RegistryService]) -> None:
    url, service = server
    service.access.create_user("mallory")
    token = service.access.create_token("mallory").secret
    with covex.Client(url, token=token) as mallory:
        for _ in range(5):
            with pytest.raises(covex.PermissionDenied):
                mallory.gc()
    assert 5 * [("mallory", "gc")] == [(r["actor"], r["action"]) for r in _refusals(service)]


def test_the_counts_are_recorded_by_the_server_itself(tmp_path) -> None:
    env = {"COVEX_URI": str(tmp_path), "COVEX_ANONYMOUS_AUDIT_INTERVAL": "0.5", "COVEX_DISPATCH_INTERVAL": "0"}
    with support.server_process(env) as url:
        for _ in range(10):
            assert 401 == httpx.get(f"{url}/api/v1/models", timeout=30).status_code
        # The server's housekeeping records the count once the interval is over, with no further request.
        deadline = time.monotonic() + 60
        while (counted := _counted(tmp_path)) < 10:
            assert time.monotonic() < deadline, f"only {counted} of 10 refusals recorded or counted"
            time.sleep(0.1)
    assert 10 == _counted(tmp_path)


def _counted(root: Path) -> int:
    """Refusals without a token in the trail: one per record, or the record's count."""
    with covex.Client(str(root)) as local:
        records = local.audit.list_records(action="authenticate").items
    return sum(json.loads(r.after or "{}").get("count", 1) for r in records)


def test_tallies_are_bounded_and_close_in_order() -> None:
    refusals = AnonymousRefusals(interval=10)
    assert (True, []) == refusals.admit("a", "no token", now=0)
    assert (False, []) == refusals.admit("a", "no token", now=1)
    assert (True, []) == refusals.admit("b", "no token", now=2)
    recorded, due = refusals.admit("a", "bad token", now=10.5)  # the window of "a" closed at 10
    assert recorded and [("a", 1, "no token")] == [(t.source, t.count, t.reason) for t in due]

    many = AnonymousRefusals(interval=10)
    for i in range(MAX_SOURCES):
        many.admit(f"s{i}", "no token", now=0)
    assert (True, []) == many.admit("late", "no token", now=1)  # past the bound: the shared tally
    assert (False, []) == many.admit("later", "no token", now=1)
    assert [(OTHER_SOURCES, 1)] == [(t.source, t.count) for t in many.due(1, everything=True)]
    assert [] == many.due(1, everything=True)

    assert (True, []) == AnonymousRefusals(interval=0).admit("x", "no token", now=0)  # 0: record each
