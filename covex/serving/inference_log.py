"""The inference log: every scored request, written in the background as Parquet files.

Layout (Hive-style partitions, so pyarrow, pandas, Spark and DuckDB read the folder as one table)::

    DIR/model=<name>/version=<n>/date=<YYYY-MM-DD>/part-<unix ms>-<pid>-<seq>.parquet

One row per request and version that scored it, with these columns (the format is stable; new
columns may be added at the end):

    request_id   string                 the X-Request-ID of the request
    timestamp    timestamp[ms, UTC]     when it was answered
    endpoint     string                 invocations | v2_infer
    latency_ms   double                 time to answer, in milliseconds
    rows         int64                  rows scored
    inputs       string                 the checked input as JSON records ([{"col": value, ...}, ...])
    outputs      string                 the predictions as JSON (as answered)
    role         string                 served (this version answered the caller) | shadow (it scored the
                                        request silently after the answer: ``covex serve --shadow``)

A request scored in the shadow has two rows with one ``request_id``: ``served`` under the version
that answered, ``shadow`` under the shadow version. Files written before ``role`` existed lack the
column: read it as ``served``.

The model, the version that scored the request and the day are the partition keys: they are in the
path, not in the files, as Hive-style readers expect (reading the folder adds them as columns).

Logging never blocks or fails a request: records wait in a bounded queue, a thread writes a file
every ``interval`` seconds, and what does not fit in the queue, or cannot be written, is dropped and
counted. A reader never sees half a file: in a local folder it is written under a temporary name,
then renamed; on an object store (``s3://bucket/prefix``, any URL fsspec knows) one upload puts it
whole.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("covex.serving")
_STOP = object()


class InferenceLog:
    """A bounded queue of scored requests and the thread that writes them to ``folder``."""

    def __init__(
        self, folder: str, *, max_queue: int = 10_000, interval: float = 2.0, on_drop: Callable[[], None] | None = None
    ) -> None:
        self._remote = remote_location(folder)  # (fsspec filesystem, root) for a URL, else None
        self.folder = Path(folder.removeprefix("file://"))
        self.interval = interval
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._on_drop = on_drop or (lambda: None)
        self._thread: threading.Thread | None = None
        self._seq = itertools.count()

    def start(self) -> None:
        if self._remote is None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="covex-inference-log", daemon=True)
        self._thread.start()

    def record(
        self,
        request_id: str,
        served: Any,
        parsed: Any,
        predictions: Any,
        elapsed: float,
        *,
        endpoint: str,
        role: str = "served",
    ) -> None:
        """Queue one scored request (never blocks; a full queue drops it, counted)."""
        try:
            self._queue.put_nowait(
                (request_id, time.time(), served.name, served.version, endpoint, elapsed, parsed, predictions, role)
            )
        except queue.Full:
            self._on_drop()

    def close(self, timeout: float = 20.0) -> None:
        """Write what is queued, then stop."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            self._on_drop()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        pending: list[Any] = []
        deadline = time.monotonic() + self.interval
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = None
            if item is not None and item is not _STOP:
                pending.append(item)
            if item is _STOP or time.monotonic() >= deadline:
                self._flush(pending)
                pending = []
                deadline = time.monotonic() + self.interval
            if item is _STOP:
                return

    def _flush(self, records: list[Any]) -> None:
        groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        for request_id, ts, model, version, endpoint, elapsed, parsed, predictions, role in records:
            try:
                row = _row(request_id, ts, endpoint, elapsed, parsed, predictions, role)
            except Exception as exc:  # noqa: BLE001 - a record that cannot be serialised is dropped, not fatal
                log.warning("inference log: dropped request %s: %s", request_id, exc)
                self._on_drop()
                continue
            day = datetime.fromtimestamp(ts, UTC).date().isoformat()
            groups.setdefault((model, version, day), []).append(row)
        for (model, version, day), rows in groups.items():
            try:
                self._write(model, version, day, rows)
            except Exception as exc:  # noqa: BLE001 - a full disk must not stop the server
                log.warning("inference log: could not write %d record(s): %s", len(rows), exc)
                for _ in rows:
                    self._on_drop()

    def _write(self, model: str, version: int, day: str, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        partition = f"model={_safe(model)}/version={version}/date={day}"
        name = f"part-{int(time.time() * 1000)}-{os.getpid()}-{next(self._seq)}.parquet"
        table = pa.Table.from_pylist(rows, schema=arrow_schema())
        if self._remote is not None:
            fs, root = self._remote
            buffer = pa.BufferOutputStream()
            pq.write_table(table, buffer)
            fs.pipe_file(f"{root}/{partition}/{name}", buffer.getvalue().to_pybytes())
            return
        folder = self.folder / partition
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{name}.partial"
        pq.write_table(table, partial)
        os.replace(partial, folder / name)


def remote_location(location: str) -> tuple[Any, str] | None:
    """The fsspec filesystem and root of a URL (None for a local folder); ``InvalidInput`` saying why not."""
    if "://" not in location or location.startswith("file://"):
        return None
    from fsspec.core import url_to_fs

    from covex.domain.errors import InvalidInput
    from covex.extras import MissingExtra, needs_extra

    try:
        with needs_extra(f"writing the inference log to {location!r}"):
            fs, root = url_to_fs(location)
    except MissingExtra:
        raise
    except (ValueError, ImportError) as exc:  # an unknown protocol, or one whose package is not installed
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"'--log-inferences' {location!r}: {reason}") from None
    return fs, root.rstrip("/")


def check_location(location: str) -> None:
    """Refuse, before serving, an inference log location that cannot be written (``InvalidInput``)."""
    from covex.domain.errors import InvalidInput

    if remote_location(location) is not None:
        return
    folder = Path(location.removeprefix("file://"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"'--log-inferences' {location!r}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK):
        raise InvalidInput(f"'--log-inferences' {location!r}: the folder is not writable")


def arrow_schema() -> Any:
    """The Arrow schema of the log's files."""
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("timestamp", pa.timestamp("ms", tz="UTC")),
            ("endpoint", pa.string()),
            ("latency_ms", pa.float64()),
            ("rows", pa.int64()),
            ("inputs", pa.string()),
            ("outputs", pa.string()),
            ("role", pa.string()),
        ]
    )


def _row(
    request_id: str, ts: float, endpoint: str, elapsed: float, parsed: Any, predictions: Any, role: str
) -> dict[str, Any]:
    from covex.serving.payloads import dumps, jsonable

    data = parsed.data
    if hasattr(data, "to_dict"):
        inputs = dumps(data.to_dict(orient="records")).decode()
    else:
        inputs = dumps(jsonable(data)).decode()
    return {
        "request_id": request_id,
        "timestamp": datetime.fromtimestamp(ts, UTC),
        "endpoint": endpoint,
        "latency_ms": elapsed * 1000.0,
        "rows": parsed.rows,
        "inputs": inputs,
        "outputs": dumps(jsonable(predictions)).decode(),
        "role": role,
    }


def _safe(name: str) -> str:
    """A model name as one folder name (a namespace's '/' would make two)."""
    return name.replace("/", "%2F")
