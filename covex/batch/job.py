"""A batch job on one machine: stream an input through a registered model into a Parquet file."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from covex.batch.model import MODEL_COLUMN, VERSION_COLUMN, ScoringModel
from covex.batch.sinks import Destination, ParquetSink
from covex.batch.sources import Source, open_source
from covex.domain.errors import InvalidInput
from covex.threads import WriteBehind, read_ahead

if TYPE_CHECKING:
    from covex.client import Client
    from covex.recording import DeploymentRecord

DEFAULT_CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class BatchResult:
    """What a finished job did: which version scored how many rows from where to where, and how fast."""

    model: str
    version: int
    uri: str
    input: str
    output: str
    rows: int
    seconds: float
    engine: str = "local"

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 1)}


def check_names(ids: Sequence[str], predictions: Sequence[str]) -> None:
    """Refuse an output whose id columns would clash with the prediction or model columns."""
    taken = set(predictions) | {MODEL_COLUMN, VERSION_COLUMN}
    clash = [c for c in ids if c in taken]
    if clash:
        raise InvalidInput(f"id column {clash[0]!r} has the name of an output column; rename it in the input")
    if len(set(ids)) != len(ids):
        raise InvalidInput("'--id-column' names a column twice")


def plan_columns(
    model: ScoringModel, source_columns: list[str], columns: Sequence[str] | None, ids: Sequence[str], where: str
) -> list[str]:
    """The feature columns for the model, after checking the id columns exist in ``where``."""
    missing = [c for c in ids if c not in source_columns]
    if missing:
        raise InvalidInput(f"id column {missing[0]!r} is not in {where}; it has: {', '.join(source_columns)}")
    features = model.feature_columns(source_columns, list(columns) if columns else None, where)
    if not columns and model.input_columns is None:  # no signature: every column but the ids
        features = [c for c in features if c not in ids]
    return features


def score_table(model: ScoringModel, table: Any, features: list[str], ids: Sequence[str], explainer: Any = None) -> Any:
    """The output rows for one chunk: its id columns, the predictions (and, with ``explainer``, each
    feature's SHAP contribution), and the model's name and version."""
    import pyarrow as pa  # type: ignore[import-untyped]

    frame = table.select(features).to_pandas()
    predictions = model.predict(frame)
    if explainer is not None:
        predictions = pd_concat(predictions, explainer(frame))
    check_names(ids, list(predictions.columns))
    out = pa.Table.from_pandas(predictions, preserve_index=False)
    for i, name in enumerate(ids):
        out = out.add_column(i, name, table.column(name))
    n = table.num_rows
    out = out.append_column(MODEL_COLUMN, pa.repeat(pa.scalar(model.version.name, pa.string()), n))
    return out.append_column(VERSION_COLUMN, pa.repeat(pa.scalar(model.version.version, pa.int64()), n))


def score_file(
    uri: str,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    client: Client | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    columns: Sequence[str] | None = None,
    id_columns: Sequence[str] = (),
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[ScoringModel, Source], None] | None = None,
    record: bool = True,
    explain: bool = False,
) -> BatchResult:
    """Score every row of ``input`` (Parquet/CSV file, folder, URL) with ``uri``; write ``output`` (Parquet).

    The input is read ``chunk_rows`` rows at a time; the output holds ``id_columns``, the prediction
    column(s), ``model_name`` and ``model_version``, in input order. It appears under its name only
    once complete. ``explain`` adds each feature's SHAP contribution (``shap_<feature>``) and
    ``shap_base_value`` (``covex.explain``). ``progress`` is called with the number of rows of each
    chunk scored; ``on_start`` once the model and the input are open. With ``record``, the run is
    recorded on the version as a batch deployment (``RUNNING``, then ``SUCCEEDED`` with its rows and
    duration, or ``FAILED``).

    Raises:
        InvalidInput: the input is missing or unreadable, or lacks a column the model needs.
        AlreadyExists: ``output`` exists and ``overwrite`` is false.
    """
    from covex.client import Client

    if chunk_rows < 1:
        raise InvalidInput(f"'--chunk-rows' must be at least 1, got {chunk_rows}")
    started = time.perf_counter()
    destination = Destination(output, overwrite=overwrite)
    location = os.fspath(input)
    open_source(location)  # a missing input is reported before the model is fetched
    own = client is None
    c = client or Client()
    try:
        model = ScoringModel.load(c, uri)
        source = open_source(location, model.input_types)
        ids = list(id_columns)
        features = plan_columns(model, source.columns, columns, ids, f"input {location!r}")
        if on_start is not None:
            on_start(model, source)
        explainer = contributions_of(c, model) if explain else None
        read = list(dict.fromkeys([*ids, *features]))
        with recorded(c, model.version.uri, destination.path, record) as run, ParquetSink(destination) as sink:
            # The next chunk is read and the last one written while this one is scored.
            with WriteBehind(sink.write) as writer:
                for chunk in read_ahead(source.chunks(read, chunk_rows)):
                    writer.submit(score_table(model, chunk, features, ids, explainer))
                    if progress is not None:
                        progress(chunk.num_rows)
            path = sink.commit(_empty_schema(source, ids))
            if run is not None:
                run.end("SUCCEEDED", rows=sink.rows, duration_s=time.perf_counter() - started)
    finally:
        if own:
            c.close()
    return BatchResult(
        model.version.name,
        model.version.version,
        model.version.uri,
        location,
        str(path),
        sink.rows,
        time.perf_counter() - started,
    )


def pd_concat(predictions: Any, contributions: Any) -> Any:
    import pandas as pd

    return pd.concat([predictions.reset_index(drop=True), contributions.reset_index(drop=True)], axis=1)


def contributions_of(client: Client, model: ScoringModel) -> Callable[[Any], Any]:
    """A function from a chunk's features to its ``shap_<feature>`` and ``shap_base_value`` columns.

    The background of linear and model-agnostic explainers is drawn from the version's data profile or
    drift reference when it has one (else a sample of the first chunk, the same for every chunk); tree
    ensembles need none.
    """
    import warnings

    import pandas as pd

    from covex.explain import explain
    from covex.explain.stored import BACKGROUND_ROWS, background_of

    columns = model.input_columns or []
    background = background_of(client, model.version.uri, columns) if columns else None

    kept: dict[str, Any] = {"background": background}

    def contributions(frame: Any) -> Any:
        if kept["background"] is None:  # no registered one: a sample of the first chunk, kept for every chunk
            kept["background"] = frame.sample(min(len(frame), BACKGROUND_ROWS), random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            e = explain(model, frame, background=kept["background"])
        out = pd.DataFrame(e.contributions, columns=[f"shap_{f}" for f in e.features])
        out["shap_base_value"] = e.base_values
        return out

    return contributions


@contextmanager
def recorded(client: Client, version_uri: str, output: Any, enabled: bool) -> Iterator[DeploymentRecord | None]:
    """The run's deployment record (None when not recording): RUNNING, FAILED if the block raises.

    The caller ends it ``SUCCEEDED`` with its rows and duration. Recording never fails the run
    (``covex.recording``): a registry that does not answer is logged.
    """
    if not enabled:
        yield None
        return
    from covex.recording import DeploymentRecord

    with DeploymentRecord(client, version_uri, "batch", str(output)) as run:
        yield run


def _empty_schema(source: Source, ids: list[str]) -> Any:
    import pyarrow as pa

    schema = source.schema
    return pa.schema([*(schema.field(c) for c in ids), (MODEL_COLUMN, pa.string()), (VERSION_COLUMN, pa.int64())])
