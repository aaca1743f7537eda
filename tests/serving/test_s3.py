"""Deploying with data on S3 (moto's S3 server on a loopback port): the inference log and batch input."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

import covex
from tests.serving.conftest import COLUMNS, ROOT, split, training_data
from tests.test_s3 import monkeypatch_module, s3_endpoint  # noqa: F401 - fixtures

ROWS = [[0.9, 0.8, 0.1, 2], [0.1, 0.05, 0.3, 0]]


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811 - the fixture above
    """A new bucket; fsspec (and so every covex process started from here) reaches it through FSSPEC_S3."""
    name = f"deploy-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    monkeypatch.setenv("FSSPEC_S3", json.dumps({"endpoint_url": s3_endpoint}))
    return name


def s3fs_client(endpoint: str) -> Any:
    import s3fs

    return s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)


def test_the_inference_log_goes_to_s3_whole_files_partitioned(
    serve: Callable[..., Any],
    bucket: str,
    s3_endpoint: str,  # noqa: F811
) -> None:
    import pyarrow.dataset as ds

    with serve("models:/churn/1", "--log-inferences", f"s3://{bucket}/inferences", "--no-record") as s:
        for i in range(3):
            assert 200 == s.post("/invocations", json=split(ROWS), headers={"X-Request-ID": f"r{i}"}).status_code
        assert 0 == s.terminate()  # flushed on the way out
    fs = s3fs_client(s3_endpoint)
    files = fs.find(f"{bucket}/inferences")
    assert files and all("/model=churn/version=1/date=20" in f and f.endswith(".parquet") for f in files)
    assert not [f for f in files if "partial" in f]
    table = ds.dataset(f"{bucket}/inferences", filesystem=fs, partitioning="hive").to_table().to_pandas()
    assert ["r0", "r1", "r2"] == sorted(table["request_id"])
    assert {2} == set(table["rows"]) and {1} == set(table["version"].astype(int))


def test_batch_reads_a_folder_on_s3(registry_dir: Path, bucket: str, s3_endpoint: str, tmp_path: Path) -> None:  # noqa: F811
    import pandas as pd

    X, _ = training_data(3)
    X = X.assign(customer=range(len(X)))
    fs = s3fs_client(s3_endpoint)
    for part, rows in enumerate((X.iloc[:120], X.iloc[120:])):
        with fs.open(f"{bucket}/customers/part-{part}.parquet", "wb") as f:
            rows.to_parquet(f, index=False)
    out = tmp_path / "scored.parquet"
    command = [sys.executable, "-m", "covex", "--uri", str(registry_dir), "batch", "models:/churn/1"]
    command += ["-i", f"s3://{bucket}/customers/", "-o", str(out), "--id-column", "customer", "--json"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert 0 == done.returncode, done.stderr
    assert len(X) == json.loads(done.stdout)["rows"]
    scored = pd.read_parquet(out)
    with covex.Client(registry_dir) as c:
        expected = covex.load_model("models:/churn/1", client=c).predict(X[COLUMNS])
    assert X["customer"].tolist() == scored["customer"].tolist()
    assert list(expected) == scored["prediction"].tolist()
    missing = subprocess.run(
        [*command[:7], "-i", f"s3://{bucket}/nothing-here/", "-o", str(tmp_path / "x.parquet")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert 2 == missing.returncode and "does not exist" in missing.stderr, missing.stderr
