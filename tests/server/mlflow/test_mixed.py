"""The mixed set-up: tracking stays on a real MLflow server, the registry is a real ``covex server``.

Registering copies the model's files into Covex (verified, content-addressed) with the run's metrics and
params; MLflow's ``pyfunc.load_model`` then loads every kind of ``models:/`` URI from Covex alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from covex.domain.uris import parse_model_uri
from covex.service import open_service
from covex.settings import Settings
from tests import support

# MLflow warns about its own type hints and about models without a signature: not what these tests check.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("mixed")
    with support.mlflow_server_process(root) as mlflow_url:
        data = root / "covex-data"
        settings = Settings(uri=str(data), user="tester")
        service = open_service(settings)
        token = service.access.bootstrap("tester").secret
        env = {"COVEX_URI": str(data), "COVEX_MLFLOW_TRACKING_URI": mlflow_url, "COVEX_DISPATCH_INTERVAL": "0"}
        with support.server_process(env) as covex_url:
            yield {"mlflow": mlflow_url, "covex": covex_url, "token": token, "service": service}
        service.close()


@pytest.fixture
def mlflow_env(servers: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", servers["token"])
    mlflow.set_tracking_uri(servers["mlflow"])
    mlflow.set_registry_uri(servers["covex"])
    yield mlflow
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _train() -> tuple[Any, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    x = rng.random((60, 3))
    y = (x[:, 0] > 0.5).astype(int)
    return LogisticRegression().fit(x, y), x


def test_registering_from_the_mlflow_server_copies_the_files_into_covex(
    mlflow_env: Any, servers: dict[str, Any], tmp_path: Path
) -> None:
    mlflow = mlflow_env
    model, x = _train()
    with mlflow.start_run() as run:
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("auc", 0.91)
        mlflow.sklearn.log_model(model, name="model", registered_model_name="mixed-churn")
    with mlflow.start_run() as second:
        mlflow.sklearn.log_model(model, name="model")
    registered = mlflow.register_model(f"runs:/{second.info.run_id}/model", "mixed-churn")
    assert registered.version == "2"

    svc = servers["service"]
    first = svc.get_version(parse_model_uri("models:/mixed-churn/1"))
    assert first.status == "READY"
    assert first.manifest_digest and first.file_count >= 3  # the files are Covex's, not a pointer
    assert (first.metrics, first.params, first.run_id) == ({"auc": 0.91}, {"C": "1.0"}, run.info.run_id)
    assert first.run_link.startswith(servers["mlflow"]) and run.info.run_id in first.run_link
    files = {f.path for f in svc.list_files(parse_model_uri("models:/mixed-churn/1"))[1]}
    assert "MLmodel" in files and len(files) >= 3

    client = mlflow.MlflowClient()
    client.set_registered_model_alias("mixed-churn", "champion", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MLflow deprecates stages
        client.transition_model_version_stage("mixed-churn", "2", "Production")
    expected = model.predict(x[:5])
    for uri in (
        "models:/mixed-churn/1",
        "models:/mixed-churn@champion",
        "models:/mixed-churn/Production",
        "models:/mixed-churn/latest",
    ):
        loaded = mlflow.pyfunc.load_model(uri)
        assert list(loaded.predict(x[:5])) == list(expected), uri
    got = mlflow.artifacts.download_artifacts(artifact_uri="models:/mixed-churn/1", dst_path=str(tmp_path / "dl"))
    assert (Path(got) / "MLmodel").is_file()


def test_a_source_the_mlflow_server_does_not_have_is_refused_and_nothing_is_created(
    mlflow_env: Any, servers: dict[str, Any]
) -> None:
    from mlflow.exceptions import MlflowException

    client = mlflow_env.MlflowClient()
    client.create_registered_model("mixed-missing")
    with pytest.raises(MlflowException) as caught:
        client.create_model_version("mixed-missing", "models:/m-0123456789abcdef0123456789abcdef")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.search_model_versions("name = 'mixed-missing'") == []
