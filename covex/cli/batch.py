"""``covex batch``: score a file or folder with the version a ``models:/`` URI resolves to."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from covex.cli import output
from covex.cli.context import listed

if TYPE_CHECKING:
    from covex.batch import BatchResult


def batch(
    uri: Annotated[str, typer.Argument(help="models:/NAME@ALIAS, models:/NAME/STAGE or models:/NAME/VERSION")],
    input: Annotated[
        str, typer.Option("--input", "-i", help="A .parquet or .csv file, a folder of them, or a URL (s3://...).")
    ],
    output_path: Annotated[str, typer.Option("--output", "-o", help="The Parquet file (Spark: folder) to write.")],
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", help="Rows read and scored at a time.")] = 100_000,
    columns: Annotated[
        list[str] | None,
        typer.Option("--columns", help="Feature columns to give the model (default: its signature's); repeatable."),
    ] = None,
    id_column: Annotated[
        list[str] | None, typer.Option("--id-column", help="Input column copied to the output (repeatable).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the output if it exists.")] = False,
    engine: Annotated[str, typer.Option("--engine", help="local (pyarrow, this process) or spark.")] = "local",
    master: Annotated[
        str | None, typer.Option("--master", help="Spark master for --engine spark (default: local[*]).")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show progress on stderr (default: on a terminal).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Record the run on the version (covex deployments list).")
    ] = True,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Add each feature's SHAP contribution (shap_<feature>) and shap_base_value columns."
        ),
    ] = False,
) -> None:
    """Score every row of --input and write the id columns, predictions, model name and version to --output.

    The input is streamed --chunk-rows rows at a time, so memory stays bounded whatever its size; the
    output appears under its name only once complete. `--engine spark` scores on Spark (the model's
    files go to the executors once and are verified there) and writes a Parquet folder.
    """
    from covex.domain.errors import InvalidInput
    from covex.extras import needs_extra, require_extra

    columns = listed(columns)
    ids = listed(id_column)
    if engine not in ("local", "spark"):
        raise InvalidInput(f"'--engine' must be local or spark, got {engine!r}")
    require_extra("'covex batch'", "ml")
    if explain:
        if engine == "spark":
            raise InvalidInput("'--explain' runs with '--engine local' (SHAP on Spark executors is not supported)")
        require_extra("'covex batch --explain'", "explain")
    show = progress if progress is not None else output.err_console.is_terminal
    if engine == "spark":
        require_extra("'covex batch --engine spark'", "spark")
        with needs_extra("'covex batch --engine spark'"):
            result = _spark(uri, input, output_path, columns, ids, overwrite, master, record)
    else:
        with needs_extra("'covex batch'"), _progress(show) as (advance, start):
            result = _local(
                uri, input, output_path, chunk_rows, columns, ids, overwrite, advance, start, record, explain
            )
    _summary(result, as_json)


def _local(
    uri: str,
    input: str,
    output_path: str,
    chunk_rows: int,
    columns: list[str],
    ids: list[str],
    overwrite: bool,
    advance: Callable[[int], None],
    start: Callable[[Any, Any], None],
    record: bool,
    explain: bool,
) -> BatchResult:
    from covex.batch import score_file
    from covex.cli.context import client

    return score_file(
        uri,
        input,
        output_path,
        client=client(),
        chunk_rows=chunk_rows,
        columns=columns or None,
        id_columns=ids,
        overwrite=overwrite,
        progress=advance,
        on_start=start,
        record=record,
        explain=explain,
    )


def _spark(
    uri: str,
    input: str,
    output_path: str,
    columns: list[str],
    ids: list[str],
    overwrite: bool,
    master: str | None,
    record: bool,
) -> BatchResult:
    from covex.batch.sinks import Destination
    from covex.batch.sources import open_source
    from covex.cli.context import client
    from covex.spark import score_to_parquet

    # Refuse what is plainly wrong before a JVM starts (seconds), then again in the job itself.
    Destination(output_path, overwrite=overwrite)
    open_source(input)
    return score_to_parquet(
        _session(master),
        uri,
        input,
        output_path,
        client=client(),
        columns=columns or None,
        id_columns=ids,
        overwrite=overwrite,
        record=record,
    )


def _session(master: str | None) -> Any:
    """The Spark session to score on: the active one, or a new one on ``master`` (default ``local[*]``)."""
    import os

    from pyspark.sql import SparkSession

    # Executors' Python workers run this interpreter (where Covex and the model's packages are), unless told otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if not master and SparkSession.getActiveSession() is not None:
        return SparkSession.getActiveSession()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        spark = SparkSession.builder.appName("covex batch").master(master or "local[*]").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")  # Spark's warnings would bury the one-line summary or error
    return spark


@contextmanager
def _progress(enabled: bool) -> Iterator[tuple[Callable[[int], None], Callable[[Any, Any], None]]]:
    """Callbacks for the job: rows scored so far with rows/s on stderr (a bar on a terminal, else lines)."""
    if not enabled:
        yield (lambda n: None), (lambda model, source: None)
        return
    if not output.err_console.is_terminal:
        with _lines() as callbacks:
            yield callbacks
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows, {task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
        console=output.err_console,
        transient=True,
    )
    began = time.perf_counter()
    with bar:
        task = bar.add_task("scoring", total=None, rate="-")

        def start(model: Any, source: Any) -> None:
            bar.update(task, description=f"scoring with {model.version.uri}", total=source.count_rows())

        def advance(n: int) -> None:
            bar.advance(task, n)
            done = bar.tasks[0].completed
            bar.update(task, rate=f"{done / max(time.perf_counter() - began, 1e-9):,.0f}")

        yield advance, start


@contextmanager
def _lines() -> Iterator[tuple[Callable[[int], None], Callable[[Any, Any], None]]]:
    """Progress for logs: one line at most every 2 seconds."""
    began = last = time.perf_counter()
    done = 0

    def start(model: Any, source: Any) -> None:
        nonlocal began, last
        began = last = time.perf_counter()  # rows/s of scoring, not of fetching the model
        total = source.count_rows()
        of = f" of {total:,} rows" if total is not None else ""
        print(f"scoring {source.location}{of} with {model.version.uri}", file=sys.stderr, flush=True)

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.perf_counter()
        if now - last >= 2:
            last = now
            print(f"{done:,} rows ({done / (now - began):,.0f} rows/s)", file=sys.stderr, flush=True)

    yield advance, start


def _summary(result: BatchResult, as_json: bool) -> None:
    if as_json:
        output.emit_json(result.to_dict())
        return
    output.console.print(
        f"scored {result.rows:,} rows with {result.uri} in {result.seconds:.1f} s "
        f"({result.rows_per_second:,.0f} rows/s) → {result.output}",
        highlight=False,
        soft_wrap=True,
    )
