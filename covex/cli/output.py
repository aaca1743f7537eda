"""Rendering for the CLI: Rich tables for people, JSON for scripts, progress bars."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from covex.domain.deployments import ENDED, Deployment
from covex.domain.entities import Model, ModelEvent, ModelVersion
from covex.domain.evaluations import Evaluation
from covex.domain.monitoring import MonitorResult
from covex.domain.scans import ScanReport, findings_text
from covex.domain.signing import Statement

console = Console()
err_console = Console(stderr=True)


def reset_consoles() -> None:
    """Measure the terminal again (each command run; matters when one process runs many)."""
    global console, err_console
    console = _console(stderr=False)
    err_console = _console(stderr=True)


def _console(stderr: bool) -> Console:
    # Pipes and CI logs get long lines rather than tables cut at 80 columns.
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=250)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


def emit_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, dict):
        data = value
    else:
        data = [v.model_dump(mode="json") for v in value]
    print(json.dumps(data, indent=2))


def models_table(models: Sequence[Model], next_token: str | None = None) -> None:
    table = Table("name", "latest", "aliases", "tags", "description", "updated")
    for m in models:
        table.add_row(
            m.name,
            str(m.latest_version or "-"),
            _kv(m.aliases),
            _kv(m.tags),
            m.description[:60],
            _when(m.last_updated_timestamp),
        )
    console.print(table)
    if next_token:
        console.print(f"more: --page-token {next_token}")


def versions_table(versions: Sequence[ModelVersion], next_token: str | None = None) -> None:
    table = Table("name", "version", "status", "stage", "aliases", "metrics", "files", "created")
    for v in versions:
        table.add_row(
            v.name,
            str(v.version),
            v.status,
            v.stage,
            ", ".join(v.aliases),
            _kv({k: f"{x:.4g}" for k, x in v.metrics.items()}),
            f"{v.file_count} ({_size(v.size)})" if v.file_count else "-",
            _when(v.creation_timestamp),
        )
    console.print(table)
    if next_token:
        console.print(f"more: --page-token {next_token}")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def show_model(m: Model) -> None:
    table = Table(show_header=False, box=None)
    for key, value in (
        ("name", m.name),
        ("description", m.description),
        ("latest version", str(m.latest_version or "-")),
        ("aliases", _kv(m.aliases)),
        ("tags", _kv(m.tags)),
        ("created by", m.created_by),
        ("created", _when(m.creation_timestamp)),
        ("updated", _when(m.last_updated_timestamp)),
    ):
        table.add_row(f"[bold]{key}[/]", value)
    console.print(table)


def _lineage_rows(lineage: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not lineage:
        return []
    rows = []
    git = lineage.get("git")
    if git:
        rows.append(("code", f"{git['commit'][:12]} on {git['branch']}" + (" (dirty)" if git.get("dirty") else "")))
    if lineage.get("parent"):
        rows.append(("parent", lineage["parent"]))
    for ds in lineage.get("datasets", []):
        detail = ", ".join(x for x in (ds.get("uri", ""), f"{ds['rows']} rows" if "rows" in ds else "") if x)
        rows.append((f"{ds.get('role', 'training')} data", f"{ds['name']} ({detail})" if detail else ds["name"]))
    env = lineage.get("environment") or {}
    if env.get("python"):
        rows.append(("python", env["python"]))
    if lineage.get("flavors"):
        rows.append(("flavors", ", ".join(lineage["flavors"])))
    return rows


def history_table(events: Sequence[ModelEvent]) -> None:
    table = Table("when", "version", "what", "from", "to", "by")
    for e in events:
        what = "stage" if e.kind == "stage" else f"alias @{e.subject}"
        table.add_row(_when(e.timestamp), str(e.version or "-"), what, e.before or "-", e.after or "-", e.actor)
    console.print(table)


def _deployment_rows(deployments: Sequence[Deployment]) -> list[tuple[str, str]]:
    """Where the version runs now (what has ended is in ``covex deployments list``)."""
    running = [d for d in deployments if d.status not in ENDED]
    return (
        [("deployed", "; ".join(f"{d.kind} at {d.target} ({d.status}{', stale' if d.stale else ''})" for d in running))]
        if running
        else []
    )


def _monitoring_rows(results: Sequence[MonitorResult]) -> list[tuple[str, str]]:
    """The latest monitoring result, in a line (``covex monitor status`` has the history)."""
    if not results:
        return []
    r = results[0]
    parts = [
        f"{label}: {', '.join(r.body[key])}" for key, label in (("drifted", "drift"), ("degraded", "degraded"))
        if r.body.get(key)
    ]  # fmt: skip
    if r.body.get("prediction_drift"):
        parts.append("predictions drift")
    seen = "; ".join(parts)
    return [("monitoring", f"{r.status} ({r.rows} rows, {_when(r.created_at)}){f'; {seen}' if seen else ''}")]


def _evaluation_rows(evaluations: Sequence[Evaluation]) -> list[tuple[str, str]]:
    """The newest comparison and the newest explanation, a line each (``covex evaluations list`` has all)."""
    from covex.domain.evaluations import summary

    rows = []
    for kinds, label in ((("offline", "online"), "evaluation"), (("explanation",), "explanation")):
        e = next((e for e in evaluations if e.kind in kinds), None)
        if e is not None:
            line = f"{summary(e.kind, e.body)} ({e.rows} rows of {e.source}, {_when(e.created_at)})"
            rows.append((label, escape(line)))
    return rows


def _scan_rows(scan: ScanReport | None, signed: Sequence[Statement]) -> list[tuple[str, str]]:
    if scan is None:
        rows = [("scan", "not scanned (covex scan URI)")]
    else:
        rows = [("scan", f"{scan.summary}, {_when(scan.finished_at or scan.created_at)}")]
        if scan.findings:
            rows.append(("findings", findings_text(scan)))
    moves = [f"{s.content.get('target_kind')} {s.content.get('target')} (key {s.key_id})" for s in signed]
    return [*rows, ("signed", "; ".join(moves) + " (covex verify URI)" if moves else "-")]


def show_version(
    v: ModelVersion,
    lineage: dict[str, Any] | None = None,
    deployments: Sequence[Deployment] = (),
    monitoring: Sequence[MonitorResult] = (),
    evaluations: Sequence[Evaluation] = (),
    scan: ScanReport | None = None,
    signed: Sequence[Statement] = (),
) -> None:
    table = Table(show_header=False, box=None)
    rows = [
        ("uri", v.uri),
        ("status", v.status + (f" ({v.status_message})" if v.status_message else "")),
        ("stage", v.stage),
        ("aliases", ", ".join(v.aliases)),
        ("description", v.description),
        ("source", v.source),
        ("run", " ".join(x for x in (v.run_id, v.run_link) if x)),
        ("metrics", _kv(v.metrics)),
        ("params", _kv(v.params)),
        ("tags", _kv(v.tags)),
        ("files", f"{v.file_count} ({_size(v.size)})"),
        ("manifest digest", v.manifest_digest or "-"),
        ("created by", v.created_by),
        ("created", _when(v.creation_timestamp)),
        ("updated", _when(v.last_updated_timestamp)),
        *_lineage_rows(lineage),
        *_deployment_rows(deployments),
        *_monitoring_rows(monitoring),
        *_evaluation_rows(evaluations),
        *_scan_rows(scan, signed),
    ]
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    console.print(table)


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Any]:
    """Yield a callback that advances a byte progress bar (on stderr)."""
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
