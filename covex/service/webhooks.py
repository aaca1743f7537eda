"""Webhook subscriptions and their delivery log.

A global webhook (no model) takes admin rights; a webhook on one model takes the
manager role on it. Events are queued by ``ServiceBase._emit`` in the transaction of
each change (the outbox) and sent by ``covex.workers.webhooks.Dispatcher``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from covex.domain.access import RANK
from covex.domain.entities import Page
from covex.domain.errors import InvalidInput, NotFound
from covex.domain.names import validate_id
from covex.domain.webhooks import (
    STATUSES,
    Attempt,
    Delivery,
    NewWebhook,
    Webhook,
    validate_description,
    validate_events,
    validate_url,
)
from covex.service.base import ServiceBase, now_ms
from covex.store import search
from covex.store.schema import grants, models, webhook_attempts, webhook_deliveries, webhooks


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class WebhookService(ServiceBase):
    """Create, change and delete webhooks; list their deliveries; queue a delivery again."""

    def create_webhook(
        self, url: str, events: list[str], *, model: str | None = None, description: str = ""
    ) -> NewWebhook:
        """Subscribe ``url`` to ``events``; the returned ``secret`` signs every delivery and is shown once."""
        url = validate_url(url)
        events = validate_events(events)
        description = validate_description(description)
        secret = new_secret()
        with self._tx(write=True) as conn:
            model_id = None
            if model is None:
                self.require_admin("webhook.create", "webhook:*")
            else:
                row = self._model_row(conn, model)
                self.require(conn, row, "manager", "webhook.create")
                model_id = row.id
            webhook_id = conn.execute(
                insert(webhooks)
                .values(
                    url=url,
                    events=json.dumps(events),
                    model_id=model_id,
                    secret=secret,
                    description=description,
                    active=True,
                    created_by=self.actor,
                    creation_timestamp=now_ms(),
                )
                .returning(webhooks.c.id)
            ).scalar_one()
            hook = self._webhook(conn, self._webhook_row(conn, webhook_id))
            self._audit(conn, "webhook.create", f"webhook:{webhook_id}", None, _public(hook))
            return NewWebhook(**hook.model_dump(), secret=secret)

    def list_webhooks(self, model: str | None = None) -> list[Webhook]:
        """Webhooks the caller manages: all of them for admins, else those on models it manages."""
        q = _webhook_select().order_by(webhooks.c.id)
        with self._tx(write=False) as conn:
            if model is not None:
                row = self._model_row(conn, model)
                self.require(conn, row, "manager", "webhook.list")
                q = q.where(webhooks.c.model_id == row.id)
            elif not self.principal.is_admin:
                q = q.where(webhooks.c.model_id.is_not(None))
                managed = self._managed_model_ids(conn)
                if managed is not None:
                    q = q.where(webhooks.c.model_id.in_(managed))
            return [self._webhook(conn, r) for r in conn.execute(q)]

    def get_webhook(self, webhook_id: int) -> Webhook:
        with self._tx(write=False) as conn:
            row = self._owned(conn, webhook_id, "get_webhook")
            return self._webhook(conn, row)

    def update_webhook(
        self,
        webhook_id: int,
        *,
        active: bool | None = None,
        events: list[str] | None = None,
        url: str | None = None,
        description: str | None = None,
    ) -> Webhook:
        """Pause or resume a webhook, or change its events, URL or description."""
        values: dict[str, Any] = {}
        if active is not None:
            if not isinstance(active, bool):
                raise InvalidInput("'active' must be true or false")
            values["active"] = active
        if events is not None:
            values["events"] = json.dumps(validate_events(events))
        if url is not None:
            values["url"] = validate_url(url)
        if description is not None:
            values["description"] = validate_description(description)
        if not values:
            raise InvalidInput("give at least one of 'active', 'events', 'url' or 'description'")
        with self._tx(write=True) as conn:
            row = self._owned(conn, webhook_id, "webhook.update")
            before = _public(self._webhook(conn, row))
            conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(**values))
            hook = self._webhook(conn, self._webhook_row(conn, webhook_id))
            after = _public(hook)
            changed = [k for k in after if before[k] != after[k]]
            self._audit(
                conn,
                "webhook.update",
                f"webhook:{webhook_id}",
                {k: before[k] for k in changed},
                {k: after[k] for k in changed},
            )
            return hook

    def delete_webhook(self, webhook_id: int) -> None:
        """Delete a webhook with its queued deliveries and their log."""
        with self._tx(write=True) as conn:
            row = self._owned(conn, webhook_id, "webhook.delete")
            before = _public(self._webhook(conn, row))
            conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
            self._audit(conn, "webhook.delete", f"webhook:{webhook_id}", before, None)

    def rotate_secret(self, webhook_id: int) -> NewWebhook:
        """Replace the signing secret (the old one stops working at once); the new one is shown once."""
        secret = new_secret()
        with self._tx(write=True) as conn:
            self._owned(conn, webhook_id, "webhook.rotate")
            conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(secret=secret))
            hook = self._webhook(conn, self._webhook_row(conn, webhook_id))
            self._audit(conn, "webhook.rotate", f"webhook:{webhook_id}", None, {"secret": "rotated"})
            return NewWebhook(**hook.model_dump(), secret=secret)

    # -- deliveries -----------------------------------------------------------------

    def list_deliveries(
        self,
        webhook_id: int,
        status: str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[Delivery]:
        """A webhook's deliveries, newest first, each with its attempts."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"'status' must be one of {', '.join(STATUSES)}, got {status!r}")
        limit = search.check_max_results(max_results)
        offset = search.decode_page_token(page_token)
        q = select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
        if status is not None:
            q = q.where(webhook_deliveries.c.status == status)
        q = q.order_by(webhook_deliveries.c.id.desc()).limit(limit + 1).offset(offset)
        with self._tx(write=False) as conn:
            self._owned(conn, webhook_id, "list_deliveries")
            rows = conn.execute(q).all()
            items = _deliveries(conn, rows[:limit])
        token = search.encode_page_token(offset + limit) if len(rows) > limit else None
        return Page[Delivery](items=items, next_page_token=token)

    def redeliver(self, delivery_id: int) -> Delivery:
        """Queue a delivery again, due now (after it failed, or when the receiver lost it)."""
        with self._tx(write=True) as conn:
            row = self._delivery_row(conn, delivery_id)
            self._owned(conn, row.webhook_id, "webhook.redeliver")
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .values(status="pending", next_attempt_at=now_ms(), lease_until=None)
            )
            self._audit(
                conn,
                "webhook.redeliver",
                f"webhook:{row.webhook_id}",
                {"delivery": delivery_id, "status": row.status},
                {"delivery": delivery_id, "status": "pending"},
            )
            return _deliveries(conn, [self._delivery_row(conn, delivery_id)])[0]

    # -- plumbing -------------------------------------------------------------------

    def _webhook_row(self, conn: Connection, webhook_id: int) -> Row[Any]:
        validate_id(webhook_id, "id")
        row = conn.execute(_webhook_select().where(webhooks.c.id == webhook_id)).one_or_none()
        if row is None:
            raise NotFound(f"webhook {webhook_id} does not exist")
        return row

    def _delivery_row(self, conn: Connection, delivery_id: int) -> Row[Any]:
        validate_id(delivery_id, "id")
        row = conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)).one_or_none()
        if row is None:
            raise NotFound(f"delivery {delivery_id} does not exist")
        return row

    def _owned(self, conn: Connection, webhook_id: int, action: str) -> Row[Any]:
        """The webhook, if the caller may manage it: admins, or the manager of its model."""
        row = self._webhook_row(conn, webhook_id)
        if row.model_id is None:
            self.require_admin(action, f"webhook:{webhook_id}")
        else:
            model = conn.execute(select(models).where(models.c.id == row.model_id)).one()
            self.require(conn, model, "manager", action)
        return row

    def _managed_model_ids(self, conn: Connection) -> Any:
        """Ids of models the caller manages (a subquery), or None for every model."""
        managed = [r for r in RANK if RANK[r] >= RANK["manager"]]
        base = select(grants.c.model_id).where(
            grants.c.subject.in_(self.principal.subjects), grants.c.role.in_(managed)
        )
        if conn.execute(base.where(grants.c.model_id.is_(None)).limit(1)).first():
            return None
        return base.where(grants.c.model_id.is_not(None))

    def _webhook(self, conn: Connection, row: Row[Any]) -> Webhook:
        return Webhook(
            id=row.id,
            url=row.url,
            events=json.loads(row.events),
            model=row.model_name,
            description=row.description,
            active=bool(row.active),
            created_by=row.created_by,
            creation_timestamp=row.creation_timestamp,
        )


