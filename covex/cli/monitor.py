"""The ``covex monitor`` commands: drift references, monitor configs, checks, labels and status."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from covex.cli import output
from covex.cli.context import client, listed
from covex.domain.errors import CovexError, InvalidInput
from covex.domain.monitoring import STATUSES, MonitorResult
from covex.extras import needs_extra

monitor_app = typer.Typer(
    help="Watch deployed versions: drift of inputs and predictions against the registered reference, "
    "and performance once outcomes arrive.",
    no_args_is_help=True,
)
config_app = typer.Typer(help="A model's monitor config (YAML): features, methods, thresholds, window.")
monitor_app.add_typer(config_app, name="config")
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Log = Annotated[
    str | None,
    typer.Option("--log", help="The inference log folder or URL (default: where the model's server records it)."),
]
FAIL_EXIT = 7  # a status --fail-on names: distinct from every error's code
ERRORS_EXIT = 1


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(monitor_app, name="monitor")


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def _window(r: MonitorResult) -> str:
    if r.window_start is None:
        return "-"
    return f"{_when(r.window_start)} - {_when(r.window_end)}"


def _summary(r: MonitorResult) -> str:
    body = r.body
    parts = []
    if body.get("drifted"):
        parts.append(f"drift: {', '.join(body['drifted'][:5])}")
    if body.get("warned"):
        parts.append(f"warn: {', '.join(body['warned'][:5])}")
    if body.get("prediction_drift"):
        parts.append("predictions drift")
    if body.get("degraded"):
        parts.append(f"degraded: {', '.join(body['degraded'])}")
    return "; ".join(parts)


def results_table(found: Sequence[MonitorResult]) -> None:
    table = Table("id", "model", "version", "status", "rows", "window", "checked", "findings")
    for r in found:
        table.add_row(
            str(r.id), r.name, str(r.version), r.status, str(r.rows), _window(r), _when(r.created_at), _summary(r)
        )
    output.console.print(table)


def show_result(r: MonitorResult) -> None:
    """A result as a person reads it: the status, then each column's statistic and verdict, then findings."""
    body = r.body
    share = body.get("share_drifted", 0.0)
    output.console.print(
        f"[bold]{r.uri}[/]: [bold]{r.status}[/] ({r.rows} rows from {r.source}; "
        f"{len(body.get('drifted', []))} of {len(body.get('features', {}))} features drift, {share:.0%})"
    )
    table = Table("column", "kind", "method", "value", "warn", "drift", "verdict", "missing")
    columns = [
        *body.get("features", {}).items(),
        *((f"prediction: {k}", v) for k, v in body.get("predictions", {}).items()),
    ]
    for name, f in columns:
        value = f.get("value")
        table.add_row(
            name,
            f.get("kind", ""),
            f.get("method", ""),
            "" if value is None else f"{value:.4g}",
            "" if "warn" not in f else f"{f['warn']:g}",
            "" if "drift" not in f else f"{f['drift']:g}",
            f.get("verdict", ""),
            "" if "missing_share" not in f else f"{f['missing_share']:.1%}",
        )
    output.console.print(table)
    perf = body.get("performance")
    if perf:
        output.console.print(f"performance: {perf.get('labelled', 0)} labelled row(s)")
        for name, m in (perf.get("metrics") or {}).items():
            base = ", ".join(f"{k} {m[k]:.4g}" for k in ("registered", "previous") if m.get(k) is not None)
            flag = "  DEGRADED" if m.get("degraded") else ""
            output.console.print(f"  {name}: {m['value']:.4g}{f' ({base})' if base else ''}{flag}")
        for note in [*perf.get("notes", []), *([perf["note"]] if perf.get("note") else [])]:
            output.console.print(f"  note: {note}")
    for finding in body.get("findings", []):
        output.console.print(f"finding: {finding['message']}")
    for action in body.get("actions", []):
        output.console.print(f"action: {action}")


def _fail_on(values: Sequence[str] | None) -> set[str]:
    wanted = {v.upper() for v in listed(list(values or ()))}
    unknown = sorted(wanted - set(STATUSES))
    if unknown:
        raise InvalidInput(f"'--fail-on' takes {', '.join(STATUSES)}, got {unknown[0]!r}")
    return wanted


FailOn = Annotated[
    list[str] | None,
    typer.Option("--fail-on", help=f"Exit {FAIL_EXIT} when a status is one of these (e.g. DRIFT,DEGRADED)."),
]


