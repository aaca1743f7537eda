"""Score Spark DataFrames with a registered model, across the cluster's executors.

    import covex.spark

    scored = covex.spark.score(spark_df, "models:/churn@champion")

The version is resolved once, on the driver, and its files are fetched and verified there; the
verified folder is shipped to the executors once (``SparkContext.addFile``), and each executor's
Python worker re-hashes every file against the registry's digests before it loads the model (once
per worker, then reused). Rows are scored in Arrow batches with ``mapInPandas``. Needs the
``spark`` and ``ml`` extras.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covex.batch.job import BatchResult, check_names, plan_columns, recorded
from covex.batch.model import MODEL_COLUMN, VERSION_COLUMN, ScoringModel, resolve
from covex.batch.sinks import Destination
from covex.batch.sources import open_source
from covex.domain.entities import FileEntry, ModelVersion
from covex.domain.errors import InvalidInput
from covex.extras import needs_extra

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from covex.client import Client

__all__ = ["score", "score_to_parquet"]

# Models loaded in this Python process (an executor's worker is reused across tasks), by manifest digest.
_LOADED: dict[str, ScoringModel] = {}


def score(df: DataFrame, uri: str, *, client: Client | None = None, columns: Sequence[str] | None = None) -> DataFrame:
    """Return ``df`` with the predictions of the version ``uri`` resolves to, ``model_name`` and ``model_version``.

    The model gets the columns its signature names (or ``columns``); a missing one is named in an
    ``InvalidInput`` before any job starts. Nothing runs until the result is used (Spark is lazy).
    """
    with needs_extra("covex.spark.score"), _quiet():
        model = _driver_model(client, uri)
        return _score(df, model, columns, "the Spark DataFrame")


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence PySpark's notice that it does not fully support pandas 3 (the conversions used here work)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        yield


def _driver_model(client: Client | None, uri: str) -> ScoringModel:
    from covex.client import Client

    own = client is None
    c = client or Client()
    try:
        version, files, path = resolve(c, uri)
    finally:
        if own:
            c.close()
    return ScoringModel.from_folder(version, files, path)


def _score(df: DataFrame, model: ScoringModel, columns: Sequence[str] | None, where: str) -> DataFrame:
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    features = model.feature_columns(list(df.columns), list(columns) if columns else None, where)
    predictions = _prediction_schema(df, model, features)
    check_names(list(df.columns), predictions.names)
    assert model.path is not None
    _ship(df.sparkSession, model.path)
    schema = StructType(
        [
            *df.schema.fields,
            *from_arrow_schema(predictions).fields,
            StructField(MODEL_COLUMN, StringType(), False),
            StructField(VERSION_COLUMN, LongType(), False),
        ]
    )
    version, files, folder = model.version, model.files, model.path.name

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return _score_batches(batches, version, files, folder, features)

    return df.mapInPandas(run, schema)


def _prediction_schema(df: DataFrame, model: ScoringModel, features: list[str]) -> Any:
    """The Arrow schema of the predictions, from scoring a few rows on the driver (or the model's input example)."""
    import pyarrow as pa  # type: ignore[import-untyped]

    sample: Any = df.select(*features).limit(16).toPandas()
    if sample.empty:
        from mlflow.models import Model

        assert model.path is not None
        example: Any = Model.load(str(model.path)).load_input_example(str(model.path))
        if example is None:
            raise InvalidInput(
                "the DataFrame has no rows and the model no input example to learn its output types from"
            )
        sample = example[features] if hasattr(example, "columns") else example
    return pa.Schema.from_pandas(model.predict(sample), preserve_index=False)


def _ship(spark: SparkSession, folder: Path) -> None:
    """Make the verified folder available to every executor (once per application: its name is the content digest)."""
    context = spark.sparkContext
    key = (context.applicationId, folder.name)
    if key not in _SHIPPED:
        context.addFile(str(folder), recursive=True)
        _SHIPPED.add(key)


# Folders already given to each Spark application (addFile takes a path once per application).
_SHIPPED: set[tuple[str, str]] = set()


def _score_batches(
    batches: Iterator[pd.DataFrame], version: ModelVersion, files: list[FileEntry], folder: str, features: list[str]
) -> Iterator[pd.DataFrame]:
    """Runs on the executors: verify and load the shipped model once per worker, then score each batch."""
    model = _LOADED.get(folder)
    if model is None:
        from pyspark import SparkFiles

        model = ScoringModel.from_folder(version, files, SparkFiles.get(folder))
        _LOADED[folder] = model
    for batch in batches:
        predictions = model.predict(batch[features])
        predictions.index = batch.index
        out = batch.join(predictions)
        out[MODEL_COLUMN] = version.name
        out[VERSION_COLUMN] = version.version
        yield out


def score_to_parquet(
    spark: SparkSession,
    uri: str,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    client: Client | None = None,
    columns: Sequence[str] | None = None,
    id_columns: Sequence[str] = (),
    overwrite: bool = False,
    record: bool = True,
) -> BatchResult:
    """Score a Parquet or CSV input on Spark and write the id columns, predictions and version as a Parquet folder.

    The folder is written under a temporary name beside ``output`` and renamed once Spark has
    committed every part, so a failed job leaves nothing under ``output``. With ``record``, the run
    is recorded on the version as a batch deployment, as ``covex.batch.score_file`` records it.
    """
    with needs_extra("covex.spark.score_to_parquet"), _quiet():
        return _score_to_parquet(
            spark, uri, os.fspath(input), output, client, columns, list(id_columns), overwrite, record
        )


def _score_to_parquet(
    spark: SparkSession,
    uri: str,
    location: str,
    output: str | os.PathLike[str],
    client: Client | None,
    columns: Sequence[str] | None,
    ids: list[str],
    overwrite: bool,
    record: bool,
) -> BatchResult:
    import pyarrow.dataset as ds  # type: ignore[import-untyped]
    from pyspark.sql.pandas.types import from_arrow_schema

    from covex.client import Client

    started = time.perf_counter()
    destination = Destination(output, overwrite=overwrite)
    open_source(location)  # a missing input is reported before the model is fetched
    model = _driver_model(client, uri)
    source = open_source(location, model.input_types)
    where = f"input {location!r}"
    plan_columns(model, source.columns, columns, ids, where)
    paths = source.paths if source.filesystem is None else [location]
    if source.format == "parquet":
        df = spark.read.parquet(*paths)
    else:
        df = spark.read.csv(paths, header=True, schema=from_arrow_schema(source.schema))
    scored = _score(df, model, columns, where)
    keep = [*ids, *(c for c in scored.columns if c not in df.columns)]
    own = client is None
    c = client or Client()
    try:
        with recorded(c, model.version.uri, destination.path, record) as run:
            try:
                scored.select(*keep).write.parquet(str(destination.partial))
                rows = int(ds.dataset(str(destination.partial), format="parquet").count_rows())
                path = destination.commit()
            except BaseException:
                destination.discard()
                raise
            if run is not None:
                run.end("SUCCEEDED", rows=rows, duration_s=time.perf_counter() - started)
    finally:
        if own:
            c.close()
    return BatchResult(
        model.version.name,
        model.version.version,
        model.version.uri,
        location,
        str(path),
        rows,
        time.perf_counter() - started,
        "spark",
    )
