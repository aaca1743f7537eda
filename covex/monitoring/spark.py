"""Checks of Spark DataFrames: each partition counts on the reference's bins, the driver adds the counts up.

The counting is the same code as a local check (``covex.monitoring.check.Tally``), run inside
``mapInPandas`` on the executors; each partition sends one small JSON state to the driver, so a
window of any size is checked without a shuffle and without collecting rows. Needs the ``spark``
extra; labels are joined locally (a check with labels reads its data in this process).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from covex.domain.monitoring import MonitorConfig
from covex.monitoring.check import Tally
from covex.monitoring.sources import Chunk


def is_spark_frame(data: Any) -> bool:
    """A ``pyspark.sql.DataFrame`` (without importing pyspark where it is not loaded)."""
    return type(data).__module__.startswith("pyspark.sql") and hasattr(data, "mapInPandas")


def tally(
    frame: Any,
    reference: Mapping[str, Any],
    config: MonitorConfig,
    prediction_columns: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> Tally:
    """Count ``frame``'s rows on the reference's bins, partition by partition, and add the counts up."""
    import pandas as pd

    from covex.domain.errors import InvalidInput

    missing = [c for c in prediction_columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"prediction column {missing[0]!r} is not in the data")
    reference = dict(reference)
    features = config.features
    wanted = list(prediction_columns)

    def partition(batches: Iterator[Any]) -> Iterator[Any]:
        counted = Tally(reference, features, ignore)
        for batch in batches:
            predictions = batch[wanted] if wanted else None
            counted.add(Chunk(batch.drop(columns=wanted), predictions, None))
        yield pd.DataFrame({"state": [json.dumps(counted.state())]})

    total = Tally(reference, features, ignore)
    with warnings.catch_warnings():  # pyspark warns of pandas 3 on every conversion; the counting needs no more
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        states = frame.mapInPandas(partition, schema="state string").collect()
    for row in states:
        total.absorb(json.loads(row.state))
    return total


def read(spark: Any, location: str) -> Any:
    """A Parquet or CSV file or folder as a Spark DataFrame (CSV with a header, types inferred)."""
    from covex.domain.errors import InvalidInput

    lowered = location.lower().rstrip("/")
    if lowered.endswith(".csv"):
        return spark.read.option("header", True).option("inferSchema", True).csv(location)
    try:
        return spark.read.parquet(location)
    except Exception as exc:  # noqa: BLE001 - Spark's AnalysisException: a path that does not exist or holds no Parquet
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"'--data' {location!r} cannot be read by Spark: {reason}") from None


def session(master: str | None) -> Any:
    """The active Spark session, or a new one on ``master`` (default ``local[*]``)."""
    from pyspark.sql import SparkSession

    if not master and SparkSession.getActiveSession() is not None:
        return SparkSession.getActiveSession()
    return SparkSession.builder.appName("covex monitor").master(master or "local[*]").getOrCreate()
