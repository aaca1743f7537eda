"""The ``covex evaluations`` commands: the comparisons and explanations stored on versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from covex.cli import output
from covex.cli.context import client
from covex.domain.evaluations import KINDS, summary

evaluations_app = typer.Typer(
    help="Evaluations stored on versions: `covex compare` results and `covex explain` importances.",
    no_args_is_help=True,
)
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(evaluations_app, name="evaluations")


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


@evaluations_app.command("list")
def list_evaluations(
    ref: Annotated[
        str, typer.Argument(help="A version's URI (models:/churn/3, models:/churn@champion) or a model name.")
    ],
    kind: Annotated[str | None, typer.Option("--kind", help=f"Only this kind: {', '.join(KINDS)}.")] = None,
    max_results: Annotated[int, typer.Option("--max-results", "-n", help="At most this many, newest first.")] = 100,
    as_json: Json = False,
) -> None:
    """Evaluations of a version (or of every version of a model), newest first."""
    found = client().evaluations(ref, kind=kind, max_results=max_results)
    if as_json:
        output.emit_json(found)
        return
    table = Table("id", "version", "kind", "when", "rows", "data", "result")
    for e in found:
        data = e.source + (f" [{', '.join(e.data_tags)}]" if e.data_tags else "")
        cells = (e.uri, e.kind, _when(e.created_at), str(e.rows), data, summary(e.kind, e.body))
        table.add_row(str(e.id), *map(escape, cells))
    output.console.print(table)


@evaluations_app.command("show")
def show_evaluation(
    evaluation_id: Annotated[int, typer.Argument(help="The evaluation's id (from `covex evaluations list`).")],
) -> None:
    """One evaluation whole, as JSON: data digest, rows, metrics, intervals, tests, segments, differences."""
    output.emit_json(client().get_evaluation(evaluation_id))