@monitor_app.command("reference")
def reference(
    uri: Annotated[str, typer.Argument(help="The version: models:/NAME/N or models:/NAME@ALIAS.")],
    data: Annotated[Path, typer.Option("--data", help="The reference (training) data: a .parquet or .csv file.")],
    predictions: Annotated[
        bool, typer.Option("--predictions/--no-predictions", help="Load the version and reference its predictions.")
    ] = True,
) -> None:
    """Store (or replace) a version's drift reference: the bins and counts checks compare with."""
    from covex.monitoring import make_reference

    with needs_extra("covex monitor"):
        found = make_reference(client(), uri, str(data), predictions=predictions)
    columns = found.get("columns", {})
    predicted = found.get("predictions") or {}
    output.console.print(
        f"reference of {uri}: {found.get('rows')} rows, {len(columns)} column(s)"
        + (f", predictions ({', '.join(predicted)})" if predicted else ", no predictions")
    )


@monitor_app.command("check")
def check(
    uri: Annotated[str, typer.Argument(help="The version: models:/NAME/N or models:/NAME@ALIAS.")],
    data: Annotated[
        str | None, typer.Option("--data", help="Current data: a .parquet/.csv file or folder (default: the log).")
    ] = None,
    predictions: Annotated[
        str | None, typer.Option("--predictions", help="The predictions of --data's rows (covex batch's output).")
    ] = None,
    prediction_column: Annotated[
        list[str] | None, typer.Option("--prediction-column", help="A column of --data holding predictions.")
    ] = None,
    log: Log = None,
    since: Annotated[str | None, typer.Option("--since", help="The last 30m, 24h, 7d... of the log.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Window start (ISO 8601, UTC by default).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Window end (ISO 8601; default now).")] = None,
    labels: Annotated[str | None, typer.Option("--labels", help="Outcomes to join (.parquet or .csv).")] = None,
    key: Annotated[
        list[str] | None, typer.Option("--key", help="Column(s) the labels join on (repeat, or a,b).")
    ] = None,
    target: Annotated[str | None, typer.Option("--target", help="The labels' outcome column.")] = None,
    record: Annotated[bool, typer.Option("--record/--dry-run", help="Record the result on the version.")] = True,
    id_column: Annotated[
        list[str] | None, typer.Option("--id-column", help="A column of --data that identifies rows (not a feature).")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="local (this process) or spark (counts per partition).")] = (
        "local"
    ),
    master: Annotated[
        str | None, typer.Option("--master", help="Spark master for --engine spark (default: local[*]).")
    ] = None,
    fail_on: FailOn = None,
    as_json: Json = False,
) -> None:
    """Check one version now: against a file, or its inference log in a window; record the result."""
    from covex.monitoring import check as run_check

    failing = _fail_on(fail_on)
    with needs_extra("covex monitor"):
        result = run_check(
            client(), uri, data=data, predictions=predictions, prediction_columns=prediction_column or (),
            log=log, since=since, start=start, end=end, labels=labels, key=listed(key) or ["request_id"], target=target,
            record=record, engine=engine, master=master, id_columns=listed(id_column),
        )  # fmt: skip
    output.emit_json(result) if as_json else show_result(result)
    if result.status in failing:
        raise typer.Exit(FAIL_EXIT)


@monitor_app.command("run")
def run(
    name: Annotated[str | None, typer.Argument(help="Only this model's deployments.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every model's active deployments.")] = False,
    log: Log = None,
    since: Annotated[str | None, typer.Option("--since", help="The window (default: each model's config).")] = None,
    fail_on: FailOn = None,
    as_json: Json = False,
) -> None:
    """Check every version an active serving deployment runs, once (for cron, Airflow, a CronJob)."""
    from covex.monitoring import run_all

    if (name is None) == (not every):
        raise InvalidInput("name a model, or give --all")
    failing = _fail_on(fail_on)
    if since is not None:
        from covex.domain.monitoring import parse_duration

        parse_duration(since, "since")  # once, before any deployment is checked
    with needs_extra("covex monitor"):
        done = run_all(client(), name, log=log, since=since)
    results = [r for _, r in done if isinstance(r, MonitorResult)]
    errors = [(uri, e) for uri, e in done if isinstance(e, CovexError)]
    if as_json:
        output.emit_json(
            {
                "results": [r.model_dump(mode="json") for r in results],
                "errors": [{"uri": uri, "error": e.message} for uri, e in errors],
            }
        )
    else:
        if not done:
            output.console.print("no active serving deployment to check")
        if results:
            results_table(results)
        for uri, e in errors:
            output.err_console.print(f"{uri}: {e.message}")
    if errors:
        raise typer.Exit(ERRORS_EXIT)
    if any(r.status in failing for r in results):
        raise typer.Exit(FAIL_EXIT)


