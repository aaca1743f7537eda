"""covex.spark and ``covex batch --engine spark`` on a real local Spark session (one for all these tests)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds
import pytest

from covex.batch.model import ScoringModel, resolve
from tests.batch.conftest import FEATURES, Registered, frame

pytestmark = [
    pytest.mark.slow,
    # PySpark warns that it does not fully support pandas 3 (what it uses here works).
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning"),
]


def test_score_matches_in_process_predictions(registered: Registered, spark: Any) -> None:
    import covex.spark

    df = frame(600)
    sdf = spark.createDataFrame(df).repartition(3)
    with registered.client() as c:
        scored = covex.spark.score(sdf, "models:/churn@champion", client=c)
    got = scored.toPandas().sort_values("id").reset_index(drop=True)
    assert [*df.columns, "prediction", "model_name", "model_version"] == got.columns.tolist()
    np.testing.assert_array_equal(df["id"].to_numpy(), got["id"].to_numpy())
    np.testing.assert_array_equal(registered.models[1].predict(df[FEATURES]), got["prediction"].to_numpy())
    assert ({"churn"}, {1}) == (set(got.model_name), set(got.model_version))


def test_a_missing_column_is_named_before_any_job(registered: Registered, spark: Any) -> None:
    import covex.spark

    sdf = spark.createDataFrame(frame(10).drop(columns="calls"))
    with (
        registered.client() as c,
        pytest.raises(covex.InvalidInput, match="column 'calls' is not in the Spark DataFrame"),
    ):
        covex.spark.score(sdf, "models:/churn@champion", client=c)


def test_executors_verify_the_files_before_loading(registered: Registered, spark: Any) -> None:
    """A digest that does not match what the executor received stops the job there, before the model loads."""
    from covex.spark import _score

    with registered.client() as c:
        version, files, path = resolve(c, "models:/churn/2")
    model = ScoringModel.from_folder(version, files, path)
    model.files = [f.model_copy(update={"digest": "0" * 64}) if f.path == "MLmodel" else f for f in files]
    scored = _score(spark.createDataFrame(frame(20)), model, None, "the Spark DataFrame")
    with pytest.raises(Exception, match="MLmodel: content does not match its digest"):
        scored.collect()


@pytest.mark.parametrize("kind", ["parquet", "csv", "folder"])
def test_cli_engine_spark_writes_parquet(
    registered: Registered, spark: Any, data: Callable[..., Path], tmp_path: Path, kind: str
) -> None:
    df = frame(700)
    out = tmp_path / "scored"
    args = ["batch", "models:/churn@champion", "-i", str(data(kind=kind, df=df)), "-o", str(out), "--engine", "spark"]
    r = registered.cli(*args, "--id-column", "id", "--json")
    assert 0 == r.exit_code, r.stderr
    assert {"rows": 700, "engine": "spark", "version": 1}.items() <= r.json().items()
    got = ds.dataset(out, format="parquet").to_table().to_pandas().sort_values("id").reset_index(drop=True)
    assert ["id", "prediction", "model_name", "model_version"] == got.columns.tolist()
    np.testing.assert_array_equal(df["id"].to_numpy(), got["id"].to_numpy())
    np.testing.assert_array_equal(registered.models[1].predict(df[FEATURES]), got["prediction"].to_numpy())
    with registered.client() as c:  # the run is recorded on the version that scored it
        [run] = [d for d in c.deployments("churn") if d.target == str(out)]
        assert ("batch", "SUCCEEDED", 1, 700) == (run.kind, run.status, run.version, run.rows)
    if kind == "parquet":
        again = registered.cli(*args)
        assert (4, True) == (again.exit_code, "exists already" in again.stderr), again.stderr
        assert 0 == registered.cli(*args, "--overwrite").exit_code
    assert [] == [p for p in os.listdir(tmp_path) if "covex-" in p]


def test_cli_engine_spark_failing_leaves_no_output(registered: Registered, spark: Any, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    frame(50).assign(calls="many").to_csv(path, index=False)
    out = tmp_path / "scored"
    r = registered.cli("batch", "models:/churn@champion", "-i", str(path), "-o", str(out), "--engine", "spark")
    assert 0 != r.exit_code
    assert "Traceback" not in r.stderr and 1 == len(r.stderr.strip().splitlines()), r.stderr
    assert ["data.csv"] == os.listdir(tmp_path)
