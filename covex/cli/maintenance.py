"""The ``covex gc`` and ``covex fsck`` commands: collect what nothing references, verify what is stored."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from covex.cli import output
from covex.cli.context import client
from covex.domain.entities import BlobProblem, FsckReport, GcReport
from covex.domain.errors import InvalidState

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command()(gc)
    app.command()(fsck)


def gc(
    apply: Annotated[bool, typer.Option("--apply", help="Delete and mark; without it, only report.")] = False,
    grace: Annotated[
        float, typer.Option(help="Keep blobs and partial uploads younger than this many seconds.")
    ] = 3600.0,
    as_json: Json = False,
) -> None:
    """Find files (blobs) no version references and abandoned uploads; delete them with --apply.

    With --apply it also marks FAILED the versions left PENDING longer than COVEX_PENDING_TIMEOUT.
    It says what it keeps and why, and how many referenced files are missing (covex fsck names them).
    """
    report = client().gc(apply=apply, grace_seconds=grace)
    if as_json:
        output.emit_json(report)
        return
    for line in gc_lines(report):
        output.console.print(escape(line), highlight=False, soft_wrap=True)


def gc_lines(r: GcReport) -> list[str]:
    """The report of ``covex gc`` as lines a person reads."""
    deleted = "deleted" if r.applied else "can be deleted"
    young = f"kept: younger than the grace period of {r.grace_seconds:g} s"
    lines = [
        f"{_count(len(r.unreferenced), 'unreferenced blob')} ({_size(r.bytes_freed)}) {deleted}",
        f"{_count(r.stale_uploads, 'abandoned upload')} ({_size(r.stale_upload_bytes)}) {deleted}",
    ]
    if r.partial_uploads:
        lines.append(f"{_count(r.partial_uploads, 'partial upload')} ({_size(r.partial_upload_bytes)}) {young}")
    if r.young_unreferenced:
        blobs = _count(r.young_unreferenced, "unreferenced blob")
        lines.append(f"{blobs} ({_size(r.young_unreferenced_bytes)}) {young}")
    marked = "marked FAILED" if r.applied else "can be marked FAILED"
    lines.append(f"{_count(r.pending_expired, 'version')} PENDING for over {r.pending_timeout:g} s {marked}")
    lines.append(f"{_count(r.referenced_present, 'referenced blob')} kept (present; covex fsck checks their content)")
    if r.referenced_missing:
        lines.append(
            f"warning: {_count(r.referenced_missing, 'blob')} of READY versions missing from the artifact store: "
            "covex fsck names the versions they break"
        )
    if not r.applied:
        lines.append("dry run: nothing was changed; --apply deletes and marks")
    return lines


def fsck(
    after: Annotated[
        str | None, typer.Option("--after", metavar="MODEL", help="Start after this model (resume a check).")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, max=1000, help="Models per request.")] = 10,
    as_json: Json = False,
) -> None:
    """Re-hash every stored file of every READY version; name the missing and corrupted ones.

    Models are checked in name order, a batch at a time; if stopped, it prints where to resume
    (--after MODEL). Exit code 4 when a file is missing or corrupted. Admins only.
    """
    c = client()
    total: FsckReport | None = None
    cursor = after
    try:
        with _models_bar(enabled=not as_json) as advance:
            while True:
                report = c.fsck(after=cursor, limit=batch)
                total = report if total is None else total.then(report)
                advance(report.models_done, report.models_total)
                if report.next is None:
                    break
                cursor = report.next
    except KeyboardInterrupt:
        _resume_hint(after, cursor, total)
        raise typer.Exit(130) from None
    except BaseException:
        _resume_hint(after, cursor, total)
        raise
    assert total is not None
    if as_json:
        output.emit_json(total)
        if not total.ok:
            raise typer.Exit(4)  # as for InvalidState below
        return
    for line in fsck_lines(total):
        output.console.print(escape(line), highlight=False, soft_wrap=True)
    if not total.ok:
        broken = {f.uri for p in total.missing + total.corrupted for f in p.files}
        raise InvalidState(
            f"fsck found {_count(len(total.missing), 'missing blob')} and "
            f"{_count(len(total.corrupted), 'corrupted blob')}, breaking {_count(len(broken), 'version')} "
            "(listed above)"
        )


def fsck_lines(r: FsckReport) -> list[str]:
    """The report of ``covex fsck`` as lines a person reads: what was checked, then each problem."""
    lines = [
        f"checked {_count(r.models, 'model')}, {_count(r.versions, 'READY version')}, "
        f"{_count(r.files, 'file')} ({_count(r.blobs, 'blob')}, {_size(r.bytes)} re-hashed)"
    ]
    for kind, problems in (("MISSING", r.missing), ("CORRUPTED", r.corrupted)):
        for p in problems:
            lines.extend(_problem_lines(kind, p))
    if r.ok:
        lines.append("every file is intact")
    return lines


def _problem_lines(kind: str, p: BlobProblem) -> list[str]:
    head = f"{kind} sha256:{p.digest} ({_size(p.size)}): {p.reason}"
    return [head, *(f"  breaks {f.uri} {f.path}" for f in p.files)]


def _resume_hint(after: str | None, cursor: str | None, done: FsckReport | None) -> None:
    # ``cursor`` is where the batch that did not finish started: resuming there loses nothing.
    if done is None and cursor == after:
        return  # nothing was checked
    where = f"--after {cursor}" if cursor is not None else "(from the start)"
    checked = f"{done.models_done} of {done.models_total} models checked" if done else "stopped"
    output.err_console.print(f"fsck stopped ({checked}); resume with: covex fsck {escape(where)}", highlight=False)


@contextmanager
def _models_bar(enabled: bool) -> Iterator[Callable[[int, int], None]]:
    progress = Progress(
        TextColumn("checking files"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("models"),
        TimeElapsedColumn(),
        console=output.err_console,
        transient=True,
        disable=not enabled or not output.err_console.is_terminal,
    )
    with progress:
        task = progress.add_task("fsck", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" or size >= 10 else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
