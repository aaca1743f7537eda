"""``covex batch`` on the local engine: outputs equal in-process predictions; bad input gets one line, an exit code."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import FEATURES, Registered, frame


def _expected(registered: Registered, df: pd.DataFrame, version: int = 1) -> np.ndarray:
    return np.asarray(registered.models[version].predict(df[FEATURES]))


@pytest.mark.parametrize("kind", ["parquet", "csv", "folder"])
@pytest.mark.parametrize("backend", ["embedded", "http"])
def test_output_matches_in_process_predictions_row_by_row(
    registered: Registered, data: Callable[..., Path], tmp_path: Path, kind: str, backend: str
) -> None:
    df = frame(1000)
    source = data(kind=kind, df=df)
    out = tmp_path / "scored.parquet"
    r = registered.cli(
        "batch", "models:/churn@champion", "--input", str(source), "--output", str(out),
        "--chunk-rows", "128", "--id-column", "id", backend=backend,
    )  # fmt: skip
    assert 0 == r.exit_code, r.stderr
    scored = pq.read_table(out).to_pandas()
    assert ["id", "prediction", "model_name", "model_version"] == list(scored.columns)
    np.testing.assert_array_equal(df["id"].to_numpy(), scored["id"].to_numpy())
    np.testing.assert_array_equal(_expected(registered, df), scored["prediction"].to_numpy())
    assert ({"churn"}, {1}) == (set(scored.model_name), set(scored.model_version))
    assert "scored 1,000 rows with models:/churn/1 in " in r.stdout
    assert str(out) in r.stdout


def test_json_summary_and_columns_option(registered: Registered, data: Callable[..., Path], tmp_path: Path) -> None:
    df = frame(300)
    out = tmp_path / "scored.parquet"
    r = registered.cli(
        "batch", "models:/churn/2", "-i", str(data(df=df)), "-o", str(out),
        "--columns", "tenure,spend", "--columns", "calls", "--id-column", "id,region", "--json",
    )  # fmt: skip
    assert 0 == r.exit_code, r.stderr
    summary = json.loads(r.stdout)
    assert {"model": "churn", "version": 2, "uri": "models:/churn/2", "rows": 300, "engine": "local"}.items() <= (
        summary.items()
    )
    assert str(out) == summary["output"]
    scored = pq.read_table(out).to_pandas()
    assert ["id", "region", "prediction", "model_name", "model_version"] == list(scored.columns)
    np.testing.assert_array_equal(_expected(registered, df, 2), scored["prediction"].to_numpy())


def test_progress_lines_on_request(registered: Registered, data: Callable[..., Path], tmp_path: Path) -> None:
    out = tmp_path / "scored.parquet"
    r = registered.cli("batch", "models:/churn@champion", "-i", str(data()), "-o", str(out), "--progress")
    assert 0 == r.exit_code, r.stderr
    assert "with models:/churn/1" in r.stderr and "1,000 rows" in r.stderr


def test_an_empty_input_gives_an_empty_output(
    registered: Registered, data: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "scored.parquet"
    r = registered.cli(
        "batch", "models:/churn@champion", "-i", str(data(df=frame(0))), "-o", str(out), "--id-column", "id"
    )
    assert 0 == r.exit_code, r.stderr
    assert (0, ["id", "model_name", "model_version"]) == (pq.read_table(out).num_rows, pq.read_table(out).column_names)


def _bad(registered: Registered, *args: str) -> tuple[int, str]:
    r = registered.cli("batch", "models:/churn@champion", *args)
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert 1 == len(lines), r.stderr
    return r.exit_code, lines[0]


def test_bad_input_is_one_line_and_an_exit_code(
    registered: Registered, data: Callable[..., Path], tmp_path: Path
) -> None:
    out = str(tmp_path / "scored.parquet")
    good = str(data())
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    text = tmp_path / "data.txt"
    text.write_text("a,b\n1,2\n")
    no_spend = tmp_path / "nospend.parquet"
    frame(10).drop(columns="spend").to_parquet(no_spend)
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    cases = {
        "missing input": (["-i", str(tmp_path / "nope.parquet"), "-o", out], 2, "nope.parquet' does not exist"),
        "unreadable file": (["-i", str(garbage), "-o", out], 2, "garbage.parquet' cannot be read"),
        "unknown format": (["-i", str(text), "-o", out], 2, "is neither .parquet nor .csv"),
        "empty folder": (["-i", str(empty_folder), "-o", out], 2, "holds no .parquet or .csv files"),
        "missing feature": (["-i", str(no_spend), "-o", out], 2, "column 'spend' is not in input"),
        "missing id column": (["-i", good, "-o", out, "--id-column", "key"], 2, "id column 'key' is not in input"),
        "unknown --columns": (["-i", good, "-o", out, "--columns", "tenure,bogus"], 2, "column 'bogus' is not in"),
        "clashing id column": (["-i", good, "-o", out, "--id-column", "model_version"], 2, "'model_version'"),
        "output folder missing": (["-i", good, "-o", str(tmp_path / "no" / "x.parquet")], 2, "does not exist"),
        "bad chunk rows": (["-i", good, "-o", out, "--chunk-rows", "0"], 2, "'--chunk-rows' must be at least 1"),
        "bad engine": (["-i", good, "-o", out, "--engine", "dask"], 2, "'--engine' must be local or spark"),
        "csv output": (["-i", good, "-o", str(tmp_path / "scored.csv")], 2, "batch output is Parquet"),
    }
    for name, (args, code, message) in cases.items():
        got_code, line = _bad(registered, *args)
        assert (code, True) == (got_code, message in line), f"{name}: {got_code} {line}"
    assert [] == os.listdir(tmp_path / "empty")
    assert not (tmp_path / "scored.parquet").exists()
    assert [] == [p for p in os.listdir(tmp_path) if "covex-partial" in p]


def test_an_unknown_model_is_not_found(registered: Registered, data: Callable[..., Path], tmp_path: Path) -> None:
    r = registered.cli("batch", "models:/nobody@champion", "-i", str(data()), "-o", str(tmp_path / "o.parquet"))
    assert 3 == r.exit_code, r.stderr


def test_an_existing_output_is_kept_unless_overwrite(
    registered: Registered, data: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "scored.parquet"
    out.write_bytes(b"precious")
    code, line = _bad(registered, "-i", str(data()), "-o", str(out))
    assert (4, b"precious") == (code, out.read_bytes())
    assert "exists already" in line and "--overwrite" in line
    r = registered.cli("batch", "models:/churn@champion", "-i", str(data()), "-o", str(out), "--overwrite")
    assert 0 == r.exit_code, r.stderr
    assert 1000 == pq.read_table(out).num_rows


def test_a_job_failing_halfway_leaves_no_output(registered: Registered, tmp_path: Path) -> None:
    """The second file of the folder has a text column where the model needs numbers: chunks were written by then."""
    folder = tmp_path / "data"
    folder.mkdir()
    frame(500).to_csv(folder / "a.csv", index=False)
    frame(500).assign(calls="many").to_csv(folder / "b.csv", index=False)
    out = tmp_path / "scored.parquet"
    out.write_bytes(b"previous run")
    code, line = _bad(registered, "-i", str(folder), "-o", str(out), "--chunk-rows", "100", "--overwrite")
    assert 2 == code
    assert "b.csv" in line and "calls" in line, line
    assert b"previous run" == out.read_bytes()
    assert ["data", "scored.parquet"] == sorted(os.listdir(tmp_path))


def test_a_bad_csv_row_names_the_file_and_row(registered: Registered, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    frame(20).to_csv(path, index=False)
    with path.open("a") as f:
        f.write("21,1.0,2.0,3,north,extra\n")
    code, line = _bad(registered, "-i", str(path), "-o", str(tmp_path / "o.parquet"))
    assert 2 == code
    assert "data.csv" in line and "Expected 5 columns, got 6" in line, line


def test_a_version_that_is_not_an_mlflow_model_is_one_line_and_a_model_without_signature_ignores_the_ids(
    tmp_path: Path,
) -> None:
    import warnings

    from sklearn.linear_model import LogisticRegression

    import covex
    from covex.ml import log_model
    from tests import support

    df = frame(50)
    files = tmp_path / "files"
    files.mkdir()
    (files / "model.pkl").write_bytes(b"weights")
    registry = tmp_path / "data"
    with covex.Client(registry) as c, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c.create_model("plain")
        c.create_version("plain", files)
        x = df[FEATURES]
        log_model(c, LogisticRegression().fit(x, (x.tenure < 20).astype(int)), "nosig")  # no example: no signature
        assert c.get_version("models:/nosig/1") is not None
        with pytest.raises(covex.InvalidState, match=r"models:/plain/1 is not an MLflow model"):
            covex.load_model("models:/plain/1", client=c)
    source = tmp_path / "in.parquet"
    df[FEATURES].assign(customer=range(len(df))).to_parquet(source, index=False)

    def run(*args: str) -> support.CliResult:
        from typer.testing import CliRunner

        from covex.cli.main import app

        env = {"COVEX_URI": str(registry), "COVEX_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}
        r = CliRunner().invoke(app, ["batch", *args], env=env)
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return support.CliResult(r.exit_code, r.stdout, r.stderr)

    plain = run("models:/plain/1", "-i", str(source), "-o", str(tmp_path / "p.parquet"))
    assert 4 == plain.exit_code and "models:/plain/1 is not an MLflow model" in plain.stderr, plain.stderr
    assert 1 == len(plain.stderr.strip().splitlines())
    scored = run("models:/nosig/1", "-i", str(source), "-o", str(tmp_path / "n.parquet"), "--id-column", "customer")
    assert 0 == scored.exit_code, scored.stderr
    assert list(range(len(df))) == pd.read_parquet(tmp_path / "n.parquet")["customer"].tolist()
