"""Request heads that are too large or too slow are refused at the connection, and cost others nothing.

One anonymous connection sending a 128 MB header once froze a server for everyone for 13 s, and
slow header lines held connections (and file descriptors) for ever.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from covex.server import create_app
from covex.service import open_service
from covex.settings import Settings
from tests import support


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("protocol")
    settings = Settings(uri=str(root), user="tester", header_timeout=2.0, dispatch_interval=0)
    service = open_service(settings)
    with support.server_thread(create_app(service, settings), settings) as served:
        yield served
    service.close()


def _connect(url: str) -> socket.socket:
    target = httpx.URL(url)
    return socket.create_connection((target.host, target.port), timeout=60)


def _answer(sock: socket.socket) -> tuple[int, dict[str, str]]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_a_huge_header_is_431_before_it_is_read_whole(url: str) -> None:
    with _connect(url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        try:
            while sent < 64 * 1024 * 1024:  # the server answers and closes long before this is all sent
                sock.sendall(b"a" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, body = _answer(sock)
    assert (431, "REQUEST_HEADERS_TOO_LARGE") == (status, body["error_code"])
    assert sent < 8 * 1024 * 1024
    assert 200 == httpx.get(f"{url}/health").status_code


def test_headers_just_under_the_limit_are_fine(url: str) -> None:
    headers = {f"X-H{i}": "v" * 1000 for i in range(60)}  # about 61 KB of 64 KiB
    assert 200 == httpx.get(f"{url}/health", headers=headers).status_code


def test_a_slow_head_is_408_and_the_connection_closed(url: str) -> None:
    others: list[float] = []

    def meanwhile() -> None:
        for _ in range(10):
            start = time.monotonic()
            httpx.get(f"{url}/health", timeout=30)
            others.append(time.monotonic() - start)
            time.sleep(0.1)

    with _connect(url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        checker = threading.Thread(target=meanwhile)
        checker.start()
        try:
            for _ in range(20):  # a header line now and then: before, this held the connection for ever
                sock.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, body = _answer(sock)
        checker.join(60)
    assert (408, "REQUEST_TIMEOUT") == (status, body["error_code"])
    assert 10 == len(others)


def test_a_silent_connection_is_closed(url: str) -> None:
    with _connect(url) as sock:
        sock.settimeout(60)
        assert b"" == sock.recv(1)  # closed by the server after the head timeout, with nothing to answer


def test_forwarded_for_is_not_trusted_unless_configured(tmp_path: Path) -> None:
    settings = Settings(uri=str(tmp_path), user="tester", anonymous_audit_interval=3600, dispatch_interval=0)
    service = open_service(settings)
    service.access.bootstrap("tester")
    with support.server_thread(create_app(service, settings), settings) as served:
        for i in range(20):
            assert 401 == httpx.get(f"{served}/api/v1/models", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
    records = service.audit.list_records(action="authenticate").items
    assert ["127.0.0.1"] == [json.loads(r.after or "{}")["source"] for r in records]
    service.close()
