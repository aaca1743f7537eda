"""Sends queued webhook deliveries: at least once, with retries that back off.

Changes write their deliveries into the outbox (``webhook_deliveries``) in their own
transaction, so no event is lost when a process stops. A dispatcher claims due rows
by setting ``lease_until`` in a short write transaction (PostgreSQL: ``FOR UPDATE
SKIP LOCKED``; SQLite: the writer lock serialises claims), POSTs outside any
transaction, then records the attempt. A lease that runs out (its process died
mid-delivery) makes the row due again, so several dispatchers across processes are
safe and every event is sent at least once.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import and_, insert, or_, select, update

from covex.domain.webhooks import signed_headers
from covex.service.base import ServiceBase, now_ms
from covex.store import database
from covex.store.schema import webhook_attempts, webhook_deliveries, webhooks

log = logging.getLogger("covex.webhooks")
MAX_ERROR = 500

D = webhook_deliveries.c


@dataclass(frozen=True)
class _Claimed:
    id: int
    event: str
    payload: str
    attempts: int
    url: str
    secret: str
    lease: int


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
    ) -> None:
        self.engine = service.engine
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
                # Redirects are not followed: a receiver that moved should be updated, not chased.
                self._http = httpx.Client(timeout=self.timeout, follow_redirects=False)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="covex-webhook")
            return self._http, self._pool

    # -- the outbox -----------------------------------------------------------------

    def _due(self, now: int) -> Any:
        active = select(webhooks.c.id).where(webhooks.c.active.is_(True))
        return and_(
            D.status == "pending",
            D.next_attempt_at <= now,
            or_(D.lease_until.is_(None), D.lease_until <= now),
            # A paused webhook keeps its queue until it is resumed.
            D.webhook_id.in_(active),
        )

    def _claim(self) -> list[_Claimed]:
        now = now_ms()
        # A read first: most polls find nothing, and then take no write lock at all.
        with database.transaction(self.engine, write=False) as conn:
            if conn.execute(select(D.id).where(self._due(now)).limit(1)).first() is None:
                return []
        lease = now + int(self.lease * 1000)
        with database.transaction(self.engine, write=True) as conn:
            ids = list(
                conn.execute(
                    select(D.id)
                    .where(self._due(now))
                    .order_by(D.next_attempt_at, D.id)
                    .limit(self.batch)
                    .with_for_update(skip_locked=True, of=webhook_deliveries)
                ).scalars()
            )
            if not ids:
                return []
            conn.execute(update(webhook_deliveries).where(D.id.in_(ids)).values(lease_until=lease))
            rows = conn.execute(
                select(D.id, D.event, D.payload, D.attempts, webhooks.c.url, webhooks.c.secret)
                .join(webhooks, webhooks.c.id == D.webhook_id)
                .where(D.id.in_(ids))
                .order_by(D.id)
            ).all()
        return [_Claimed(r.id, r.event, r.payload, r.attempts, r.url, r.secret, lease) for r in rows]

    def _deliver(self, http: httpx.Client, claimed: _Claimed) -> None:
        body = claimed.payload.encode()
        headers = signed_headers(claimed.secret, claimed.event, claimed.id, body)
        started = time.monotonic()
        status_code: int | None = None
        error = ""
        try:
            response = http.post(claimed.url, content=body, headers=headers)
            status_code = response.status_code
            if not response.is_success:
                # Not the body: whoever may read the delivery log must not read replies from inside the network.
                error = f"HTTP {status_code} {response.reason_phrase}".rstrip()
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_ms = int((time.monotonic() - started) * 1000)
        try:
            self._record(claimed, status_code, error[:MAX_ERROR], duration_ms)
        except Exception:  # the lease runs out and the delivery is retried: at least once
            log.exception("could not record webhook delivery %s", claimed.id)

    def _record(self, claimed: _Claimed, status_code: int | None, error: str, duration_ms: int) -> None:
        attempt = claimed.attempts + 1
        now = now_ms()
        values: dict[str, Any] = {
            "attempts": attempt,
            "lease_until": None,
            "last_status_code": status_code,
            "last_error": error,
        }
        if not error:
            values.update(status="delivered", delivered_timestamp=now)
        elif attempt >= self.max_attempts:
            values.update(status="failed")
            log.warning("webhook delivery %s failed after %d attempts: %s", claimed.id, attempt, error)
        else:
            values.update(next_attempt_at=now + self.delay_ms(attempt))
        with database.transaction(self.engine, write=True) as conn:
            owned = conn.execute(
                update(webhook_deliveries).where(D.id == claimed.id, D.lease_until == claimed.lease).values(**values)
            ).rowcount
            if not owned and conn.execute(select(D.id).where(D.id == claimed.id).with_for_update()).first() is None:
                return  # the webhook was deleted meanwhile
            # Without the lease (it ran out, or someone asked to redeliver) the outcome is only logged.
            conn.execute(
                insert(webhook_attempts).values(
                    delivery_id=claimed.id,
                    attempt=attempt,
                    timestamp=now,
                    status_code=status_code,
                    error=error,
                    duration_ms=duration_ms,
                )
            )

    def delay_ms(self, attempt: int) -> int:
        """How long to wait after failed attempt number ``attempt``."""
        seconds = min(self.backoff * 2.0**attempt, self.max_backoff)
        return int(seconds * 1000 * (1 + random.random() * 0.1))  # jitter: not for security
