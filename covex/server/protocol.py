"""The HTTP connection itself: a request head that is too large or too slow is refused before it is parsed.

uvicorn's httptools protocol bounds neither: one connection could send a header of hundreds of
megabytes (parsed at a cost growing with its square, on the event loop every request shares),
or keep a connection open for ever by sending a header line now and then. This protocol counts
the bytes of each request head and times it, and answers 431 or 408 and closes the connection.

It also lets a blob upload's body gather up to ``UPLOAD_HIGH_WATER`` bytes before the socket stops
being read (uvicorn pauses at 64 KiB): a 1 GiB upload is then received in a few hundred reads
instead of 16,384 pauses and resumes, which more than doubles what one connection can take in.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from covex.domain.errors import CovexError, HeadersTooLarge, RequestTimeout
from covex.settings import Settings

END_OF_HEAD = b"\r\n\r\n"
BLOB_UPLOAD = (b"/api/v1/blobs/", b"/api/2.0/mlflow-artifacts/artifacts/")  # Covex's and MLflow's uploads
UPLOAD_HIGH_WATER = 4 * 1024 * 1024  # per uploading connection; the number of uploads at once is bounded
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing request heads over ``max_head`` bytes or ``head_timeout`` seconds."""

    max_head: ClassVar[int] = 64 * 1024
    head_timeout: ClassVar[float] = 30.0
    _in_head: bool
    _head_bytes: int
    _tail: bytes
    _head_timer: asyncio.TimerHandle | None
    _high_water: int = HIGH_WATER_LIMIT

    @classmethod
    def configure(cls, settings: Settings) -> None:
        """Set the limits for every connection this worker process serves (``app_from_environment``)."""
        cls.max_head, cls.head_timeout = settings.max_header_bytes, settings.header_timeout

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = None
        self._expect_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            seen = self._tail + data
            end = seen.find(END_OF_HEAD)
            # Only the head's own bytes count: a body may follow it in the same read.
            self._head_bytes += len(data) if end < 0 else end + len(END_OF_HEAD) - len(self._tail)
            if self._head_bytes > self.max_head:
                self._refuse(
                    HeadersTooLarge(f"the request line and headers may hold at most {self.max_head} bytes"), 431
                )
                return
            self._tail = seen[-(len(END_OF_HEAD) - 1) :]
        super().data_received(data)

    # The parser says where a head starts and ends (a refused request's body may still be arriving
    # in between: those bytes are not a head).

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:
            self._expect_head()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_timer()
        super().on_headers_complete()
        upload = self.parser.get_method() == b"PUT" and self.url.startswith(BLOB_UPLOAD)
        self._high_water = UPLOAD_HIGH_WATER if upload else HIGH_WATER_LIMIT

    def on_body(self, body: bytes) -> None:
        # uvicorn's own, with the high-water mark of this request instead of the module's.
        if (self.parser.should_upgrade() and self._should_upgrade()) or self.cycle.response_complete:
            return
        self.cycle.body += body
        if len(self.cycle.body) > self._high_water:
            self.flow.pause_reading()
        self.cycle.message_event.set()

    # -- helpers ----------------------------------------------------------------------

    def _expect_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""
        self._stop_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _stop_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and self._head_bytes:
            self._refuse(RequestTimeout(f"the request head took longer than {self.head_timeout:g} s"), 408)
        elif self._in_head:
            self.transport.close()  # connected, then silent: nothing to answer

    def _refuse(self, error: CovexError, status: int) -> None:
        body = json.dumps(error.to_dict()).encode()
        head = [
            b"HTTP/1.1 %d %s" % (status, _REASONS[status]),
            b"content-type: application/json",
            b"content-length: %d" % len(body),
            b"connection: close",
        ]
        self._stop_timer()
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()


def protocol(settings: Settings) -> type[GuardedHttpProtocol]:
    """The protocol with this server's limits (a class of its own, so servers in one process differ)."""
    limits = {"max_head": settings.max_header_bytes, "head_timeout": settings.header_timeout}
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), limits)


def uvicorn_options(settings: Settings, *, workers: int = 1) -> dict[str, Any]:
    """What ``uvicorn.run`` needs to serve with this protocol.

    Worker processes get the protocol by name (each one configures it from the environment as it
    builds its app: ``app_from_environment``). A client's address is the connection's, unless it
    comes from a proxy listed in ``forwarded_allow_ips``: then ``X-Forwarded-For`` names the
    client (uvicorn trusts 127.0.0.1 by default, which would let any local process say it is anyone).
    """
    http = GuardedHttpProtocol if workers > 1 else protocol(settings)
    if settings.forwarded_allow_ips:
        return {"http": http, "proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}
    return {"http": http, "proxy_headers": False}
