"""Monitoring through ``covex.Client``: make references, store labels, check versions, run every deployment.

from covex.monitoring import check, make_reference
make_reference(client, "models:/churn/3", "train.parquet")            # once per version
result = check(client, "models:/churn@champion", since="24h")         # the inference log
result = check(client, "models:/churn/3", data=frame)                 # any DataFrame or file
result.status                                                         # OK, WARNING, DRIFT, ...
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from covex.client import Client
from covex.domain.errors import CovexError, InvalidInput, InvalidState, NotFound
from covex.domain.monitoring import MonitorConfig, MonitorResult, parse_duration, parse_monitor_config
from covex.extras import needs_extra
from covex.monitoring import performance
from covex.monitoring.check import Tally, judge, overall_status
from covex.monitoring.reference import build_reference
from covex.monitoring.sources import Chunk, file_chunks, frame_chunks, log_chunks, parse_time

logger = logging.getLogger("covex.monitoring")
LABELS = "labels"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LAST_DAY = datetime(9999, 1, 1, tzinfo=UTC)


def reference_of(
    frame: Any, predict: Callable[[Any], Any] | None = None, columns: Sequence[str] | None = None
) -> dict[str, Any]:
    """The reference of ``frame`` (its ``columns``, default all), with ``predict(frame)``'s predictions when given.

    A model that cannot score the frame leaves the predictions out, with a warning in the log (the
    inputs are still monitored).
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput(f"'data' must be a pandas DataFrame or a file, got {type(frame).__name__}")
    if len(frame) == 0:
        raise InvalidInput("the reference data has no rows")
    features = frame[[c for c in frame.columns if columns is None or c in columns]]
    predictions = None
    if predict is not None:
        try:
            predictions = predict(frame)
        except (CovexError, ValueError, TypeError, KeyError) as exc:
            logger.warning("the reference has no predictions: %s", exc)
    return build_reference(features, predictions)


def read_frame(location: str) -> Any:
    """A whole Parquet or CSV file (or folder) as a DataFrame."""
    import pandas as pd

    from covex.batch.sources import open_source

    source = open_source(location)
    tables = [t.to_pandas() for t in source.chunks(source.columns, 500_000)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=source.columns)


def make_reference(client: Client, uri: str, data: Any, *, predictions: bool = True) -> dict[str, Any]:
    """Build the drift reference of ``uri``'s version from ``data`` (a DataFrame or file) and store it.

    The version's signature decides which columns are features; with ``predictions`` the version is
    loaded and its predictions on ``data`` are referenced too.
    """
    from covex.batch.model import ScoringModel

    frame = read_frame(os.fspath(data)) if isinstance(data, str | os.PathLike) else data
    version = client.get_version(uri)
    model = None
    if predictions:
        try:
            model = ScoringModel.load(client, version.uri)
        except (CovexError, ImportError, OSError) as exc:
            logger.warning("%s cannot be loaded, its predictions are not referenced: %s", version.uri, exc)
    columns = model.input_columns if model is not None else None
    predict = None
    if model is not None:
        scoring = model

        def predict(f: Any) -> Any:
            return scoring.predict(f[scoring.feature_columns(list(f.columns), None, "the reference data")])

    reference = reference_of(frame, predict, columns)
    return client.monitoring.set_reference(version.name, version.version, reference)


def config_of(client: Client, name: str) -> MonitorConfig:
    text = client.monitoring.get_monitor_config(name)
    return parse_monitor_config(text) if text.strip() else MonitorConfig()


# -- labels -------------------------------------------------------------------------------------


def labels_folder(log_location: str, name: str) -> str:
    from covex.serving.inference_log import _safe

    return f"{log_location.rstrip('/')}/{LABELS}/model={_safe(name)}"


