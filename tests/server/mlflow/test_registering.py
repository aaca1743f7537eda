"""A training script against Covex alone: MLflow's client logs a run and a model, registers it, and loads
every kind of ``models:/`` URI back; policies and the garbage collector see those versions like any other."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from covex.domain.uris import parse_model_uri
from tests.server.mlflow.conftest import MlflowServer

mlflow = pytest.importorskip("mlflow")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")]


@pytest.fixture
def as_admin(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowServer]:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", mlflow_server.admin_token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_registry_uri(mlflow_server.url)
    yield mlflow_server
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _train() -> tuple[Any, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(3).random((50, 3))
    return LogisticRegression().fit(x, (x[:, 1] > 0.5).astype(int)), x


def test_log_model_with_a_registered_name_makes_a_verified_version_that_loads_by_every_uri(
    as_admin: MlflowServer, tmp_path: Path
) -> None:
    model, x = _train()
    with mlflow.start_run() as run:
        mlflow.log_params({"C": 1.0, "solver": "lbfgs"})
        mlflow.log_metric("auc", 0.93)
        mlflow.sklearn.log_model(model, name="model", registered_model_name="reg-churn")
    registered = mlflow.register_model(f"runs:/{run.info.run_id}/model", "reg-churn")
    assert registered.version == "2" and registered.status == "READY"

    svc = as_admin.service
    version = svc.get_version(parse_model_uri("models:/reg-churn/1"))
    assert version.status == "READY" and version.manifest_digest  # files in Covex, not a pointer
    assert version.run_id == run.info.run_id
    assert version.metrics == {"auc": 0.93} and version.params == {"C": "1.0", "solver": "lbfgs"}
    assert "MLmodel" in {f.path for f in svc.list_files(parse_model_uri("models:/reg-churn/1"))[1]}
    # The same files, stored once.
    second = svc.get_version(parse_model_uri("models:/reg-churn/2"))
    assert second.manifest_digest == version.manifest_digest

    client = mlflow.MlflowClient()
    client.set_registered_model_alias("reg-churn", "champion", "1")
    client.transition_model_version_stage("reg-churn", "2", "Staging")
    assert svc.get_version(parse_model_uri("models:/reg-churn/2")).stage == "Test"  # Staging is Covex's Test
    expected = list(model.predict(x[:4]))
    for uri in (
        "models:/reg-churn/1",
        "models:/reg-churn@champion",
        "models:/reg-churn/Staging",
        "models:/reg-churn/latest",
    ):
        assert list(mlflow.pyfunc.load_model(uri).predict(x[:4])) == expected, uri
    got = Path(mlflow.artifacts.download_artifacts(artifact_uri="models:/reg-churn@champion", dst_path=str(tmp_path)))
    assert (got / "MLmodel").is_file()


def test_the_garbage_collector_keeps_what_runs_logged(as_admin: MlflowServer) -> None:
    model, _ = _train()
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="kept")  # logged, never registered
    gone = as_admin.service.gc(apply=True, grace_seconds=0)
    logged = mlflow.search_logged_models(filter_string="name = 'kept'", output_format="list")
    assert logged and not gone.referenced_missing
    folder = mlflow.artifacts.download_artifacts(artifact_uri=logged[0].artifact_location)
    assert (Path(folder) / "MLmodel").is_file(), run.info.run_id


def test_a_policy_protected_transition_is_refused_and_names_the_request(as_admin: MlflowServer) -> None:
    from mlflow.exceptions import MlflowException

    svc = as_admin.service
    client = mlflow.MlflowClient()
    client.create_registered_model("reg-guarded")
    client.create_model_version("reg-guarded", "s3://bucket/guarded")
    svc.approvals.set_policy("stage", "Production", {"approvals": 1}, model="reg-guarded")
    with warnings.catch_warnings(), pytest.raises(MlflowException) as caught:
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage("reg-guarded", "1", "Production")
    assert caught.value.error_code == "PERMISSION_DENIED"
    assert "covex requests create reg-guarded 1 --stage Production" in caught.value.message
    assert svc.get_version(parse_model_uri("models:/reg-guarded/1")).stage == "None"
