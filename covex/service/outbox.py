"""The webhook outbox as a sender sees it: claim the due deliveries under a lease, record each attempt.

Changes queue their deliveries in their own transaction (``ServiceBase._emit``). A sender
(``covex.workers.webhooks.Dispatcher``) claims due rows here by setting ``lease_until`` in a
short write transaction (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: the writer lock
serialises claims), sends them outside any transaction, then records the outcome here. A lease
that runs out (its process died mid-delivery) makes the row due again, so several senders
across processes are safe and every event is sent at least once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, update

from covex.store import database
from covex.store.schema import webhook_attempts, webhook_deliveries, webhooks

D = webhook_deliveries.c


@dataclass(frozen=True)
class Claimed:
    """A delivery this sender holds until ``lease`` (ms): what to send, where, signed with what."""

    id: int
    event: str
    payload: str
    attempts: int
    url: str
    secret: str
    lease: int


class Outbox:
    """The deliveries queued in one registry's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(
        self, now: int, lease_ms: int, lookahead: int, choose: Callable[[list[tuple[int, str]]], list[int]]
    ) -> list[Claimed]:
        """Lease the deliveries ``choose`` picks among the ``lookahead`` oldest due (id, webhook owner) pairs."""
        # A read first: most polls find nothing, and then take no write lock at all.
        with database.transaction(self.engine, write=False) as conn:
            if conn.execute(select(D.id).where(_due(now)).limit(1)).first() is None:
                return []
        lease = now + lease_ms
        with database.transaction(self.engine, write=True) as conn:
            due = conn.execute(
                select(D.id, webhooks.c.created_by)
                .join(webhooks, webhooks.c.id == D.webhook_id)
                .where(_due(now))
                .order_by(D.next_attempt_at, D.id)
                .limit(lookahead)
                .with_for_update(skip_locked=True, of=webhook_deliveries)
            ).all()
            ids = choose([(r.id, r.created_by) for r in due])
            if not ids:
                return []
            conn.execute(update(webhook_deliveries).where(D.id.in_(ids)).values(lease_until=lease))
            rows = conn.execute(
                select(D.id, D.event, D.payload, D.attempts, webhooks.c.url, webhooks.c.secret)
                .join(webhooks, webhooks.c.id == D.webhook_id)
                .where(D.id.in_(ids))
                .order_by(D.id)
            ).all()
        return [Claimed(r.id, r.event, r.payload, r.attempts, r.url, r.secret, lease) for r in rows]

    def record(
        self,
        claimed: Claimed,
        *,
        now: int,
        status_code: int | None,
        error: str,
        duration_ms: int,
        retry_at: int | None,
    ) -> None:
        """Record one attempt: delivered without ``error``, else due again at ``retry_at`` (None: failed for good)."""
        values: dict[str, Any] = {
            "attempts": claimed.attempts + 1,
            "lease_until": None,
            "last_status_code": status_code,
            "last_error": error,
        }
        if not error:
            values.update(status="delivered", delivered_timestamp=now)
        elif retry_at is None:
            values.update(status="failed")
        else:
            values.update(next_attempt_at=retry_at)
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
                    attempt=claimed.attempts + 1,
                    timestamp=now,
                    status_code=status_code,
                    error=error,
                    duration_ms=duration_ms,
                )
            )


def _due(now: int) -> Any:
    active = select(webhooks.c.id).where(webhooks.c.active.is_(True))
    return and_(
        D.status == "pending",
        D.next_attempt_at <= now,
        or_(D.lease_until.is_(None), D.lease_until <= now),
        # A paused webhook keeps its queue until it is resumed.
        D.webhook_id.in_(active),
    )
