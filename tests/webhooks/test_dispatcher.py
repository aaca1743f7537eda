"""Delivery from the outbox to a real receiver on loopback: signed, retried with backoff, at least once.

Loopback is refused by default (see test_ssrf.py): each dispatcher here allows its receiver.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, update

import covex
from covex.store.schema import webhook_deliveries, webhooks
from covex.workers.webhooks import Dispatcher
from tests.conftest import Registry
from tests.webhooks.receiver import Receiver, allow, receiving


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    r = Receiver()
    with receiving(r) as url:
        yield r, url


def drain(dispatcher: Dispatcher, done: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "deliveries did not arrive in time"
        if not dispatcher.run_once():
            time.sleep(0.01)


def queued(registry: Registry) -> int:
    with registry.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(webhook_deliveries)).scalar_one())


def test_each_event_arrives_once_signed(
    registry: Registry, client: covex.Client, receiver: tuple[Receiver, str], tree: Callable[..., object]
) -> None:
    got, url = receiver
    hook = client.webhooks.create_webhook(url, ["stage.changed", "alias.set", "version.created"])
    got.secret = hook.secret
    client.create_model("churn")  # model.created: not subscribed
    client.create_version("churn", tree())
    client.transition_stage("churn", 1, "Production")
    client.set_alias("churn", "champion", 1)
    dispatcher = Dispatcher(registry.service, backoff=0.01, allow=allow(url))
    try:
        drain(dispatcher, lambda: len(got.received) >= 3)
        assert 0 == dispatcher.run_once()
    finally:
        dispatcher.stop()

    assert ["alias.set", "stage.changed", "version.created"] == sorted(got.events())
    assert all(r.valid for r in got.received)
    by_event = {r.event: r.payload for r in got.received}
    assert {"model": "churn", "version": 1, "from": "None", "to": "Production"}.items() <= (
        by_event["stage.changed"]["data"].items()
    )
    assert {"model": "churn", "alias": "champion", "version": 1}.items() <= by_event["alias.set"]["data"].items()
    assert "tester" == by_event["alias.set"]["actor"]

    deliveries = client.webhooks.list_deliveries(hook.id)
    assert {("delivered", 1, 200)} == {(d.status, len(d.attempts), d.attempts[0].status_code) for d in deliveries}
    assert sorted(r.delivery for r in got.received) == sorted(str(d.id) for d in deliveries)
    assert {d.event_id for d in deliveries} == got.event_ids()
    assert 3 == len(client.webhooks.list_deliveries(hook.id, status="delivered"))
    assert [] == client.webhooks.list_deliveries(hook.id, status="pending").items


def test_failures_are_retried_with_backoff(
    registry: Registry, client: covex.Client, receiver: tuple[Receiver, str]
) -> None:
    got, url = receiver
    got.fail = 2
    hook = client.webhooks.create_webhook(url, ["model.*"])
    got.secret = hook.secret
    client.create_model("churn")
    dispatcher = Dispatcher(registry.service, backoff=0.05, allow=allow(url))
    try:
        drain(dispatcher, lambda: len(got.received) >= 1)
    finally:
        dispatcher.stop()
    [delivery] = client.webhooks.list_deliveries(hook.id)
    assert ("delivered", [500, 500, 200], [1, 2, 3]) == (
        delivery.status,
        [a.status_code for a in delivery.attempts],
        [a.attempt for a in delivery.attempts],
    )
    assert "HTTP 500 Internal Server Error" == delivery.attempts[0].error  # never the reply body
    waits = [b.timestamp - a.timestamp for a, b in zip(delivery.attempts, delivery.attempts[1:], strict=False)]
    assert waits[0] >= 100 and waits[1] >= 200  # 0.05 * 2**1 s, then 0.05 * 2**2 s
    assert ["model.created"] == got.events()


def test_gives_up_after_max_attempts_then_redelivers(
    registry: Registry, client: covex.Client, receiver: tuple[Receiver, str]
) -> None:
    got, url = receiver
    got.fail = 3
    hook = client.webhooks.create_webhook(url, ["*"])
    got.secret = hook.secret
    client.create_model("churn")
    dispatcher = Dispatcher(registry.service, backoff=0.001, max_attempts=3, allow=allow(url))
    try:
        drain(dispatcher, lambda: got.requests >= 3)
        [failed] = client.webhooks.list_deliveries(hook.id, status="failed")
        assert (3, 500) == (len(failed.attempts), failed.last_status_code)
        assert 0 == dispatcher.run_once()

        assert "pending" == client.webhooks.redeliver(failed.id).status
        drain(dispatcher, lambda: len(got.received) >= 1)
    finally:
        dispatcher.stop()
    [delivered] = client.webhooks.list_deliveries(hook.id)
    assert ("delivered", 200, 4) == (delivered.status, delivered.last_status_code, len(delivered.attempts))


def test_an_unreachable_receiver_is_logged(registry: Registry, client: covex.Client) -> None:
    from tests.support import free_port

    url = f"http://127.0.0.1:{free_port()}/hook"
    hook = client.webhooks.create_webhook(url, ["*"])
    client.create_model("churn")
    dispatcher = Dispatcher(registry.service, backoff=60, allow=allow(url))
    try:
        assert 1 == dispatcher.run_once()
    finally:
        dispatcher.stop()
    [pending] = client.webhooks.list_deliveries(hook.id)
    assert ("pending", None) == (pending.status, pending.attempts[0].status_code)
    assert "could not connect" == pending.attempts[0].error  # a category, not the socket's error
    assert pending.next_attempt_at - pending.attempts[0].timestamp >= 120_000  # 60 * 2**1 s


def test_only_subscribed_active_webhooks_get_events(registry: Registry, client: covex.Client) -> None:
    client.create_model("churn")
    client.create_model("fraud")
    on_fraud = client.webhooks.create_webhook("http://127.0.0.1:9/f", ["model.*"], model="fraud")
    paused = client.webhooks.create_webhook("http://127.0.0.1:9/p", ["*"])
    client.webhooks.update_webhook(paused.id, active=False)
    client.set_model_tag("churn", "k", "v")  # no event
    client.rename_model("churn", "churn2")
    client.rename_model("fraud", "fraud2")
    assert ["model.renamed"] == [d.event for d in client.webhooks.list_deliveries(on_fraud.id)]
    assert [] == client.webhooks.list_deliveries(paused.id).items


def test_refused_or_rolled_back_changes_queue_nothing(registry: Registry, client: covex.Client, tree) -> None:
    client.create_model("churn")
    client.create_version("churn", tree())
    client.webhooks.create_webhook("http://127.0.0.1:9/x", ["*"])
    before = queued(registry)
    with registry.user("outsider") as outsider, pytest.raises(covex.PermissionDenied):
        outsider.transition_stage("churn", 1, "Production")
    with pytest.raises(covex.InvalidInput):
        client.transition_stage("churn", 1, "Nowhere")
    service = registry.service
    with pytest.raises(RuntimeError), service._tx(write=True) as conn:
        service._emit(conn, "model.created", {"model": "ghost"})
        raise RuntimeError("the change failed after its event was queued")
    assert before == queued(registry)


def test_an_expired_lease_is_delivered_again(
    registry: Registry, client: covex.Client, receiver: tuple[Receiver, str]
) -> None:
    got, url = receiver
    hook = client.webhooks.create_webhook(url, ["*"])
    got.secret = hook.secret
    client.create_model("churn")
    crashed = Dispatcher(registry.service, lease=3)
    assert 1 == len(crashed._claim())  # claimed, then the process "dies" before sending
    claimed = time.monotonic()
    survivor = Dispatcher(registry.service, backoff=0.01, allow=allow(url))
    try:
        assert 0 == survivor.run_once() or time.monotonic() - claimed > 3  # still leased
        drain(survivor, lambda: len(got.received) >= 1)
        assert time.monotonic() - claimed >= 3
    finally:
        survivor.stop()
    assert ["model.created"] == got.events()


def test_concurrent_dispatchers_send_each_delivery_once(
    registry: Registry, client: covex.Client, receiver: tuple[Receiver, str]
) -> None:
    got, url = receiver
    got.secret = client.webhooks.create_webhook(url, ["model.created"]).secret
    for i in range(40):
        client.create_model(f"m{i}")
    dispatchers = [Dispatcher(registry.service, batch=5, workers=2, allow=allow(url)) for _ in range(3)]
    threads = [threading.Thread(target=drain, args=(d, lambda: len(got.received) >= 40)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for d in dispatchers:
        d.stop()
    time.sleep(0.1)
    assert 40 == len(got.received) == len(got.event_ids())


def test_background_thread_delivers(registry: Registry, client: covex.Client, receiver: tuple[Receiver, str]) -> None:
    got, url = receiver
    got.secret = client.webhooks.create_webhook(url, ["model.created"]).secret
    with Dispatcher(registry.service, interval=0.02, allow=allow(url)):
        client.create_model("churn")
        deadline = time.monotonic() + 60
        while not got.received and time.monotonic() < deadline:
            time.sleep(0.02)
    assert ["model.created"] == got.events()


def test_a_url_no_client_can_send_ends_failed_without_a_traceback_loop(
    registry: Registry, client: covex.Client, caplog: pytest.LogCaptureFixture
) -> None:
    hook = client.webhooks.create_webhook("https://hooks.example.com/x", ["*"])
    with registry.engine.begin() as conn:  # stored before URLs were checked strictly, or behind the service's back
        bad = "https://hooks.example.com/x\r\nX-Injected: 1"
        conn.execute(update(webhooks).where(webhooks.c.id == hook.id).values(url=bad))
    client.create_model("churn")
    dispatcher = Dispatcher(registry.service, backoff=0.001, max_attempts=3)
    try:
        drain(dispatcher, lambda: bool(client.webhooks.list_deliveries(hook.id, status="failed").items))
        assert 0 == dispatcher.run_once()  # given up: not claimed again
    finally:
        dispatcher.stop()
    [failed] = client.webhooks.list_deliveries(hook.id)
    assert ["invalid URL"] * 3 == [a.error.split(":")[0] for a in failed.attempts]
    assert "'url' must not contain the character '\\r'" in failed.last_error
    assert [] == [r for r in caplog.records if r.exc_info]


def test_any_error_while_delivering_is_a_failed_attempt(registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    service = registry.service
    hook = service.webhooks.create_webhook("https://hooks.example.com/x", ["*"])
    service.create_model("churn")

    def broken(host: str, port: int) -> list[Any]:
        raise RuntimeError("a bug in the resolver")

    dispatcher = Dispatcher(service, backoff=0.001, max_attempts=2, resolver=broken)
    try:
        drain(dispatcher, lambda: bool(service.webhooks.list_deliveries(hook.id, status="failed").items))
    finally:
        dispatcher.stop()
    [failed] = service.webhooks.list_deliveries(hook.id)
    assert ["could not send (RuntimeError); see the dispatcher's log"] * 2 == [a.error for a in failed.attempts]
    # A bug is worth its traceback in the dispatcher's log: once per attempt, not once per poll forever.
    assert 2 == len([r for r in caplog.records if r.exc_info and "a bug in the resolver" in str(r.exc_info[1])])


def test_one_owners_backlog_does_not_keep_anothers_delivery_out_of_a_round(registry: Registry) -> None:
    service = registry.service
    service.access.create_user("eve")
    dispatcher = Dispatcher(service, batch=8, workers=8)
    due = [(i, "eve") for i in range(1, 40)] + [(40, "admin")]
    chosen = dispatcher._fair_share(due)
    assert 40 in chosen and 8 == len(chosen)
    assert list(range(1, 9)) == dispatcher._fair_share([(i, "eve") for i in range(1, 40)])  # alone: a full round
