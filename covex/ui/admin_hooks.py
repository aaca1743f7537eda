"""Administration of webhooks: subscriptions, their signing secrets (shown once) and their delivery log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from covex.domain.errors import InvalidInput
from covex.domain.webhooks import EVENTS, PREFIXES, STATUSES
from covex.ui.admin import admin_only, number
from covex.ui.session import Viewer
from covex.ui.web import PAGE_SIZE, Form, FormData, done, page, render

router = APIRouter(include_in_schema=False)
CHOICES = ("*", *(f"{p}.*" for p in PREFIXES), *EVENTS)


def _events(form: FormData) -> list[str]:
    return [e.strip() for e in form.all("events") if e.strip()]


@router.get("/admin/webhooks")
@page
def webhooks(request: Request, svc: Viewer) -> Response:
    admin_only(svc, "webhooks")
    return render(request, "admin_webhooks.html", svc, webhooks=svc.webhooks.list_webhooks(), choices=CHOICES)


@router.post("/admin/webhooks")
@page
def create_webhook(request: Request, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "webhooks")
    made = svc.webhooks.create_webhook(
        form.text("url"), _events(form), model=form.text("model") or None, description=form.text("description")
    )
    # Rendered, not redirected: the signing secret exists only in this answer.
    return render(
        request, "admin_secret.html", svc, status=201, webhook=made, secret=made.secret, settle="/admin/webhooks"
    )


@router.get("/admin/webhooks/{webhook_id}")
@page
def webhook(request: Request, webhook_id: str, svc: Viewer, status: str = "", page_token: str = "") -> Response:
    admin_only(svc, "webhooks")
    found = svc.webhooks.get_webhook(number(webhook_id, "id"))
    if status and status not in STATUSES:
        raise InvalidInput(f"'status' must be one of {', '.join(STATUSES)}, got {status[:40]!r}")
    log = svc.webhooks.list_deliveries(found.id, status or None, PAGE_SIZE, page_token or None)
    context: dict[str, Any] = {"choices": CHOICES, "statuses": STATUSES, "chosen_status": status}
    return render(request, "admin_webhook.html", svc, hook=found, deliveries=log, **context)


@router.post("/admin/webhooks/{webhook_id}")
@page
def update_webhook(request: Request, webhook_id: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "webhooks")
    found = number(webhook_id, "id")
    svc.webhooks.update_webhook(found, url=form.text("url"), events=_events(form), description=form.text("description"))
    return done(request, f"/admin/webhooks/{found}", f"Saved webhook {found}.")


@router.post("/admin/webhooks/{webhook_id}/active")
@page
def set_active(request: Request, webhook_id: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "webhooks")
    found, active = number(webhook_id, "id"), form.text("active")
    if active not in ("yes", "no"):
        raise InvalidInput(f"'active' must be 'yes' or 'no', got {active[:40]!r}")
    made = svc.webhooks.update_webhook(found, active=active == "yes")
    said = "enabled: it receives events again" if made.active else "disabled: it receives no events"
    return done(request, form.get("back") or "/admin/webhooks", f"Webhook {found} {said}.")


@router.post("/admin/webhooks/{webhook_id}/rotate")
@page
def rotate_secret(request: Request, webhook_id: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "webhooks")
    made = svc.webhooks.rotate_secret(number(webhook_id, "id"))
    return render(
        request,
        "admin_secret.html",
        svc,
        webhook=made,
        secret=made.secret,
        rotated=True,
        settle=f"/admin/webhooks/{made.id}",
    )


@router.post("/admin/webhooks/{webhook_id}/delete")
@page
def delete_webhook(request: Request, webhook_id: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "webhooks")
    found = number(webhook_id, "id")
    svc.webhooks.delete_webhook(found)
    return done(request, "/admin/webhooks", f"Deleted webhook {found} and its delivery log.")


@router.post("/admin/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
@page
def redeliver(request: Request, webhook_id: str, delivery_id: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "webhooks")
    number(webhook_id, "id")
    found = svc.webhooks.redeliver(number(delivery_id, "delivery"))  # the service checks its webhook's rights
    return done(request, f"/admin/webhooks/{found.webhook_id}", f"Delivery {found.id} is queued again.")
