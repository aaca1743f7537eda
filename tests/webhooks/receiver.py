"""A webhook receiver on loopback that checks every signature and records what arrived."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
