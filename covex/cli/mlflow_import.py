"""``covex import mlflow``: copy registered models from an MLflow tracking server."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated
from unittest.mock import patch

import typer

from covex.cli import output
from covex.cli.context import client, pairs
from covex.domain import errors

if TYPE_CHECKING:
    from covex.ml.importer import ImportReport

import_app = typer.Typer(help="Copy models from other registries into Covex.", no_args_is_help=True)


@import_app.command("mlflow")
def mlflow_import(
    tracking_uri: Annotated[
        str, typer.Option("--from", help="MLflow tracking URI, e.g. http://mlflow-host:5000", show_default=False)
    ],
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Import only this model (repeatable); default: all.")
    ] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option(
            "--stage",
            help="MLFLOW_STAGE=COVEX_STAGE (repeatable). Default: Staging=Test, None=the first stage, others as named.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Copy registered models with every version (files, tags, run metrics and params, signature,
    aliases, stages) from MLflow, keeping MLflow's version numbers. Running it again skips what is
    already imported and completes what failed. MLflow's Staging becomes Test.
    """
    from covex.extras import needs_extra, require_extra

    if "://" not in tracking_uri and tracking_uri != "databricks":
        # MLflow would take a bare word for a local folder of runs: not what anyone imports from.
        raise errors.InvalidInput(
            f"'--from' {tracking_uri!r} is not a tracking URI; give the MLflow server's URL, e.g. http://mlflow-host:5000"
        )
    require_extra("'covex import mlflow'", "ml")
    with needs_extra("'covex import mlflow'"):
        from mlflow.exceptions import MlflowException

        try:
            _import(tracking_uri, model, stage, as_json)
        except MlflowException as exc:  # what the importer does not already turn into a Covex error
            raise errors.CovexError(f"MLflow at {tracking_uri}: {exc.message.splitlines()[0]}") from None


def _import(tracking_uri: str, model: list[str] | None, stage: list[str] | None, as_json: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from covex.ml.importer import DEFAULT_STAGE_MAP, import_from_mlflow

    stage_map = {**DEFAULT_STAGE_MAP, **pairs(stage, "stage")}
    c = client()
    bar = Progress(
        TextColumn("importing {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=output.err_console,
        transient=True,
        disable=not output.err_console.is_terminal,  # no bar (nor its blank line) in logs and pipes
    )
    # MLflow's own per-download progress bars (with tqdm installed) would tear through ours.
    quiet_mlflow = {
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    }
    with bar, patch.dict(os.environ, quiet_mlflow):
        task = bar.add_task(tracking_uri, total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what or tracking_uri)

        report = import_from_mlflow(c, tracking_uri, model or None, stage_map=stage_map, progress=progress)
    if as_json:
        output.emit_json(report)
    else:
        _summary(report)
    if not report.ok:
        raise typer.Exit(1)


def _summary(report: ImportReport) -> None:
    n = report.counts
    lines = [
        f"imported from {report.tracking_uri}: {len(report.models)} models ({', '.join(report.models)})",
        f"versions: {n['copied']} copied, {n['metadata-only']} metadata only, {n['skipped']} skipped "
        f"(already there), {n['conflict']} conflicts, {n['failed']} failed",
        *(f"  {v.outcome}: models:/{v.model}/{v.version}: {v.detail}" for v in report.versions if v.detail),
        f"aliases set: {', '.join(report.aliases) or 'none'}",
        f"stages set: {', '.join(report.stages) or 'none'}",
        *(f"  not applied: {problem}" for problem in report.problems),
    ]
    for line in lines:  # messages are plain text, not Rich markup
        output.console.print(line, markup=False, highlight=False, soft_wrap=True)
