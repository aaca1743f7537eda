"""The ``covex webhooks`` commands: subscriptions, their delivery log, and a standalone dispatcher."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from covex.cli import output
from covex.cli.context import client, local_settings, open_local
from covex.client.governance import Webhooks
from covex.domain import errors
from covex.domain.webhooks import Delivery, NewWebhook, Webhook

webhooks_app = typer.Typer(
    help="Send registry events (stage changes, new versions, approvals...) to URLs, signed; see their deliveries.",
    no_args_is_help=True,
)
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Events = Annotated[
    list[str] | None,
    typer.Option("--event", "-e", help="Event name, `prefix.*` or `*` (repeatable), e.g. stage.changed"),
]


def register(app: typer.Typer) -> None:
    """Add this area's commands and groups to the main app."""
    app.add_typer(webhooks_app, name="webhooks")


def _webhooks() -> Webhooks:
    return client().webhooks


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _show(hook: Webhook) -> None:
    table = Table(show_header=False, box=None)
    for key, value in (
        ("id", str(hook.id)),
        ("url", hook.url),
        ("events", ", ".join(hook.events)),
        ("model", hook.model or "(every model)"),
        ("active", "yes" if hook.active else "no (paused)"),
        ("description", hook.description),
        ("created by", hook.created_by),
        ("created", _when(hook.creation_timestamp)),
    ):
        table.add_row(f"[bold]{key}[/]", value)
    output.console.print(table)


def _print_secret(hook: NewWebhook, verb: str) -> None:
    output.console.print(
        f"{verb} webhook {hook.id} → {hook.url}. Its signing secret, shown only now:\n\n    {hook.secret}\n\n"
        "Receivers check the Covex-Signature header with it (covex.domain.webhooks.verify_signature).",
        highlight=False,
    )


@webhooks_app.command("create")
def create(
    url: str,
    event: Events = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model's events.")] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    as_json: Json = False,
) -> None:
    """Subscribe URL to events; prints the signing secret once."""
    if not event:
        raise errors.InvalidInput("give at least one '--event' (e.g. --event stage.changed, --event '*')")
    hook = _webhooks().create_webhook(url, event, model=model, description=description)
    output.emit_json(hook) if as_json else _print_secret(hook, "created")


@webhooks_app.command("list")
def list_(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only webhooks on this model.")] = None,
    as_json: Json = False,
) -> None:
    """List the webhooks you manage."""
    hooks: Sequence[Webhook] = _webhooks().list_webhooks(model)
    if as_json:
        output.emit_json(list(hooks))
        return
    table = Table("id", "url", "events", "model", "active", "description")
    for h in hooks:
        table.add_row(str(h.id), h.url, ", ".join(h.events), h.model or "*", "yes" if h.active else "no", h.description)
    output.console.print(table)


@webhooks_app.command("show")
def show(webhook_id: Annotated[int, typer.Argument(metavar="ID")], as_json: Json = False) -> None:
    """Show one webhook (never its secret)."""
    hook = _webhooks().get_webhook(webhook_id)
    output.emit_json(hook) if as_json else _show(hook)


@webhooks_app.command("update")
def update(
    webhook_id: Annotated[int, typer.Argument(metavar="ID")],
    active: Annotated[bool | None, typer.Option("--active/--inactive", help="Resume or pause deliveries.")] = None,
    event: Events = None,
    url: Annotated[str | None, typer.Option("--url")] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    as_json: Json = False,
) -> None:
    """Pause or resume a webhook, or replace its events, URL or description."""
    hook = _webhooks().update_webhook(webhook_id, active=active, events=event or None, url=url, description=description)
    output.emit_json(hook) if as_json else _show(hook)


@webhooks_app.command("delete")
def delete(webhook_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Delete a webhook with its queued deliveries."""
    _webhooks().delete_webhook(webhook_id)
    output.console.print(f"deleted webhook {webhook_id}")


@webhooks_app.command("rotate-secret")
def rotate_secret(webhook_id: Annotated[int, typer.Argument(metavar="ID")], as_json: Json = False) -> None:
    """Replace a webhook's signing secret (the old one stops working now); prints the new one once."""
    hook = _webhooks().rotate_secret(webhook_id)
    output.emit_json(hook) if as_json else _print_secret(hook, "re-keyed")


@webhooks_app.command("deliveries")
def deliveries(
    webhook_id: Annotated[int, typer.Argument(metavar="ID")],
    status: Annotated[str | None, typer.Option("--status", "-s", help="pending, delivered or failed")] = None,
    max_results: Annotated[int, typer.Option("--max-results", "-n", help="Page size.")] = 100,
    page_token: Annotated[str | None, typer.Option("--page-token")] = None,
    as_json: Json = False,
) -> None:
    """A webhook's deliveries, newest first, with their attempts."""
    page = _webhooks().list_deliveries(webhook_id, status, max_results, page_token)
    if as_json:
        output.emit_json(page)
        return
    table = Table("id", "event", "status", "attempts", "last", "next attempt", "created", "delivered")
    for d in page.items:
        table.add_row(
            str(d.id),
            d.event,
            d.status,
            str(len(d.attempts)),
            _last(d),
            _when(d.next_attempt_at) if d.status == "pending" else "-",
            _when(d.creation_timestamp),
            _when(d.delivered_timestamp),
        )
    output.console.print(table)
    if page.next_page_token:
        output.console.print(f"more: --page-token {page.next_page_token}")


def _last(d: Delivery) -> str:
    if d.last_status_code is None and not d.last_error:
        return "-"
    return d.last_error[:80] if d.last_error else str(d.last_status_code)


@webhooks_app.command("redeliver")
def redeliver(delivery_id: Annotated[int, typer.Argument(metavar="DELIVERY_ID")]) -> None:
    """Queue a delivery again, due now."""
    d = _webhooks().redeliver(delivery_id)
    output.console.print(f"delivery {d.id} ({d.event}) queued again")


@webhooks_app.command("dispatch")
def dispatch(
    once: Annotated[bool, typer.Option("--once", help="Send what is due now, then exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls when nothing is due.")] = 0.5,
    backoff: Annotated[float, typer.Option(help="After failed attempt n, wait BACKOFF * 2**n seconds.")] = 1.0,
    max_attempts: Annotated[int, typer.Option(help="Mark a delivery failed after this many attempts.")] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds per HTTP request.")] = 10.0,
) -> None:
    """Send queued webhook deliveries from the database (next to, or instead of, the server's own sender).

    Needs direct access to the database (--uri is a folder or a database URL). Any number
    may run at once: each delivery is claimed by one of them at a time. Internal addresses
    (loopback, private, link-local...) are refused unless COVEX_WEBHOOK_ALLOW lists them.
    """
    from covex.domain.netguard import Allowlist
    from covex.workers.webhooks import Dispatcher

    settings = local_settings("webhooks dispatch")
    allow = Allowlist.parse(settings.webhook_allow)  # a typo stops here, before any work
    service = open_local(settings)
    dispatcher = Dispatcher(
        service, interval=interval, backoff=backoff, max_attempts=max_attempts, timeout=timeout, allow=allow
    )
    try:
        if once:
            sent = 0
            while batch := dispatcher.run_once():
                sent += batch
            output.console.print(f"delivery attempts made: {sent}")
            return
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        output.err_console.print(
            f"sending webhooks from {settings.database_url} (every {interval} s when idle); Ctrl-C stops",
            highlight=False,
        )
        dispatcher.start()
        stopping.wait()
    finally:
        dispatcher.stop()
        service.close()