def _webhook_select() -> Any:
    return select(webhooks, models.c.name.label("model_name")).outerjoin(models, models.c.id == webhooks.c.model_id)


def _public(hook: Webhook) -> dict[str, Any]:
    return hook.model_dump(exclude={"id", "created_by", "creation_timestamp"})


def _deliveries(conn: Connection, rows: Sequence[Row[Any]]) -> list[Delivery]:
    """Deliveries with their attempts, loaded in one query."""
    attempts: dict[int, list[Attempt]] = {r.id: [] for r in rows}
    if rows:
        q = (
            select(webhook_attempts)
            .where(webhook_attempts.c.delivery_id.in_(list(attempts)))
            .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.attempt, webhook_attempts.c.id)
        )
        for a in conn.execute(q):
            attempts[a.delivery_id].append(
                Attempt(
                    attempt=a.attempt,
                    timestamp=a.timestamp,
                    status_code=a.status_code,
                    error=a.error,
                    duration_ms=a.duration_ms,
                )
            )
    return [
        Delivery(
            id=r.id,
            webhook_id=r.webhook_id,
            event_id=r.event_id,
            event=r.event,
            status=r.status,
            payload=json.loads(r.payload),
            next_attempt_at=r.next_attempt_at,
            last_status_code=r.last_status_code,
            last_error=r.last_error,
            creation_timestamp=r.creation_timestamp,
            delivered_timestamp=r.delivered_timestamp,
            attempts=attempts[r.id],
        )
        for r in rows
    ]
