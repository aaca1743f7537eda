"""``covex import mlflow`` against a real MLflow tracking server on a loopback port.

The server is filled through MLflow's own client (runs with metrics and params, scikit-learn models,
tags, descriptions, aliases, stages, a deleted version, a version without files, one with plain files);
the import must reproduce every field, every file byte for byte, and the same predictions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import covex
from covex.cli import app
from covex.ml.importer import SOURCE_TAG, ImportReport, import_from_mlflow
from tests import support

# MLflow's own warnings, narrowly: stages are deprecated there (but what MLflow users have), and it
# warns about type hints of its internal models.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*transition_model_version_stage.* is deprecated:FutureWarning",
    "ignore:.*Any type hint is inferred as AnyType:UserWarning",
)

MLFLOW_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no background job workers: starts and stops faster
}
STAGES = {"None": "None", "Staging": "Test", "Production": "Production", "Archived": "Archived"}


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite, proxied artifacts) for this module; always stopped."""
    root = tmp_path_factory.mktemp("mlflow")
    port = support.free_port()
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env={**os.environ, **MLFLOW_ENV},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its uvicorn child goes with it
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{uri}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start")
            time.sleep(0.2)
        with pytest.MonkeyPatch.context() as mp:
            for key, value in {**MLFLOW_ENV, "MLFLOW_TRACKING_URI": uri}.items():
                mp.setenv(key, value)
            yield uri
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


@dataclass
class Mlflow:
    uri: str
    x: pd.DataFrame


