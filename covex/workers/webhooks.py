"""Sends queued webhook deliveries: at least once, with retries that back off.

The dispatcher claims due deliveries from the outbox (``covex.service.outbox``: a lease, so
several dispatchers across processes are safe), POSTs them outside any transaction from a
pool of threads, and records each attempt there.

Webhook URLs are chosen by model managers, so every connection goes through
``GuardedBackend``: the host is resolved here, at delivery, each address is checked
(``covex.domain.netguard``: no loopback, private, link-local, metadata... unless an admin
allowed it) and only a checked address is connected to, so DNS rebinding gains nothing.
The delivery log records a refusal as such and other failures only as a coarse category
(could not connect, timed out, TLS error...), so it cannot be used as a port scanner.
"""

from __future__ import annotations

import logging
import math
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address
from typing import Any

import httpcore
import httpx

from covex.domain.errors import InvalidInput
from covex.domain.netguard import Allowlist, IPAddress, check_target
from covex.domain.webhooks import signed_headers, validate_url
from covex.service.base import ServiceBase, now_ms
from covex.service.outbox import Claimed, Outbox

log = logging.getLogger("covex.webhooks")
MAX_ERROR = 500
# Due deliveries looked at per claim, in batches: enough to find other owners' behind one owner's backlog.
FAIR_SHARE_LOOKAHEAD = 8
MAX_REPLY = 64 * 1024  # bytes of a reply read (and dropped) so its connection is reused


Resolver = Callable[[str, int], Sequence[IPAddress]]
"""Host name and port to the addresses to try, in order (``socket.getaddrinfo`` by default)."""


def resolve(host: str, port: int) -> list[IPAddress]:
    """The TCP addresses of ``host`` (an IP address resolves to itself), without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise CouldNotResolve(host) from exc
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ip_address(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


class TargetRefused(Exception):
    """The webhook's host is, or resolves to, an address webhooks may not reach."""


class CouldNotResolve(Exception):
    """The webhook's host name does not resolve."""


class GuardedBackend(httpcore.NetworkBackend):
    """An httpcore network backend that connects only to addresses ``check_target`` allows.

    The check is made here, on the very address the socket connects to, rather than on the
    URL before the request: a name may resolve to a public address when checked and to an
    internal one a moment later. TLS is still verified against the URL's host name, because
    httpcore passes that (not the address) to ``start_tls``.
    """

    def __init__(self, allow: Allowlist, resolver: Resolver = resolve) -> None:
        self.allow = allow
        self.resolver = resolver
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        refused: str | None = None
        failure: Exception | None = None
        for address in self.resolver(host, port):
            reason = check_target(host, port, address, self.allow)
            if reason is not None:
                refused = refused or reason
                continue
            try:  # an IP address: the system resolver is not asked again
                return self._sockets.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # like socket.create_connection: try the next address
        if failure is not None:
            raise failure
        if refused is not None:
            raise TargetRefused(refused)
        raise CouldNotResolve(host)  # no address at all

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise TargetRefused("webhooks are sent over TCP only")

    def sleep(self, seconds: float) -> None:
        self._sockets.sleep(seconds)


class _GuardedTransport(httpx.BaseTransport):
    """``httpx.HTTPTransport`` without proxies, over an httpcore pool that uses ``GuardedBackend``.

    (``HTTPTransport`` takes no network backend.) No proxies from the environment either:
    a proxy would make the connections the backend cannot check. httpcore's exceptions are
    not mapped to httpx's; ``failure`` reads them.
    """

    def __init__(self, backend: GuardedBackend) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=backend,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        response = self._pool.handle_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=request.url.raw_scheme,
                    host=request.url.raw_host,
                    port=request.url.port,
                    target=request.url.raw_path,
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,  # the timeouts
            )
        )
        return httpx.Response(
            response.status, headers=response.headers, stream=_ResponseStream(response), extensions=response.extensions
        )

    def close(self) -> None:
        self._pool.close()


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.iter_stream()

    def close(self) -> None:
        self._response.close()


