"""The ``covex audit`` commands: list records, verify the hash chain, export it as JSON Lines."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from covex.cli import output
from covex.cli.context import client
from covex.domain import audit
from covex.domain.audit import AuditRecord, ChainReport
from covex.domain.errors import ChainBroken, InvalidInput

audit_app = typer.Typer(
    help="The tamper-evident audit trail: who did what, when; verify that nobody altered it.",
    no_args_is_help=True,
)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
When = Annotated[str | None, typer.Option(help="ISO date/time (local) or epoch milliseconds.")]


def register(app: typer.Typer) -> None:
    """Add this area's commands and groups to the main app."""
    app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def verify(
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Verify an export offline (no database or server needed); '-' reads stdin."),
    ] = None,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            help="SEQ:HASH printed by an earlier verify: fail unless that record is still part of the chain.",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Recompute the hash chain; name the first record altered, deleted or reordered (exit code 4).

    Keep the head it prints (SEQ:HASH) somewhere the registry's admins cannot write; a later
    `verify --expect-head SEQ:HASH` then also notices records cut off the end with the head rewound,
    or history rewritten up to that record.
    """
    if file is not None:
        report = _verify_file(file)  # offline: no client, no database
        if expect_head is not None:
            raise InvalidInput("'--expect-head' checks the live trail; for an export, compare its head line")
    else:
        report = client().audit.verify(expect_head)
    if as_json:
        output.emit_json({**report.model_dump(mode="json"), "head": report.head})
        if not report.ok:
            raise typer.Exit(4)  # as for ChainBroken below
        return
    if not report.ok:
        raise ChainBroken(report.describe())
    output.console.print(report.describe(), highlight=False, soft_wrap=True)


def _verify_file(file: Path) -> ChainReport:
    if str(file) == "-":
        return audit.verify_lines(sys.stdin.buffer)
    try:
        with file.open("rb") as f:
            return audit.verify_lines(f)
    except OSError as exc:
        raise InvalidInput(f"'--file' {str(file)!r} cannot be read: {exc.strerror}") from None


@audit_app.command("export")
def export(
    out: Annotated[Path | None, typer.Option("--output", "-o", help="File to write; default stdout.")] = None,
) -> None:
    """Write the whole trail as JSON Lines (then a head line); check it later with `verify --file`."""
    if out is None:
        stream: IO[bytes] | IO[str] = getattr(sys.stdout, "buffer", sys.stdout)
        count = client().audit.export(stream)
        output.err_console.print(f"exported {count} audit records", highlight=False)
        return
    try:
        count = client().audit.export(out)
    except OSError as exc:
        raise InvalidInput(f"'--output' {str(out)!r} cannot be written: {exc.strerror}") from None
    output.console.print(f"exported {count} audit records to {out}", highlight=False)


@audit_app.command("list")
def list_records(
    target: Annotated[str | None, typer.Option(help="e.g. model:churn (also its versions and aliases), user:*")] = None,
    actor: Annotated[str | None, typer.Option(help="Who acted.")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. stage.transition, or model.* by prefix")] = None,
    outcome: Annotated[str | None, typer.Option(help="ok or refused")] = None,
    since: When = None,
    until: When = None,
    max_results: Annotated[int, typer.Option("--max-results", "-n", help="Page size.")] = 100,
    page_token: Annotated[str | None, typer.Option("--page-token", help="Token printed by the previous page.")] = None,
    as_json: Json = False,
) -> None:
    """Audit records, newest first."""
    page = client().audit.list_records(
        target=target,
        actor=actor,
        action=action,
        outcome=outcome,
        since=_when(since, "since"),
        until=_when(until, "until"),
        max_results=max_results,
        page_token=page_token,
    )
    if as_json:
        output.emit_json(page)
        return
    _table(page.items)
    if page.next_page_token:
        output.console.print(f"more: --page-token {page.next_page_token}", highlight=False)


def _when(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    except ValueError:
        raise InvalidInput(f"'--{field}' must be an ISO date/time or epoch milliseconds, got {value!r}") from None


def _table(records: list[AuditRecord]) -> None:
    table = Table("seq", "time", "actor", "action", "target", "outcome", "change", "request")
    for r in records:
        table.add_row(
            str(r.seq),
            datetime.fromtimestamp(r.timestamp / 1000).strftime("%Y-%m-%d %H:%M:%S"),
            escape(r.actor),
            r.action,
            escape(r.target),
            r.outcome if r.outcome == "ok" else f"[red]{escape(r.outcome)}[/]",
            escape(_change(r.before, r.after)),
            r.request_id[:12],
        )
    output.console.print(table)


def _change(before: str | None, after: str | None) -> str:
    if before is None and after is None:
        return ""
    text = after if before is None else f"{before} → {after or '-'}"
    return str(text) if len(str(text)) <= 80 else str(text)[:77] + "..."