@pytest.fixture(scope="module")
def mlflow_models(mlflow_uri: str) -> Mlflow:
    """churn: v1 (Staging, @challenger), v2 deleted, v3 (Production, @champion), v4 without files,
    v5 plain files (Archived); fraud: v1. Filled only through MLflow's own client."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    assert mlflow_uri == mlflow.get_tracking_uri()
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"tenure": rng.random(60) * 60, "spend": rng.random(60) * 100})
    y = ((x.tenure < 20) | (x.spend > 80)).astype(int)
    ml = mlflow.MlflowClient()

    def log(model: Any, name: str, metrics: dict[str, float], params: dict[str, str], **extra: Any) -> str:
        with mlflow.start_run() as run:
            mlflow.log_metric("loss", 0.9, step=0)  # superseded: the import takes the latest value
            mlflow.log_metrics(metrics, step=1)
            mlflow.log_params(params)
            mlflow.set_tags(extra.pop("tags", {}))
            mlflow.sklearn.log_model(
                model.fit(x, y),
                name="model",
                registered_model_name=name,
                input_example=x.head(3),
                pip_requirements=["scikit-learn"],
                **extra,
            )
        return str(run.info.run_id)

    git = {"mlflow.source.git.commit": "0123456789abcdef", "mlflow.source.git.branch": "main"}
    log(LogisticRegression(C=1.0), "churn", {"auc": 0.91, "loss": 0.31}, {"C": "1.0"}, tags=git)
    logged = ml.get_model_version("churn", "1").source  # models:/m-<id>, MLflow 3's logged model
    mlflow.register_model(logged, "churn")  # v2, deleted below: a gap
    tree = DecisionTreeClassifier(max_depth=2, random_state=0)
    run = log(tree, "churn", {"auc": 0.95}, {"max_depth": "2"}, skops_trusted_types=["sklearn.tree._tree.Tree"])
    ml.create_model_version("churn", source=f"runs:/{run}/nothing-here", run_id=run)
    ml.log_text(run, "plain notes", "extra/notes.txt")
    ml.create_model_version("churn", source=f"runs:/{run}/extra", run_id=run, description="notes only")
    mlflow.register_model(logged, "fraud")  # the same files as churn v1
    ml.delete_model_version("churn", "2")
    ml.update_registered_model("churn", description="Churn classifier")
    ml.set_registered_model_tag("churn", "team", "crm")
    ml.set_registered_model_tag("churn", "domain", "retention")
    ml.update_model_version("churn", "1", description="baseline")
    ml.update_model_version("churn", "3", description="shallow tree")
    ml.set_model_version_tag("churn", "1", "validated", "yes")
    ml.set_model_version_tag("churn", "3", "owner", "ana")
    ml.set_registered_model_alias("churn", "champion", "3")
    ml.set_registered_model_alias("churn", "challenger", "1")
    ml.transition_model_version_stage("churn", "1", "Staging")
    ml.transition_model_version_stage("churn", "3", "Production")
    ml.transition_model_version_stage("churn", "5", "Archived")
    return Mlflow(mlflow_uri, x)


def _mlflow_files(name: str, version: str, dst: Path) -> dict[str, bytes]:
    import mlflow

    stored = mlflow.MlflowClient().get_model_version_download_uri(name, version)
    if not mlflow.artifacts.list_artifacts(artifact_uri=stored):
        return {}
    return support.read_tree(Path(mlflow.artifacts.download_artifacts(artifact_uri=stored, dst_path=str(dst))))


def assert_mirrors(c: covex.Client, mlflow_uri: str, tmp: Path, predict_on: pd.DataFrame | None = None) -> None:
    """Every model and version MLflow has is in Covex with the same fields, files and predictions."""
    import mlflow
    from mlflow.models import get_model_info

    ml = mlflow.MlflowClient()
    for rm in ml.search_registered_models():
        m = c.get_model(rm.name)
        assert (rm.description or "", rm.tags) == (m.description, m.tags)
        assert {a: int(v) for a, v in rm.aliases.items()} == m.aliases
        mvs = {int(mv.version): mv for mv in ml.search_model_versions(f"name = '{rm.name}'")}
        versions = {v.version: v for v in c.list_versions(rm.name)}
        assert sorted(mvs) == sorted(versions)  # the same numbers, gaps included
        for n, mv in mvs.items():
            v = versions[n]
            run = ml.get_run(mv.run_id)
            assert v.status == "READY"
            assert (mv.description or "", mv.source, mv.run_id) == (v.description, v.source, v.run_id)
            assert {**mv.tags, SOURCE_TAG: f"{mlflow_uri}#{rm.name}/{n}"} == v.tags
            assert (run.data.metrics, run.data.params) == (v.metrics, v.params)
            assert STAGES[mv.current_stage] == v.stage
            assert sorted(ml.get_model_version(rm.name, mv.version).aliases) == sorted(v.aliases)  # search omits them
            assert f"{mlflow_uri}/#/experiments/{run.info.experiment_id}/runs/{mv.run_id}" == v.run_link
            expected = _mlflow_files(rm.name, mv.version, tmp / f"ml-{rm.name}-{n}")
            if not expected:
                assert 0 == v.file_count  # recorded with its source only
                continue
            got = support.read_tree(c.download(v.uri, tmp / f"covex-{rm.name}-{n}"))
            assert expected == got
            if "MLmodel" not in expected:
                continue
            # Through the registry MLflow adds a file of its own naming the version; the rest is identical.
            via_registry = Path(mlflow.artifacts.download_artifacts(f"models:/{rm.name}/{n}", dst_path=str(tmp / "r")))
            assert {**got, "registered_model_meta": ANY} == support.read_tree(via_registry)
            signature = get_model_info(f"models:/{rm.name}/{n}").signature.to_dict()
            assert signature == c.get_document(v.uri, "signature")
            lineage = c.get_lineage(v.uri)
            assert (mv.run_id, n, mv.source) == (
                lineage["run_id"],
                lineage["mlflow"]["version"],
                lineage["mlflow"]["source"],
            )
            commit = run.data.tags.get("mlflow.source.git.commit")
            assert commit == (lineage["git"] or {}).get("commit")
            if predict_on is not None:
                theirs = mlflow.pyfunc.load_model(f"models:/{rm.name}/{n}").predict(predict_on)
                ours = covex.load_model(v.uri, client=c, cache_dir=str(tmp / "cache")).predict(predict_on)
                np.testing.assert_array_equal(np.asarray(theirs), np.asarray(ours))


def _outcomes(report: ImportReport) -> dict[str, str]:
    return {f"{v.model}/{v.version}": v.outcome for v in report.versions}


@pytest.mark.slow
def test_import_mirrors_mlflow_and_a_rerun_changes_nothing(
    client: covex.Client, mlflow_models: Mlflow, tmp_path: Path
) -> None:
    seen: list[tuple[int, int, str]] = []
    report = import_from_mlflow(client, mlflow_models.uri + "/", progress=lambda *a: seen.append(a))
    assert report.ok and [] == report.problems, report
    assert ["churn", "fraud"] == report.models
    assert {
        "churn/1": "copied",
        "churn/3": "copied",
        "churn/4": "metadata-only",
        "churn/5": "copied",
        "fraud/1": "copied",
    } == _outcomes(report)
    assert "no files" in next(v.detail for v in report.versions if v.outcome == "metadata-only")
    assert ["churn@challenger -> 1", "churn@champion -> 3"] == report.aliases
    assert ["models:/churn/1 -> Test", "models:/churn/3 -> Production", "models:/churn/5 -> Archived"] == report.stages
    assert (5, 5, "") == seen[-1] and "churn v1" == seen[0][2]
    assert_mirrors(client, mlflow_models.uri, tmp_path, predict_on=mlflow_models.x)

    before = {v.version: v for v in client.list_versions("churn")}
    again = import_from_mlflow(client, mlflow_models.uri)
    assert {"skipped"} == set(_outcomes(again).values()) and again.ok
    assert ([], [], []) == (again.aliases, again.stages, again.problems)
    assert before == {v.version: v for v in client.list_versions("churn")}  # nothing duplicated or touched
    assert 2 == len(client.search_models())


@pytest.mark.slow
def test_a_failure_halfway_leaves_no_half_version_and_a_rerun_completes(
    client: covex.Client, mlflow_models: Mlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.artifacts

    real = mlflow.artifacts.download_artifacts
    calls: list[str] = []

    def flaky(*args: Any, **kwargs: Any) -> str:
        calls.append(kwargs["artifact_uri"])
        if len(calls) == 2:  # churn v3: v2 is deleted, v1 was the first download
            raise ConnectionError("MLflow connection reset while downloading")
        return str(real(*args, **kwargs))

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", flaky)
    report = import_from_mlflow(client, mlflow_models.uri)
    assert not report.ok
    assert {
        "churn/1": "copied",
        "churn/3": "failed",
        "churn/4": "failed",
        "churn/5": "failed",
        "fraud/1": "copied",
    } == _outcomes(report)
    failed = {v.version: v.detail for v in report.versions if v.outcome == "failed"}
    assert "ConnectionError: MLflow connection reset while downloading" == failed[3]
    assert "not attempted: version 3 failed first" == failed[4]
    assert ["churn@challenger -> 1"] == report.aliases
    assert ["churn@champion -> 3: not set, version 3 is not imported"] == report.problems
    assert [1] == [v.version for v in client.list_versions("churn")]  # no version 3 at all, READY or not
    assert [] == client.search_versions("status != 'READY'").items

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", real)
    resumed = import_from_mlflow(client, mlflow_models.uri)
    assert resumed.ok, resumed
    assert {
        "churn/1": "skipped",
        "churn/3": "copied",
        "churn/4": "metadata-only",
        "churn/5": "copied",
        "fraud/1": "skipped",
    } == _outcomes(resumed)
    assert ["churn@champion -> 3"] == resumed.aliases
    assert_mirrors(client, mlflow_models.uri, tmp_path)


def test_versions_not_from_this_import_are_conflicts_and_stay_untouched(
    mlflow_models: Mlflow, tree, tmp_path: Path
) -> None:
    with covex.Client(tmp_path / "data") as c:
        c.create_model("fraud", description="ours")
        native = c.create_version("fraud", tree(), tags={"kept": "yes"})
        report = import_from_mlflow(c, mlflow_models.uri, ["fraud"])
        assert not report.ok
        assert {"fraud/1": "conflict"} == _outcomes(report)
        assert "not imported from" in report.versions[0].detail
        assert native == c.get_version("fraud", 1)
        assert ("ours", [1]) == (c.get_model("fraud").description, [v.version for v in c.list_versions("fraud")])


def test_a_stage_covex_lacks_is_reported_not_fatal(mlflow_models: Mlflow, tmp_path: Path) -> None:
    stages = ["None", "Dev", "Production", "Archived"]  # no Test for MLflow's Staging
    with covex.Client(tmp_path / "data", stages=stages) as c:
        report = import_from_mlflow(c, mlflow_models.uri, ["churn"])
        assert report.ok
        assert 1 == len(report.problems) and "stage 'Test' (MLflow 'Staging') is not configured" in report.problems[0]
        assert ("None", "Production") == (c.get_version("churn", 1).stage, c.get_version("churn", 3).stage)
        remapped = import_from_mlflow(c, mlflow_models.uri, ["churn"], stage_map={**STAGES, "Staging": "Dev"})
        assert (["models:/churn/1 -> Dev"], []) == (remapped.stages, remapped.problems)


def test_mlflow_down_is_one_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{support.free_port()}"
    with covex.Client(tmp_path / "data") as c:
        started = time.monotonic()
        with pytest.raises(covex.ServiceUnavailable, match=f"cannot reach MLflow at {down}"):
            import_from_mlflow(c, down)
        assert time.monotonic() - started < 60  # not MLflow's minutes of retries
    assert not (tmp_path / "data").exists()  # nothing written: not even an empty registry


def test_cli_imports_prints_a_summary_and_exits_by_outcome(mlflow_models: Mlflow, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"COVEX_URI": str(tmp_path / "data"), "COLUMNS": "200"}

    def covex_cli(*args: str) -> Any:
        return runner.invoke(app, ["import", "mlflow", *args], env=env)

    r = covex_cli("--from", mlflow_models.uri, "--model", "fraud", "--json")
    assert 0 == r.exit_code, r.output
    summary = json.loads(r.stdout)
    assert (["fraud"], 1, True) == (summary["models"], summary["counts"]["copied"], summary["ok"])

    r = covex_cli("--from", mlflow_models.uri, "--model", "fraud")
    assert 0 == r.exit_code
    assert "0 copied, 0 metadata only, 1 skipped (already there), 0 conflicts, 0 failed" in r.stdout

    with covex.Client(tmp_path / "data") as c:  # a churn of Covex's own holds number 1
        c.create_model("churn")
        c.create_version("churn", source="s3://elsewhere/churn/1")
    r = covex_cli("--from", mlflow_models.uri, "--model", "churn")
    assert 1 == r.exit_code  # the summary is printed; something was not imported
    assert "2 copied, 1 metadata only, 0 skipped (already there), 1 conflicts, 0 failed" in r.stdout
    assert "conflict: models:/churn/1: Covex already has version 1, not imported from" in r.stdout

    r = covex_cli("--from", mlflow_models.uri, "--model", "no-such-model")
    assert 3 == r.exit_code and "no-such-model" in r.stderr

    down = f"http://127.0.0.1:{support.free_port()}"
    r = covex_cli("--from", down)
    assert 6 == r.exit_code
    (line,) = r.stderr.splitlines()  # one line, no traceback, no progress bar residue
    assert line.startswith(f"error: cannot reach MLflow at {down}: ") and "refused" in line


def test_nan_and_infinite_metrics_are_left_behind_with_a_note(mlflow_models: Mlflow, tmp_path: Path) -> None:
    import mlflow
    from mlflow import MlflowClient

    with mlflow.start_run() as run:
        mlflow.log_metrics({"auc": 0.8, "loss": float("nan"), "gain": float("inf")})
        mlflow.log_text("weights", "model/weights.txt")
    mlflow_client = MlflowClient()
    mlflow_client.create_registered_model("odd-metrics")
    mlflow_client.create_model_version("odd-metrics", f"runs:/{run.info.run_id}/model", run.info.run_id)
    with covex.Client(tmp_path / "data") as c:
        report = import_from_mlflow(c, mlflow_models.uri, ["odd-metrics"])
        assert report.ok
        # MLflow itself stores infinity as the largest float; NaN it keeps as NaN.
        assert {"auc": 0.8, "gain": sys.float_info.max} == c.get_version("odd-metrics", 1).metrics
        [result] = report.versions
        assert "metrics loss are NaN or infinite in MLflow; not copied" in result.detail
