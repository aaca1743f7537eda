"""The ``covex deployments`` commands: where versions run (scoring servers, batch runs)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from covex.cli import output
from covex.cli.context import client
from covex.domain.deployments import Deployment

deployments_app = typer.Typer(
    help="Where versions run: scoring servers (covex serve) and batch runs (covex batch), as they record themselves.",
    no_args_is_help=True,
)
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(deployments_app, name="deployments")


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _status(d: Deployment) -> str:
    return f"{d.status} (stale)" if d.stale else d.status


def deployments_table(found: Sequence[Deployment]) -> None:
    table = Table("id", "model", "version", "kind", "status", "target", "started", "by", "heartbeat", "rows")
    for d in found:
        table.add_row(
            str(d.id),
            d.name,
            str(d.version),
            d.kind,
            _status(d),
            d.target,
            _when(d.started_at),
            d.started_by,
            _when(d.heartbeat_at),
            "" if d.rows is None else str(d.rows),
        )
    output.console.print(table)


@deployments_app.command("list")
def list_deployments(
    name: Annotated[str | None, typer.Argument(help="Only this model's deployments.")] = None,
    version: Annotated[int | None, typer.Option("--version", "-v", help="Only this version's (needs NAME).")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only those running and heard from recently.")] = False,
    as_json: Json = False,
) -> None:
    """Deployments, newest first; a serving process that stopped heartbeating shows as stale."""
    found = client().deployments(name, version, active=active)
    if as_json:
        output.emit_json(found)
    else:
        deployments_table(found)


@deployments_app.command("show")
def show_deployment(deployment_id: int, as_json: Json = False) -> None:
    """One deployment: what runs where, since when, and its last heartbeat and message."""
    d = client().get_deployment(deployment_id)
    if as_json:
        output.emit_json(d)
        return
    table = Table(show_header=False, box=None)
    rows = [
        ("id", str(d.id)),
        ("uri", d.uri),
        ("kind", d.kind),
        ("status", _status(d)),
        ("target", d.target),
        ("message", d.message),
        ("started by", d.started_by),
        ("started", _when(d.started_at)),
        ("heartbeat", _when(d.heartbeat_at)),
        ("stopped", _when(d.stopped_at)),
        ("rows", "" if d.rows is None else str(d.rows)),
        ("duration", "" if d.duration_s is None else f"{d.duration_s:.1f} s"),
    ]
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    output.console.print(table)