def add_labels(
    client: Client, uri: str, labels: Any, *, key: Sequence[str] = ("request_id",), target: str, log: str | None = None
) -> int:
    """Store outcomes (a DataFrame or file) beside the inference log of ``uri``'s model; returns the rows kept.

    ``key`` names the columns that match logged requests (``request_id``, and ``row`` for requests that
    scored several rows). The labels are checked whole first: a missing key column, a duplicate or
    empty key, or targets of the wrong type refuse the file, and nothing is written.
    """
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]
    from fsspec.core import url_to_fs

    key = [key] if isinstance(key, str) else list(key)
    if isinstance(labels, str | os.PathLike):
        frame = performance.read_labels(os.fspath(labels), list(key), target)
    else:
        frame = performance.check_labels(labels, list(key), target)
    version = client.get_version(uri)
    location = log or log_location_of(client, version.name)
    fs, root = url_to_fs(labels_folder(location, version.name))
    fs.makedirs(root, exist_ok=True)
    name = f"part-{int(time.time() * 1000)}-{os.getpid()}.parquet"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    partial = f"{root}/.{name}.partial"
    with fs.open(partial, "wb") as f:
        pq.write_table(table, f)
    fs.mv(partial, f"{root}/{name}")
    return len(frame)


def stored_labels(location: str, name: str) -> list[performance.LabelSet]:
    """Every label stored for ``name`` beside the log, one set per key (a later file wins for a key given twice)."""
    import pandas as pd
    import pyarrow.parquet as pq
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(labels_folder(location, name))
    if not fs.isdir(root):
        return []
    by_key: dict[tuple[str, ...], list[Any]] = {}
    for path in sorted(p for p in fs.ls(root, detail=False) if p.rsplit("/", 1)[-1].startswith("part-")):
        with fs.open(path, "rb") as f:
            frame = pq.read_table(f).to_pandas()
        key = tuple(c for c in frame.columns if c != performance.LABEL)
        by_key.setdefault(key, []).append(frame)
    out: list[performance.LabelSet] = []
    for key, frames in by_key.items():
        frame = pd.concat(frames, ignore_index=True).drop_duplicates(subset=list(key), keep="last")
        out.append((frame.reset_index(drop=True), list(key)))
    return out


def log_location_of(client: Client, name: str) -> str:
    """Where the newest serving deployment of ``name`` that keeps an inference log writes it."""
    for d in client.deployments(name):
        if d.kind == "serving" and d.log_location:
            return d.log_location
    raise NotFound(
        f"no serving deployment of {name!r} records an inference log; serve it with --log-inferences DIR "
        "or name the log with --log"
    )


# -- checks ------------------------------------------------------------------------------------------


@dataclass
class Window:
    start: datetime
    end: datetime

    @classmethod
    def of(cls, since: str | float | None, start: str | None, end: str | None, default_s: float) -> Window:
        until = parse_time(end, "to") if end else datetime.now(UTC)
        if start:
            if since is not None:
                raise InvalidInput("give a window either as 'since' or as 'from'/'to', not both")
            begin = parse_time(start, "from")
        else:
            seconds = parse_duration(since, "since") if since is not None else default_s
            try:
                begin = until - timedelta(seconds=seconds)
            except OverflowError:
                raise InvalidInput("the window starts before the year 1") from None
        if begin >= until:
            raise InvalidInput("the window's start must be before its end")
        if until >= LAST_DAY:
            raise InvalidInput("the window must end before the year 9999")
        if begin < EPOCH:
            raise InvalidInput("the window must start in 1970 or later (the inference log's timestamps)")
        return cls(begin, until)


