"""MLflow's own client logs runs, metrics, params, tags and models to a Covex server, and reads them back."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import numpy as np
import pytest

from covex.domain.errors import InvalidInput
from tests.server.mlflow.conftest import MlflowServer

mlflow = pytest.importorskip("mlflow")
# MLflow warns about its own type hints and about models without a signature: not what these tests check.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")]


def _model() -> object:
    from sklearn.linear_model import LogisticRegression

    x = np.arange(40, dtype=float).reshape(20, 2)
    return LogisticRegression().fit(x, (x[:, 0] > 20).astype(int))


def _call(server: MlflowServer, method: str, path: str, token: str | None, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def test_a_run_logs_params_metrics_tags_and_a_model_then_reads_them_back(as_user: MlflowServer) -> None:
    import mlflow.sklearn

    with mlflow.start_run() as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"depth": 3, "kind": "lr"})
        for step, value in enumerate([0.9, 0.7, 0.4]):
            mlflow.log_metric("loss", value, step=step)
        mlflow.log_metrics({"auc": 0.8, "odd": float("nan"), "big": float("inf")})
        mlflow.set_tag("team", "risk")
        info = mlflow.sklearn.log_model(_model(), name="model", registered_model_name=None)
    client = mlflow.MlflowClient()
    got = client.get_run(run.info.run_id)
    assert {"alpha": "0.5", "depth": "3", "kind": "lr"} == got.data.params
    assert (0.4, 0.8, math.inf) == (got.data.metrics["loss"], got.data.metrics["auc"], got.data.metrics["big"])
    assert math.isnan(got.data.metrics["odd"]) and "risk" == got.data.tags["team"]
    assert ("FINISHED", "alice") == (got.info.status, got.info.user_id)
    assert got.info.artifact_uri == f"mlflow-artifacts:/0/{run.info.run_id}/artifacts"
    assert [0.9, 0.7, 0.4] == [m.value for m in client.get_metric_history(run.info.run_id, "loss")]
    # The logged model: READY, its artifacts under its own root, the run's outputs name it.
    model = client.get_logged_model(info.model_id)
    assert (model.status.to_proto(), model.source_run_id) == (2, run.info.run_id)
    assert model.artifact_location == f"mlflow-artifacts:/0/models/{info.model_id}/artifacts"
    assert [info.model_id] == [o.model_id for o in got.outputs.model_outputs]
    client.set_logged_model_tags(info.model_id, {"stage": "candidate"})
    assert "candidate" == client.get_logged_model(info.model_id).tags["stage"]
    found = mlflow.search_logged_models(experiment_ids=["0"], output_format="list")
    assert info.model_id in [m.model_id for m in found]
    assert 1 <= len(mlflow.search_runs(experiment_ids=["0"], filter_string="tags.team = 'risk'"))
    assert hasattr(mlflow.sklearn.load_model(info.model_uri), "predict")
    # What the registry takes from it, by every form of source.
    svc = as_user.service.tracking
    stored = svc.model_files(info.model_uri)
    assert stored is not None and {"MLmodel", "model.skops"} <= {f.path for f in stored.files}
    assert (stored.run_id, stored.model_id, stored.params["alpha"], stored.metrics["auc"]) == (
        run.info.run_id,
        info.model_id,
        "0.5",
        0.8,
    )
    by_run = svc.model_files(f"runs:/{run.info.run_id}/model")
    assert by_run is not None and by_run.files == stored.files and by_run.model_id == info.model_id
    root = f"0/models/{info.model_id}/artifacts"
    for source in (f"mlflow-artifacts:/{root}", f"http://elsewhere:5000/api/2.0/mlflow-artifacts/artifacts/{root}"):
        assert (svc.model_files(source) or stored).files == stored.files and svc.model_files(source) is not None
    for unknown in ("models:/m-" + "0" * 32, "runs:/" + "0" * 32 + "/model", "s3://bucket/model", "models:/churn/1"):
        assert svc.model_files(unknown) is None
    with pytest.raises(InvalidInput, match="MLmodel"):
        svc.model_files(f"mlflow-artifacts:/{root}/model.skops")


def test_a_model_logged_without_a_run_and_an_experiment_by_name(as_user: MlflowServer, tmp_path: Path) -> None:
    import mlflow.sklearn

    info = mlflow.sklearn.log_model(_model(), name="model")
    assert mlflow.MlflowClient().get_logged_model(info.model_id).status.to_proto() == 2
    mlflow.set_experiment("churn-training")
    (tmp_path / "notes.txt").write_text("hello")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "notes.txt"), artifact_path="docs")
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="docs/notes.txt", dst_path=str(tmp_path / "out")
    )
    assert "hello" == Path(local).read_text()
    assert [run.info.run_id] == list(mlflow.search_runs(experiment_names=["churn-training"])["run_id"])
    experiment = mlflow.get_experiment_by_name("churn-training")
    assert experiment.artifact_location == f"mlflow-artifacts:/{experiment.experiment_id}"
    assert "Default" == mlflow.get_experiment("0").name


def test_refusals_in_mlflow_words(as_user: MlflowServer) -> None:
    client = mlflow.MlflowClient()
    run = client.create_run("0")
    client.log_param(run.info.run_id, "alpha", "1")
    with pytest.raises(mlflow.exceptions.MlflowException) as changed:
        client.log_param(run.info.run_id, "alpha", "2")
    assert "INVALID_PARAMETER_VALUE" == changed.value.error_code
    with pytest.raises(mlflow.exceptions.MlflowException) as missing:
        client.get_run("0" * 32)
    assert "RESOURCE_DOES_NOT_EXIST" == missing.value.error_code
    with pytest.raises(mlflow.exceptions.MlflowException) as too_long:
        client.log_param(run.info.run_id, "long", "x" * 6001)
    assert "INVALID_PARAMETER_VALUE" == too_long.value.error_code
    body = {"run_id": run.info.run_id, "key": "beta", "value": "1"}
    # Another user may not change the run, nor read it (test_tracking_access); nobody without a token may either.
    other = _call(as_user, "POST", "/api/2.0/mlflow/runs/log-parameter", as_user.other_token, json=body)
    assert (403, "PERMISSION_DENIED") == (other.status_code, other.json()["error_code"])
    reads = _call(
        as_user, "GET", "/api/2.0/preview/mlflow/runs/get", as_user.other_token, params={"run_id": run.info.run_id}
    )
    assert (404, "RESOURCE_DOES_NOT_EXIST") == (reads.status_code, reads.json()["error_code"])
    assert "alpha" not in reads.text
    anonymous = _call(as_user, "POST", "/api/2.0/mlflow/runs/log-parameter", None, json=body)
    assert (401, "UNAUTHENTICATED") == (anonymous.status_code, anonymous.json()["error_code"])
    admin = _call(as_user, "POST", "/api/2.0/mlflow/runs/log-parameter", as_user.admin_token, json=body)
    assert 200 == admin.status_code
    unknown = _call(as_user, "POST", "/api/2.0/mlflow/runs/no-such-thing", as_user.user_token, json={})
    assert (404, "ENDPOINT_NOT_FOUND") == (unknown.status_code, unknown.json()["error_code"])


def test_like_patterns_that_stalled_the_server_answer_at_once(as_user: MlflowServer) -> None:
    """``%`` became ``.*`` in a regex: ``'%%%%%b'`` against a 250-character run name took 10 s per request."""
    client = mlflow.MlflowClient()
    run = client.create_run("0", run_name="a" * 250)
    client.set_tag(run.info.run_id, "long", "a" * 8000)
    for stalling in ("attributes.run_name LIKE '%%%%%%%%b'", "tags.long ILIKE '%a%a%a%a%a%a%a%a%b'"):
        assert run.info.run_id not in [r.info.run_id for r in client.search_runs(["0"], stalling)]
    found = client.search_runs(["0"], "attributes.run_name LIKE 'a%a' and tags.long ILIKE '%A_A%'")
    assert run.info.run_id in [r.info.run_id for r in found]
    body = {"experiment_ids": ["0"], "filter": "attributes.run_name = '" + "x" * 10_000 + "'"}
    too_long = _call(as_user, "POST", "/api/2.0/mlflow/runs/search", as_user.user_token, json=body)
    assert (400, "INVALID_PARAMETER_VALUE") == (too_long.status_code, too_long.json()["error_code"])
    assert "limit is 10000" in too_long.json()["message"] and len(too_long.json()["message"]) < 200
