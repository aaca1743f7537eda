"""Webhooks cannot reach into the server's network, nor tell who reads the log what answers there.

Every test is an attack a model manager could make: point a webhook at loopback, a
private or metadata address (literally, in an IPv6 disguise, or behind a name, even one
that changes what it resolves to), then read the delivery log. Receivers are real
servers on loopback ports.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Iterator
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import pytest

from covex.domain.entities import Page
from covex.domain.netguard import IPAddress
from covex.domain.webhooks import Delivery
from covex.workers.webhooks import CouldNotResolve, Dispatcher, Resolver, resolve
from tests.conftest import Registry
from tests.support import free_port
from tests.webhooks.receiver import Peer, Receiver, read_request, receiving, tcp_server

HINT = "an admin can allow it with COVEX_WEBHOOK_ALLOW"


@pytest.fixture
def registry(registries: Callable[[str, str], Registry]) -> Registry:
    # What is refused depends on the dispatcher only, not on the backend or database.
    reg = registries("embedded", "sqlite")
    reg.reset()
    return reg


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    got = Receiver()
    with receiving(got) as url:
        port = urlsplit(url).port
        assert port is not None
        yield got, port


class FakeDNS:
    """A resolver whose answers the test sets (and changes), counting the questions."""

    def __init__(self, **answers: list[str]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        if host not in self.answers:
            raise CouldNotResolve(host)
        return [ip_address(a) for a in self.answers[host]]


def deliver(
    registry: Registry,
    url: str,
    *,
    allow: Iterable[str] = (),
    resolver: Resolver = resolve,
    rounds: int = 1,
    **options: Any,
) -> Delivery:
    """Subscribe ``url``, make one event, try to deliver it ``rounds`` times; the delivery as logged."""
    service = registry.service
    hook = service.webhooks.create_webhook(url, ["model.created"])
    service.create_model(f"m{time.monotonic_ns()}")
    dispatcher = Dispatcher(service, allow=allow, resolver=resolver, backoff=0.001, **options)
    try:
        for _ in range(rounds):
            deadline = time.monotonic() + 120
            while not dispatcher.run_once():  # the next attempt is due in a few ms
                assert time.monotonic() < deadline, "the delivery was not retried"
                time.sleep(0.005)
    finally:
        dispatcher.stop()
    page: Page[Delivery] = service.webhooks.list_deliveries(hook.id)
    [delivery] = page.items
    return delivery


# -- refused by default -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("[::1]", "a loopback address"),
        ("0.0.0.0", "an unspecified address"),
        ("[::ffff:127.0.0.1]", "an IPv4-mapped form of a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.0.1", "a private address"),
        ("[fd12:3456::1]", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("[fd00:ec2::254]", "a cloud metadata address"),
        ("[::ffff:169.254.169.254]", "an IPv4-mapped form of a cloud metadata address"),
        ("169.254.0.1", "a link-local address"),
        ("100.64.0.1", "a carrier-grade NAT (shared) address"),
        ("224.0.0.1", "a multicast address"),
    ],
)
def test_internal_targets_are_refused_and_the_log_says_so(
    registry: Registry, receiver: tuple[Receiver, int], host: str, reason: str
) -> None:
    got, port = receiver  # listening on 127.0.0.1, which several of these reach
    delivery = deliver(registry, f"http://{host}:{port}/hook", timeout=2)
    [attempt] = delivery.attempts
    assert f"refused: {host.strip('[]')} is {reason}; {HINT}" == attempt.error
    assert ("pending", None) == (delivery.status, attempt.status_code)
    assert 0 == got.requests


def test_a_name_that_resolves_to_loopback_is_refused_at_delivery(
    registry: Registry, receiver: tuple[Receiver, int]
) -> None:
    got, port = receiver
    delivery = deliver(registry, f"http://localhost:{port}/hook")  # the system's resolver
    assert f"refused: localhost resolves to a loopback address; {HINT}" == delivery.attempts[0].error
    assert 0 == got.requests


def test_dns_rebinding_gains_nothing(registry: Registry, receiver: tuple[Receiver, int]) -> None:
    """A name answers "harmless" to whoever checks, then "internal" to whoever connects.

    127.0.0.2 plays the harmless answer (allowed here; nothing listens there) and 127.0.0.1,
    where the receiver listens, the internal one. Checking the URL and then letting the HTTP
    client resolve again would reach the receiver; connecting to the address checked does not.
    """
    got, port = receiver
    dns = FakeDNS(**{"rebind.example.com": ["127.0.0.2"]})

    def flip(host: str, port: int) -> list[IPAddress]:
        answer = dns(host, port)
        dns.answers[host] = ["127.0.0.1"]  # TTL 0: the next question gets the internal address
        return answer

    delivery = deliver(registry, f"http://rebind.example.com:{port}/hook", allow=["127.0.0.2/32"], resolver=flip)
    assert ["could not connect"] == [a.error for a in delivery.attempts]  # to 127.0.0.2, the address checked
    assert ["rebind.example.com"] == dns.asked
    assert 0 == got.requests

    # The next attempt resolves afresh, at delivery, and is refused.
    delivery = deliver(registry, f"http://rebind.example.com:{port}/hook", allow=["127.0.0.2/32"], resolver=dns)
    assert f"refused: rebind.example.com resolves to a loopback address; {HINT}" == delivery.attempts[0].error
    assert 0 == got.requests


def test_the_connection_goes_to_the_address_that_was_checked(
    registry: Registry, receiver: tuple[Receiver, int]
) -> None:
    # No one else can resolve this name: a delivery proves the client did not ask again.
    got, port = receiver
    dns = FakeDNS(**{"hooks.covex.invalid": ["127.0.0.1"]})
    delivery = deliver(registry, f"http://hooks.covex.invalid:{port}/hook", allow=["127.0.0.1/32"], resolver=dns)
    assert ("delivered", 200) == (delivery.status, delivery.last_status_code)
    assert 1 == got.requests and ["hooks.covex.invalid"] == dns.asked


def test_only_the_allowed_addresses_of_a_name_are_tried(registry: Registry, receiver: tuple[Receiver, int]) -> None:
    got, port = receiver
    dns = FakeDNS(**{"mixed.example.com": ["10.255.255.1", "127.0.0.1"]})  # 10/8 would hang if tried
    delivery = deliver(registry, f"http://mixed.example.com:{port}/hook", allow=[f"127.0.0.1:{port}"], resolver=dns)
    assert "delivered" == delivery.status and 1 == got.requests


# -- the admin's allowlist ----------------------------------------------------------------


@pytest.mark.parametrize("entry", ["127.0.0.1:{port}", "127.0.0.0/8", "127.0.0.1"])
def test_an_allowed_loopback_target_is_delivered(
    registry: Registry, receiver: tuple[Receiver, int], entry: str
) -> None:
    got, port = receiver
    got.secret = "unchecked"
    delivery = deliver(registry, f"http://127.0.0.1:{port}/hook", allow=[entry.format(port=port)])
    assert ("delivered", 200) == (delivery.status, delivery.last_status_code)
    assert 1 == got.requests


def test_an_allowed_name_is_delivered_to_whatever_it_resolves_to(
    registry: Registry, receiver: tuple[Receiver, int]
) -> None:
    got, port = receiver
    delivery = deliver(registry, f"http://localhost:{port}/hook", allow=[f"localhost:{port}"])
    assert "delivered" == delivery.status and 1 == got.requests


def test_an_allowed_endpoint_opens_only_its_port(registry: Registry, receiver: tuple[Receiver, int]) -> None:
    got, port = receiver
    delivery = deliver(registry, f"http://127.0.0.1:{port}/hook", allow=[f"127.0.0.1:{free_port()}"])
    assert f"refused: 127.0.0.1 is a loopback address; {HINT}" == delivery.attempts[0].error
    assert 0 == got.requests


# -- the log is not a port scanner --------------------------------------------------------


def test_a_closed_port_is_only_could_not_connect(registry: Registry) -> None:
    port = free_port()
    delivery = deliver(registry, f"http://127.0.0.1:{port}/hook", allow=[f"127.0.0.1:{port}"])
    assert "could not connect" == delivery.attempts[0].error


def test_a_silent_port_is_only_timed_out(registry: Registry) -> None:
    with tcp_server() as (port, _):  # accepts the connection, never answers
        delivery = deliver(registry, f"http://127.0.0.1:{port}/hook", allow=[f"127.0.0.1:{port}"], timeout=0.5)
    assert "timed out" == delivery.attempts[0].error


def test_a_banner_is_never_shown(registry: Registry) -> None:
    def ssh(conn: socket.socket, _: Peer) -> None:
        conn.sendall(b"SSH-2.0-OpenSSH_9.6p1 internal-bastion\r\n")

    with tcp_server(ssh) as (port, _):
        delivery = deliver(registry, f"http://127.0.0.1:{port}/hook", allow=[f"127.0.0.1:{port}"])
    assert "connection failed: closed or not answering HTTP" == delivery.attempts[0].error
    assert "SSH" not in delivery.last_error


def test_https_to_a_plain_port_is_only_a_tls_error(registry: Registry, receiver: tuple[Receiver, int]) -> None:
    _, port = receiver
    delivery = deliver(registry, f"https://127.0.0.1:{port}/hook", allow=[f"127.0.0.1:{port}"])
    assert "TLS error" == delivery.attempts[0].error


def test_redirects_are_not_followed(registry: Registry, receiver: tuple[Receiver, int]) -> None:
    got, inner = receiver

    def redirect(conn: socket.socket, _: Peer) -> None:
        read_request(conn)
        location = f"http://127.0.0.1:{inner}/hook".encode()
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")

    with tcp_server(redirect) as (port, peer):
        delivery = deliver(registry, f"http://127.0.0.1:{port}/hook", allow=["127.0.0.0/8"])
    assert ("HTTP 302 Found", 302) == (delivery.attempts[0].error, delivery.attempts[0].status_code)
    assert 1 == peer.accepted and 0 == got.requests


def test_an_endless_reply_is_cut_off(registry: Registry) -> None:
    """A receiver cannot hold a worker, or fill its memory, with an endless reply."""

    def endless(conn: socket.socket, peer: Peer) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"
        for _ in range(1024):  # a GiB, unless the client hangs up first
            conn.sendall(chunk)
        conn.sendall(b"0\r\n\r\n")

    with tcp_server(endless) as (port, peer):
        delivery = deliver(registry, f"http://127.0.0.1:{port}/hook", allow=[f"127.0.0.1:{port}"])
        deadline = time.monotonic() + 120
        while not peer.hung_up:
            assert time.monotonic() < deadline, "the dispatcher did not hang up"
            time.sleep(0.01)
    assert ("delivered", 200) == (delivery.status, delivery.last_status_code)


def test_a_short_reply_is_read_so_the_connection_is_reused(registry: Registry) -> None:
    def keep_alive(conn: socket.socket, _: Peer) -> None:
        while read_request(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    service = registry.service
    with tcp_server(keep_alive) as (port, peer):
        hook = service.webhooks.create_webhook(f"http://127.0.0.1:{port}/hook", ["model.created"])
        dispatcher = Dispatcher(service, allow=[f"127.0.0.1:{port}"], workers=1)
        try:
            for name in ("churn", "fraud"):
                service.create_model(name)
                assert 1 == dispatcher.run_once()
        finally:
            dispatcher.stop()
    assert {"delivered"} == {d.status for d in service.webhooks.list_deliveries(hook.id).items}
    assert 1 == peer.accepted