def failure(exc: BaseException) -> str:
    """What the delivery log says about an attempt that raised ``exc``.

    Never the exception's text: it would tell whoever reads the log what answers at the
    target (a banner, "connection refused" against "no route to host"...).
    """
    if isinstance(exc, TargetRefused):
        return f"refused: {exc}"
    if isinstance(exc, InvalidInput):  # a URL stored before URLs were validated strictly
        return f"invalid URL: {exc}"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol | httpcore.UnsupportedProtocol):
        return "invalid URL"
    if isinstance(exc, CouldNotResolve):
        return "could not resolve the host name"
    if isinstance(exc, httpcore.TimeoutException | httpx.TimeoutException):
        return "timed out"
    if any(isinstance(e, ssl.SSLError) for e in _chain(exc)):
        return "TLS error"
    if isinstance(exc, httpcore.ConnectError | httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpcore.NetworkError | httpcore.ProtocolError | httpx.TransportError):
        return "connection failed: closed or not answering HTTP"
    return f"could not send ({type(exc).__name__}); see the dispatcher's log"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from (httpcore wraps ``ssl.SSLError`` in ``ConnectError``)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        yield current
        current = current.__cause__ or current.__context__


def _discard(response: httpx.Response, limit: int, deadline: float) -> None:
    """Read and drop a short reply, so its connection can carry the next delivery.

    A longer or slower one is left unread (closing it closes the connection): a receiver
    must not hold a worker, or fill its memory, with an endless or dripping body.
    """
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read > limit or time.monotonic() > deadline:
            return


