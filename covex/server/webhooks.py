"""Routes of API v1 for webhooks, and the server's delivery thread (``lifespan``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from covex.domain.entities import Page
from covex.domain.netguard import Allowlist
from covex.domain.webhooks import MAX_DESCRIPTION, MAX_URL_LENGTH, Delivery, NewWebhook, Webhook
from covex.server.routes import API, ERRORS, Service, render
from covex.server.schemas import ModelName, QueryInt, RequestBody, text
from covex.service.base import ServiceBase
from covex.workers.webhooks import Dispatcher

router = APIRouter(tags=["webhooks"])
WEBHOOK = f"{API}/webhooks/{{webhook_id:int}}"


Url = Annotated[str, Field(json_schema_extra=text(MAX_URL_LENGTH))]


class CreateWebhook(RequestBody):
    url: Url
    events: list[str]
    model: ModelName | None = None
    description: Annotated[str, Field(json_schema_extra=text(MAX_DESCRIPTION))] = ""


class UpdateWebhook(RequestBody):
    active: bool | None = None
    events: list[str] | None = None
    url: Url | None = None
    description: Annotated[str, Field(json_schema_extra=text(MAX_DESCRIPTION))] | None = None


class WebhookList(BaseModel):
    webhooks: list[Webhook]


@router.post(f"{API}/webhooks", response_model=NewWebhook, status_code=201, responses=ERRORS)
def create_webhook(body: CreateWebhook, svc: Service) -> Response:
    """Subscribe a URL to events; the answer holds the signing secret, shown only this once."""
    hook = svc.webhooks.create_webhook(body.url, body.events, model=body.model, description=body.description)
    return render(hook, 201)


@router.get(f"{API}/webhooks", response_model=WebhookList, responses=ERRORS)
def list_webhooks(svc: Service, model: str | None = None) -> Response:
    return render(WebhookList(webhooks=svc.webhooks.list_webhooks(model)))


@router.get(WEBHOOK, response_model=Webhook, responses=ERRORS)
def get_webhook(webhook_id: int, svc: Service) -> Response:
    return render(svc.webhooks.get_webhook(webhook_id))


@router.patch(WEBHOOK, response_model=Webhook, responses=ERRORS)
def update_webhook(webhook_id: int, body: UpdateWebhook, svc: Service) -> Response:
    """Pause or resume a webhook, or change its events, URL or description."""
    return render(
        svc.webhooks.update_webhook(
            webhook_id, active=body.active, events=body.events, url=body.url, description=body.description
        )
    )


@router.delete(WEBHOOK, status_code=204, responses=ERRORS)
def delete_webhook(webhook_id: int, svc: Service) -> Response:
    svc.webhooks.delete_webhook(webhook_id)
    return Response(status_code=204)


@router.post(f"{WEBHOOK}/rotate-secret", response_model=NewWebhook, responses=ERRORS)
def rotate_secret(webhook_id: int, svc: Service) -> Response:
    """Replace the signing secret; the new one is shown only this once."""
    return render(svc.webhooks.rotate_secret(webhook_id))


@router.get(f"{WEBHOOK}/deliveries", response_model=Page[Delivery], responses=ERRORS)
def list_deliveries(
    webhook_id: int,
    svc: Service,
    status: str | None = None,
    max_results: QueryInt = 100,
    page_token: str | None = None,
) -> Response:
    """A webhook's deliveries, newest first, each with its attempts."""
    return render(svc.webhooks.list_deliveries(webhook_id, status, max_results, page_token))


@router.post(f"{API}/deliveries/{{delivery_id:int}}/redeliver", response_model=Delivery, responses=ERRORS)
def redeliver(delivery_id: int, svc: Service) -> Response:
    """Queue a delivery again, due now."""
    return render(svc.webhooks.redeliver(delivery_id))


# -- the delivery thread ----------------------------------------------------------------


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def lifespan(
    service: ServiceBase, *, interval: float = 0.5, allow: Iterable[str] = (), **options: Any
) -> Lifespan | None:
    """A FastAPI lifespan that runs a webhook ``Dispatcher`` while the app serves.

    Every server process may run one: claims are safe across processes. ``allow`` is the
    admin's allowlist of internal targets (``COVEX_WEBHOOK_ALLOW``); it is read now, so an
    entry that makes no sense stops the server at start, even one that sends nothing
    (``interval`` 0 or less: None, no lifespan) and leaves sending to ``covex webhooks dispatch``.
    """
    allowlist = Allowlist.parse(allow)
    if interval <= 0:
        return None

    @asynccontextmanager
    async def run(_: FastAPI) -> AsyncIterator[None]:
        dispatcher = Dispatcher(service, interval=interval, allow=allowlist, **options).start()
        try:
            yield
        finally:
            await run_in_threadpool(dispatcher.stop)

    return run
