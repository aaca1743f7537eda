"""On Spark, partitions count on the reference's bins and the driver adds up: the same result as a local check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import covex
from covex.monitoring import check, reference_of
from tests.support import make_tree

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40 + shift, 10, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "city": rng.choice(["Oslo", "Rome", "Lima"], rows),
        }
    )


def test_spark_counts_add_up_to_the_local_check(tmp_path: Path, spark: Any) -> None:
    current = frame(3000, 1, shift=10)
    current.loc[::7, "income"] = np.nan
    current["prediction"] = (current["age"] > 45).astype(int)
    reference = frame(5000, 0)
    with covex.Client(tmp_path / "registry") as c:
        c.create_model("churn")
        c.create_version("churn", make_tree(tmp_path / "files", {"model.pkl": b"w"}))
        stored = reference_of(reference, lambda f: (f["age"] > 45).astype(int))
        c.monitoring.set_reference("churn", 1, stored)
        local = check(c, "models:/churn/1", data=current, prediction_columns=["prediction"], record=False)
        on_spark = check(c, "models:/churn/1", data=spark.createDataFrame(current).repartition(4),
                         prediction_columns=["prediction"])  # fmt: skip
        current.to_parquet(tmp_path / "current.parquet")
        from_file = check(c, "models:/churn/1", data=str(tmp_path / "current.parquet"), engine="spark",
                          prediction_columns=["prediction"], record=False)  # fmt: skip
    assert ("DRIFT", 3000, "a Spark DataFrame") == (on_spark.status, on_spark.rows, on_spark.source)
    for result in (on_spark, from_file):
        assert local.body["features"] == result.body["features"]
        assert local.body["predictions"] == result.body["predictions"]
        assert ["age"] == result.body["drifted"]


def test_labels_are_refused_on_spark(tmp_path: Path) -> None:
    with covex.Client(tmp_path / "registry") as c, pytest.raises(covex.InvalidInput, match="joined locally"):
        check(c, "models:/churn/1", data="x.parquet", engine="spark", labels="labels.csv", target="y")
