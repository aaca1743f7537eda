"""Webhooks over HTTP: the same methods as ``covex.service.webhooks.WebhookService``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from covex.domain.entities import Page
from covex.domain.webhooks import Delivery, NewWebhook, Webhook

if TYPE_CHECKING:
    from covex.client.http import HttpBackend

API = "/api/v1"


def _w(webhook_id: int) -> str:
    return f"{API}/webhooks/{int(webhook_id)}"


class HttpWebhooks:
    """Webhook subscriptions and their delivery log, on a Covex server."""

    def __init__(self, backend: HttpBackend) -> None:
        self.backend = backend

    def create_webhook(
        self, url: str, events: list[str], *, model: str | None = None, description: str = ""
    ) -> NewWebhook:
        body = {"url": url, "events": list(events), "model": model, "description": description}
        return NewWebhook.model_validate(self.backend._call("POST", f"{API}/webhooks", json=body))

    def list_webhooks(self, model: str | None = None) -> list[Webhook]:
        params = {"model": model} if model is not None else {}
        body = self.backend._call("GET", f"{API}/webhooks", params=params)
        return [Webhook.model_validate(w) for w in body["webhooks"]]

    def get_webhook(self, webhook_id: int) -> Webhook:
        return Webhook.model_validate(self.backend._call("GET", _w(webhook_id)))

    def update_webhook(
        self,
        webhook_id: int,
        *,
        active: bool | None = None,
        events: list[str] | None = None,
        url: str | None = None,
        description: str | None = None,
    ) -> Webhook:
        changes: dict[str, Any] = {"active": active, "events": events, "url": url, "description": description}
        body = {k: v for k, v in changes.items() if v is not None}
        return Webhook.model_validate(self.backend._call("PATCH", _w(webhook_id), json=body))

    def delete_webhook(self, webhook_id: int) -> None:
        self.backend._call("DELETE", _w(webhook_id))

    def rotate_secret(self, webhook_id: int) -> NewWebhook:
        return NewWebhook.model_validate(self.backend._call("POST", f"{_w(webhook_id)}/rotate-secret"))

    def list_deliveries(
        self,
        webhook_id: int,
        status: str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[Delivery]:
        params: dict[str, Any] = {"max_results": max_results}
        if status is not None:
            params["status"] = status
        if page_token:
            params["page_token"] = page_token
        body = self.backend._call("GET", f"{_w(webhook_id)}/deliveries", params=params)
        return Page[Delivery].model_validate(body)

    def redeliver(self, delivery_id: int) -> Delivery:
        return Delivery.model_validate(self.backend._call("POST", f"{API}/deliveries/{int(delivery_id)}/redeliver"))