class Dispatcher:
    """Delivers the outbox in a background thread (``start``/``stop``) or one batch at a time (``run_once``).

    Args:
        service: any service over the registry's database.
        interval: seconds to wait when nothing is due.
        batch: deliveries claimed per round; ``workers`` threads send them.
        max_attempts: a delivery is marked ``failed`` after this many attempts.
        timeout: seconds per HTTP request.
        backoff: the wait after attempt ``n`` failed is ``backoff * 2**n`` seconds (+ up to 10 % jitter),
            at most ``max_backoff``.
        lease: seconds a claim lasts before another dispatcher may take the delivery over
            (default: long enough to send one whole batch).
        allow: internal targets webhooks may reach anyway (``host:port`` or CIDR entries, as in
            ``COVEX_WEBHOOK_ALLOW``); raises ``InvalidInput`` on an entry it cannot read.
        resolver: resolves host names (tests pass their own).
    """

    def __init__(
        self,
        service: ServiceBase,
        *,
        interval: float = 0.5,
        batch: int = 50,
        max_attempts: int = 8,
        timeout: float = 10.0,
        workers: int = 8,
        backoff: float = 1.0,
        max_backoff: float = 3600.0,
        lease: float | None = None,
        allow: Iterable[str] | Allowlist = (),
        resolver: Resolver = resolve,
    ) -> None:
        self.outbox = Outbox(service.engine)
        self.allow = allow if isinstance(allow, Allowlist) else Allowlist.parse(allow)
        self.resolver = resolver
        self.interval = interval
        self.batch = batch
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.workers = workers
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.lease = lease if lease is not None else timeout * math.ceil(batch / workers) + 30
        self._http: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> Dispatcher:
        """Deliver in a daemon thread until ``stop``."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name="covex-webhooks", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread (after its current batch) and close connections."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self.timeout * 2 + 5 if timeout is None else timeout)
            self._thread = None
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            if self._http is not None:
                self._http.close()
                self._http = None

    def __enter__(self) -> Dispatcher:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sent = self.run_once()
            except Exception:  # the database may be away for a while; keep trying
                log.exception("webhook dispatch failed; retrying in %.1f s", self.interval)
                sent = 0
            if not sent:
                self._stopping.wait(self.interval)

    def run_once(self) -> int:
        """Claim the due deliveries (up to ``batch``), send them, record the outcomes; return how many."""
        claimed = self._claim()
        if claimed:
            http, pool = self._clients()
            list(pool.map(lambda c: self._deliver(http, c), claimed))
        return len(claimed)

    def _clients(self) -> tuple[httpx.Client, ThreadPoolExecutor]:
        with self._lock:
            if self._http is None:
                # Redirects are not followed: a receiver that moved should be updated, not chased (and a
                # redirect to an internal address would be refused anyway). No credentials or proxies
                # from the environment (trust_env): webhook targets are the users', not the host's.
                self._http = httpx.Client(
                    timeout=self.timeout,
                    follow_redirects=False,
                    trust_env=False,
                    transport=_GuardedTransport(GuardedBackend(self.allow, self.resolver)),
                )
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="covex-webhook")
            return self._http, self._pool

    # -- the outbox -----------------------------------------------------------------

    def _claim(self) -> list[Claimed]:
        lease_ms = int(self.lease * 1000)
        return self.outbox.claim(now_ms(), lease_ms, self.batch * FAIR_SHARE_LOOKAHEAD, self._fair_share)

    def _fair_share(self, due: list[tuple[int, str]]) -> list[int]:
        """Up to ``batch`` of the due deliveries, oldest first, every webhook owner's first few included.

        One user's backlog (or slow, silent receivers) cannot keep the other users' deliveries
        out of a round: each owner's oldest go first, then the rest fill what is left.
        """
        share = max(1, self.workers // 4)
        taken: dict[str, int] = {}
        first: list[int] = []
        rest: list[int] = []
        for delivery_id, owner in due:
            if taken.get(owner, 0) < share:
                taken[owner] = taken.get(owner, 0) + 1
                first.append(delivery_id)
            else:
                rest.append(delivery_id)
        return sorted([*first, *rest][: self.batch])

    def _deliver(self, http: httpx.Client, claimed: Claimed) -> None:
        started = time.monotonic()
        status_code: int | None = None
        error = ""
        # Whatever goes wrong with one delivery is a failed attempt of that delivery, retried
        # with backoff and given up after max_attempts; never an exception that leaves the row
        # leased, to be claimed and fail the same way again and again.
        try:
            validate_url(claimed.url)
            body = claimed.payload.encode()
            headers = signed_headers(claimed.secret, claimed.event, claimed.id, body)
            with http.stream("POST", claimed.url, content=body, headers=headers) as response:
                status_code = response.status_code
                if not response.is_success:
                    # Not the body: whoever may read the delivery log must not read replies from inside the network.
                    error = f"HTTP {status_code} {response.reason_phrase}".rstrip()
                _discard(response, MAX_REPLY, started + self.timeout)
        except Exception as exc:
            error = failure(exc)
            if error.startswith("could not send"):  # not the network: a bug, worth its traceback
                log.exception("webhook delivery %s: unexpected error", claimed.id)
            else:  # the server's log may say more than the delivery log
                log.info("webhook delivery %s to %r: %s (%r)", claimed.id, claimed.url, error, exc)
        duration_ms = int((time.monotonic() - started) * 1000)
        try:
            self._record(claimed, status_code, error[:MAX_ERROR], duration_ms)
        except Exception:  # the lease runs out and the delivery is retried: at least once
            log.exception("could not record webhook delivery %s", claimed.id)

    def _record(self, claimed: Claimed, status_code: int | None, error: str, duration_ms: int) -> None:
        attempt = claimed.attempts + 1
        now = now_ms()
        retry_at = None if attempt >= self.max_attempts else now + self.delay_ms(attempt)
        if error and retry_at is None:
            log.warning("webhook delivery %s failed after %d attempts: %s", claimed.id, attempt, error)
        self.outbox.record(
            claimed, now=now, status_code=status_code, error=error, duration_ms=duration_ms, retry_at=retry_at
        )

    def delay_ms(self, attempt: int) -> int:
        """How long to wait after failed attempt number ``attempt``."""
        seconds = min(self.backoff * 2.0**attempt, self.max_backoff)
        return int(seconds * 1000 * (1 + random.random() * 0.1))  # jitter: not for security