def check(
    client: Client,
    uri: str,
    *,
    data: Any = None,
    predictions: str | None = None,
    prediction_columns: Sequence[str] = (),
    log: str | None = None,
    since: str | float | None = None,
    start: str | None = None,
    end: str | None = None,
    labels: Any = None,
    key: Sequence[str] = ("request_id",),
    target: str | None = None,
    record: bool = True,
    engine: str = "local",
    master: str | None = None,
    id_columns: Sequence[str] = (),
) -> MonitorResult:
    """Check ``uri``'s version against its reference and record the result (``record=False``: only return it).

    Current data is ``data`` (a DataFrame, or a Parquet/CSV file or folder, with ``prediction_columns``
    in it or a ``predictions`` file beside it), else the inference log (``log``, default the one its
    serving deployment records) in the window ``since`` (e.g. ``24h``; default the config's window) or
    ``start``/``end``. ``labels`` (a DataFrame or file, joined on ``key``, outcome in ``target``) adds
    performance; for the log, the labels stored with ``add_labels`` are used when none are given.
    ``engine="spark"`` (or ``data`` a Spark DataFrame) counts on Spark, partition by partition.
    ``id_columns`` (and the labels' key columns) are identifiers, not features: never reported as new.
    """
    from covex.monitoring import spark as on_spark

    if engine not in ("local", "spark"):
        raise InvalidInput(f"'engine' must be local or spark, got {engine!r}")
    spark_frame = on_spark.is_spark_frame(data)
    if engine == "spark" or spark_frame:
        if data is None:
            raise InvalidInput("the spark engine checks 'data' (a file, folder or Spark DataFrame), not the log")
        if labels is not None or predictions is not None:
            raise InvalidInput("labels and a predictions file are joined locally: leave out the spark engine")
    key = [key] if isinstance(key, str) else list(key)
    version = client.get_version(uri)
    name, number = version.name, version.version
    try:
        reference = client.get_document(version.uri, "reference")
    except NotFound:
        raise InvalidState(
            f"{version.uri} has no drift reference; make one with "
            f"'covex monitor reference {version.uri} --data TRAINING_DATA'"
        ) from None
    config = config_of(client, name)
    window: Window | None = None
    counted: Tally | None = None
    chunks: Iterator[Chunk] = iter(())
    if data is not None and (since is not None or start or end):
        raise InvalidInput("a window ('since', 'from', 'to') reads the inference log, not 'data'")
    if engine == "spark" or spark_frame:
        source = "a Spark DataFrame" if spark_frame else f"{os.fspath(data)} (Spark)"
        with needs_extra("the spark engine"):
            frame = data if spark_frame else on_spark.read(on_spark.session(master), os.fspath(data))
            counted = on_spark.tally(frame, reference, config, prediction_columns, id_columns)
    elif data is not None:
        if isinstance(data, str | os.PathLike):
            source = str(data)
            chunks = file_chunks(source, prediction_columns=prediction_columns, predictions=predictions)
        else:
            source = "a DataFrame"
            chunks = frame_chunks(data, prediction_columns)
    else:
        location = log or log_location_of(client, name)
        window = Window.of(since, start, end, config.window_s)
        source = f"inference log {location}"
        chunks = log_chunks(location, name, number, window.start, window.end)
    label_sets: list[performance.LabelSet] | None = None
    if labels is not None:
        if isinstance(labels, str | os.PathLike):
            if target is None:
                raise InvalidInput("'target' names the labels' outcome column")
            label_sets = [(performance.read_labels(str(labels), list(key), target), list(key))]
        elif target is not None:
            label_sets = [(performance.check_labels(labels, list(key), target), list(key))]
        else:
            raise InvalidInput("'target' names the labels' outcome column")
    elif data is None and not (engine == "spark" or spark_frame):
        label_sets = stored_labels(location, name) or None
    earlier = client.monitoring.list_results(name, number, max_results=performance.PREVIOUS_WINDOWS)
    ignore = {*id_columns, *(k for s in label_sets or () for k in s[1])}
    body = _run(chunks, reference, config, label_sets, version.metrics, _previous(earlier), counted, ignore)
    status = overall_status(body["rows"], config, body, bool(body.get("degraded")))
    roll_back = (
        record
        and status == "DEGRADED"
        and config.rollback_when_degraded
        and (not earlier or earlier[0].status != status)
    )
    window_ms = (_ms(window.start), _ms(window.end)) if window is not None else (None, None)
    if not record:
        return MonitorResult(
            id=0, name=name, version=number, status=status, source=source, rows=body["rows"],
            window_start=window_ms[0], window_end=window_ms[1], created_at=_ms(datetime.now(UTC)),
            created_by="", body=body,
        )  # fmt: skip
    recorded = client.monitoring.record_result(
        name, number, status=status, source=source, rows=body["rows"], body=body,
        window_start=window_ms[0], window_end=window_ms[1],
    )  # fmt: skip
    if not roll_back:
        return recorded
    # After the result is recorded (a rollback without its reason on record would puzzle everyone); what
    # it did is in the audit trail and the placement history, and in the result returned here.
    return recorded.model_copy(update={"body": {**recorded.body, "actions": _roll_back(client, version)}})


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _roll_back(client: Client, version: Any) -> list[str]:
    """Roll back every alias ``version`` holds, and its stage unless that is the first or Archived: what happened."""
    places = [("alias", a) for a in version.aliases]
    if version.stage not in (client.stages[0], "Archived"):
        places.append(("stage", version.stage))
    done = []
    for kind, target in places:
        why = f"{version.uri} is DEGRADED"
        # Only a place this version still holds: a concurrent check may have rolled it back already.
        holder = client.get_version(f"models:/{version.name}@{target}") if kind == "alias" else None
        if holder is not None and holder.version != version.version:
            done.append(f"{kind} {target!r} not rolled back: it holds version {holder.version} now")
            continue
        if kind == "stage" and client.get_version(version.uri).stage != target:
            done.append(f"{kind} {target!r} not rolled back: version {version.version} is no longer in it")
            continue
        try:
            rolled = client.approvals.rollback(version.name, **{kind: target}, comment=why)
        except CovexError as exc:
            done.append(f"{kind} {target!r} not rolled back: {exc.message}")
            continue
        if rolled.applied:
            done.append(f"{kind} {target!r} rolled back to version {rolled.to_version}")
        else:
            request = rolled.request.id if rolled.request is not None else "?"
            done.append(f"{kind} {target!r}: rollback to version {rolled.to_version} requested (request {request})")
    return done


