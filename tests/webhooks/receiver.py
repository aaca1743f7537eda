"""A webhook receiver on loopback that checks every signature and records what arrived; raw TCP peers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from covex.domain.webhooks import verify_signature


@dataclass
class Received:
    event: str
    delivery: str
    payload: dict[str, Any]
    valid: bool


@dataclass
class Receiver:
    """What a receiver saw. ``secret`` checks signatures; the first ``fail`` requests get a 500."""

    secret: str = ""
    fail: int = 0
    received: list[Received] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[str]:
        with self.lock:
            return [r.event for r in self.received]

    def event_ids(self) -> set[str]:
        with self.lock:
            return {r.payload["id"] for r in self.received}


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with receiver.lock:
                receiver.requests += 1
                failing = receiver.requests <= receiver.fail
                if not failing:
                    valid = verify_signature(
                        receiver.secret, self.headers["Covex-Timestamp"], body, self.headers["Covex-Signature"]
                    )
                    receiver.received.append(
                        Received(self.headers["Covex-Event"], self.headers["Covex-Delivery"], json.loads(body), valid)
                    )
            self.send_response(500 if failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def receiving(receiver: Receiver, port: int = 0) -> Iterator[str]:
    """Serve ``receiver`` on a loopback port (``port`` 0: any free one); yield its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def allow(url: str) -> list[str]:
    """The allowlist entry (``host:port``) that lets webhooks reach the receiver at ``url``."""
    parts = urlsplit(url)
    return [f"{parts.hostname}:{parts.port}"]


@dataclass
class Peer:
    """What a ``tcp_server`` saw: connections accepted, and whether a client hung up on it."""

    accepted: int = 0
    hung_up: bool = False


@contextmanager
def tcp_server(answer: Callable[[socket.socket, Peer], None] | None = None) -> Iterator[tuple[int, Peer]]:
    """A raw TCP server on a loopback port; yield (port, peer).

    Each connection is handed to ``answer`` in a thread; without ``answer`` connections are
    never accepted (the kernel still completes the handshake, so a client waits for a reply).
    """
    peer = Peer()
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            peer.accepted += 1
            assert answer is not None
            threading.Thread(target=_answer, args=(answer, conn, peer), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    if answer is not None:
        thread.start()
    try:
        yield listener.getsockname()[1], peer
    finally:
        stopping.set()
        if answer is not None:
            thread.join(5)
        listener.close()


def _answer(answer: Callable[[socket.socket, Peer], None], conn: socket.socket, peer: Peer) -> None:
    with conn:
        conn.settimeout(10)
        try:
            answer(conn, peer)
        except OSError:  # the client went away
            peer.hung_up = True


def read_request(conn: socket.socket) -> bytes:
    """Read one request's head (and ignore its body): enough to answer it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