@monitor_app.command("labels")
def labels(
    uri: Annotated[str, typer.Argument(help="The model's version (its serving deployment's log is used).")],
    file: Annotated[str, typer.Option("--file", help="The outcomes: a .parquet or .csv file.")],
    target: Annotated[str, typer.Option("--target", help="The outcome column.")],
    key: Annotated[
        list[str] | None, typer.Option("--key", help="Key column(s) (default: request_id; repeat, or a,b).")
    ] = None,
    log: Log = None,
) -> None:
    """Store outcomes beside the inference log; the next check joins them to logged predictions by key."""
    from covex.monitoring import add_labels

    with needs_extra("covex monitor"):
        kept = add_labels(client(), uri, file, key=listed(key) or ["request_id"], target=target, log=log)
    output.console.print(f"stored {kept} label(s) for {uri}")


@monitor_app.command("report")
def report(
    uri: Annotated[str, typer.Argument(help="The version: models:/NAME/N or models:/NAME@ALIAS.")],
    out: Annotated[Path | None, typer.Option("--out", help="Write one self-contained HTML page here.")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Write each plot as a PNG file into this folder.")] = None,
) -> None:
    """Draw a version's monitoring: distributions against the reference, drift and performance over time."""
    from covex.monitoring import report as pictures

    if out is None and png is None:
        raise InvalidInput("give --out FILE.html, --png DIR, or both")
    with needs_extra("covex monitor report"):
        results = pictures.history(client(), uri)
        if out is not None:
            output.console.print(f"wrote {pictures.write_html(results, out)}")
        if png is not None:
            files = pictures.write_png(results, png)
            output.console.print(f"wrote {len(files)} PNG file(s) to {png}")


@monitor_app.command("status")
def status(
    name: Annotated[str | None, typer.Argument(help="One model (default: every model you read).")] = None,
    version: Annotated[int | None, typer.Option("--version", "-v", help="This version's history (needs NAME).")] = None,
    history: Annotated[bool, typer.Option("--history", help="Every result, newest first (needs NAME).")] = False,
    as_json: Json = False,
) -> None:
    """The current status of each monitored version, or the history of one model's (or version's) results."""
    c = client()
    if history or version is not None:
        if name is None:
            raise InvalidInput("'--history' and '--version' need the model's NAME")
        found = c.monitoring.list_results(name, version)
        if version is not None and not found:
            c.get_version(name, version)  # a version that never existed is not found (exit 3)
    else:
        found = c.monitoring.monitor_status(name)
    if as_json:
        output.emit_json(found)
    elif not found:
        output.console.print("no monitoring result yet: run 'covex monitor check' or 'covex monitor run'")
    else:
        results_table(found)


@monitor_app.command("show")
def show(result_id: int, as_json: Json = False) -> None:
    """One result in full: every column's statistics and verdict, performance, findings."""
    found = client().monitoring.get_result(result_id)
    output.emit_json(found) if as_json else show_result(found)


@config_app.command("set")
def config_set(
    name: str,
    file: Annotated[Path, typer.Argument(help="The monitor config, YAML (an empty file resets to the defaults).")],
) -> None:
    """Set a model's monitor config; a bad one is refused whole, every problem with its line."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
    client().monitoring.set_monitor_config(name, text)
    output.console.print(f"monitor config of {name!r} set" if text.strip() else f"{name!r} monitors with the defaults")


@config_app.command("show")
def config_show(name: str, as_json: Json = False) -> None:
    """A model's monitor config as written, or the defaults it runs with."""
    from covex.domain.monitoring import MonitorConfig, parse_monitor_config

    text = client().monitoring.get_monitor_config(name)
    if as_json:
        config = parse_monitor_config(text) if text.strip() else MonitorConfig()
        payload: dict[str, Any] = {"config": text, "effective": config.model_dump(mode="json")}
        output.emit_json(payload)
    elif text.strip():
        print(text, end="" if text.endswith("\n") else "\n")
    else:
        output.console.print(f"{name!r} has no monitor config: the defaults apply (see the README's Monitor section)")