def _previous(earlier: list[MonitorResult]) -> list[dict[str, float]]:
    out = []
    for result in earlier:
        values = {k: v["value"] for k, v in (result.body.get("performance") or {}).get("metrics", {}).items()}
        if values:
            out.append(values)
    return out


def _run(
    chunks: Iterator[Chunk],
    reference: dict[str, Any],
    config: MonitorConfig,
    label_sets: list[performance.LabelSet] | None,
    registered: dict[str, float],
    previous: list[dict[str, float]],
    counted: Tally | None = None,
    ignore: set[str] | None = None,
) -> dict[str, Any]:
    import pandas as pd

    tally = counted or Tally(reference, config.features, ignore or ())
    pairs: list[tuple[Any, Any]] = []
    stream = performance.joined(chunks, label_sets) if label_sets else ((c, None) for c in chunks)
    for chunk, matched in stream:
        tally.add(chunk)
        if matched is not None:
            pairs.append(matched)
    body = judge(tally, config)
    body["rows"] = tally.rows
    body["config"] = config.model_dump(mode="json")
    if label_sets:
        labelled = sum(len(p[1]) for p in pairs)
        part: dict[str, Any] = {"labelled": labelled, "labels": sum(len(s[0]) for s in label_sets)}
        if labelled:
            predicted = pd.concat([p[0] for p in pairs], ignore_index=True)
            outcomes = pd.concat([p[1] for p in pairs], ignore_index=True)
            task, values, notes = performance.metrics(predicted, outcomes, config)
            part.update(task=task, notes=notes)
            if labelled >= config.min_rows:
                compared = performance.compare(values, registered, previous, config.performance.tolerance)
                part["metrics"] = compared
                body["degraded"] = sorted(n for n, m in compared.items() if m["degraded"])
            else:  # too few to judge, or to be the baseline of later checks: shown, never compared
                part["preliminary"] = values
        if labelled < config.min_rows:
            part["note"] = f"{labelled} labelled row(s) in the window; metrics are judged from {config.min_rows}"
        body["performance"] = part
    return body


def run_all(
    client: Client, name: str | None = None, *, log: str | None = None, since: str | None = None
) -> list[tuple[str, MonitorResult | CovexError]]:
    """Check every version that an active serving deployment runs (of ``name``, or of every model), once."""
    seen: set[tuple[str, int]] = set()
    out: list[tuple[str, MonitorResult | CovexError]] = []
    for d in client.deployments(name, active=True):
        if d.kind != "serving" or (d.name, d.version) in seen:
            continue
        seen.add((d.name, d.version))
        location = log or d.log_location
        try:
            if not location:
                raise InvalidState(f"deployment {d.id} of {d.uri} keeps no inference log (--log-inferences)")
            out.append((d.uri, check(client, d.uri, log=location, since=since)))
        except CovexError as exc:
            out.append((d.uri, exc))
        except Exception as exc:  # noqa: BLE001 - one version's failure must not keep the others unchecked
            logger.warning("monitor: %s could not be checked: %s: %s", d.uri, type(exc).__name__, exc)
            out.append((d.uri, CovexError(f"could not be checked: {type(exc).__name__}: {exc}")))
    return out
