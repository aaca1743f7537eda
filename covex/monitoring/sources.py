"""Current data for a check, read in chunks: the inference log in a time window, files, or a DataFrame.

Every source yields ``Chunk``s (the features, the predictions when known, and the keys labels join
on), so a window of any size is read in bounded memory; the check only adds up counts.

- The inference log that ``covex serve --log-inferences DIR`` writes: the files of one model and
  version whose day partitions overlap the window, each row's ``inputs`` and ``outputs`` decoded
  (one row per scored row; its keys are the request's ``request_id`` and its ``row`` in the request).
- A Parquet or CSV file or folder (a ``covex batch`` input, any table): the features, with the
  predictions either in named columns of the same file (``prediction_columns``) or in a second file
  of the same rows in the same order (``covex batch``'s output: the columns it adds are the predictions).
- A pandas DataFrame in Python (``covex.monitoring.check(..., data=frame)``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from covex.domain.errors import InvalidInput

CHUNK_ROWS = 100_000


@dataclass
class Chunk:
    features: Any  # DataFrame
    predictions: Any = None  # DataFrame, or None when the source has none
    keys: Any = None  # DataFrame of the columns labels may join on
    skipped: int = 0  # records of the source that could not be read (a damaged log row)


def frame_chunks(frame: Any, prediction_columns: Sequence[str] = (), chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """A DataFrame in chunks; ``prediction_columns`` are taken out of the features."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput(f"'data' must be a pandas DataFrame, got {type(frame).__name__}")
    _check_present(prediction_columns, list(frame.columns), "the data")
    for start in range(0, max(len(frame), 1), chunk_rows):
        part = frame.iloc[start : start + chunk_rows].reset_index(drop=True)
        yield _split(part, prediction_columns)


def _split(part: Any, prediction_columns: Sequence[str]) -> Chunk:
    predictions = part[list(prediction_columns)] if prediction_columns else None
    return Chunk(part.drop(columns=list(prediction_columns)), predictions, part)


def _check_present(columns: Sequence[str], present: Sequence[Any], where: str) -> None:
    missing = [c for c in columns if c not in present]
    if missing:
        raise InvalidInput(f"prediction column {missing[0]!r} is not in {where}")


def file_chunks(
    location: str,
    *,
    prediction_columns: Sequence[str] = (),
    predictions: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[Chunk]:
    """A Parquet/CSV file or folder (or URL) in chunks, with its predictions beside it or in ``predictions``."""
    from covex.batch.sources import open_source

    source = open_source(location)
    columns = source.columns
    _check_present(prediction_columns, columns, location)
    if predictions is None:
        for table in source.chunks(columns, chunk_rows):
            yield _split(table.to_pandas(), prediction_columns)
        return
    if prediction_columns:
        raise InvalidInput("give the predictions either as columns of the data or as a file, not both")
    outputs = open_source(predictions)
    added = [c for c in outputs.columns if c not in columns]
    if not added:
        raise InvalidInput(f"{predictions} adds no column to {location}: it holds no predictions")
    theirs = outputs.chunks(added, chunk_rows)
    for table in source.chunks(columns, chunk_rows):
        other = next(theirs, None)
        if other is None or other.num_rows != table.num_rows:
            raise InvalidInput(f"{predictions} does not have the same number of rows as {location}")
        yield Chunk(table.to_pandas(), other.to_pandas(), table.to_pandas())
    if next(theirs, None) is not None:
        raise InvalidInput(f"{predictions} has more rows than {location}")


# -- the inference log ------------------------------------------------------------------------------


def log_files(location: str, name: str, version: int, start: datetime, end: datetime) -> tuple[Any, list[str]]:
    """The filesystem and the log files of ``name``/``version`` whose day overlaps [start, end]."""
    from fsspec.core import url_to_fs

    from covex.serving.inference_log import _safe

    try:
        fs, root = url_to_fs(location)
    except (ValueError, ImportError) as exc:
        raise InvalidInput(f"inference log {location!r}: {exc}") from None
    base = f"{root.rstrip('/')}/model={_safe(name)}/version={version}"
    days = []
    day = start.date()
    while day <= end.date():
        days.append(day.isoformat())
        day += timedelta(days=1)
        if len(days) > 3660:
            raise InvalidInput("a window of the inference log spans at most ten years")
    paths: list[str] = []
    for d in days:
        folder = f"{base}/date={d}"
        if fs.isdir(folder):
            paths.extend(sorted(p for p in fs.ls(folder, detail=False) if p.rsplit("/", 1)[-1].startswith("part-")))
    return fs, paths


def log_chunks(location: str, name: str, version: int, start: datetime, end: datetime) -> Iterator[Chunk]:
    """The logged requests of ``name``/``version`` answered in [start, end), one row per scored row."""
    import pyarrow.compute as pc  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    fs, paths = log_files(location, name, version, start, end)
    low, high = start.astimezone(UTC), end.astimezone(UTC)
    for path in paths:
        try:
            with fs.open(path, "rb") as f:
                table = pq.read_table(f, columns=["request_id", "timestamp", "inputs", "outputs"])
        except Exception as exc:  # noqa: BLE001 - pyarrow and fsspec raise many kinds: the file is named
            raise InvalidInput(f"inference log file {path} cannot be read: {exc}") from None
        ts = table.column("timestamp")
        table = table.filter(pc.and_(pc.greater_equal(ts, low), pc.less(ts, high)))
        if table.num_rows:
            yield _decode(table.to_pydict())


def _decode(columns: dict[str, list[Any]]) -> Chunk:
    import pandas as pd

    from covex.monitoring.reference import prediction_columns

    records: list[Any] = []
    outputs: list[Any] = []
    keys: list[tuple[str, int]] = []
    skipped = 0
    for request_id, inputs, answered in zip(columns["request_id"], columns["inputs"], columns["outputs"], strict=True):
        try:
            rows = json.loads(inputs)
            predicted = json.loads(answered) if answered is not None else None
        except (TypeError, ValueError):  # a damaged record: counted, left out, the check goes on
            skipped += 1
            continue
        if isinstance(predicted, dict) and len(predicted) == 1:  # {"predictions": [...]}
            predicted = next(iter(predicted.values()))
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            skipped += 1
            continue
        if not isinstance(predicted, list) or len(predicted) != len(rows):
            predicted = [None] * len(rows)
        records.extend(rows)
        outputs.extend(predicted)
        keys.extend((request_id, i) for i in range(len(rows)))
    features = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    predictions = pd.DataFrame(
        prediction_columns(pd.DataFrame.from_records(outputs) if outputs and isinstance(outputs[0], dict) else outputs)
    )
    return Chunk(features, predictions, pd.DataFrame(keys, columns=["request_id", "row"]), skipped)


def parse_time(value: str, field: str) -> datetime:
    """An ISO 8601 time (a date alone is its midnight); UTC unless it says otherwise."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"'{field}' must be an ISO 8601 time such as 2026-12-01T08:00, got {value!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
