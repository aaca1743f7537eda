"""Who reads runs and logged models: their creator, admins and readers of every model; nobody else.

Bob, with no role on a registered model, could not load ``models:/churn/1`` yet downloaded the same
files through the logged model or the run it came from, and read every run's params and metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.server.mlflow.conftest import MlflowServer

mlflow = pytest.importorskip("mlflow")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")]
API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


@dataclass(frozen=True)
class Logged:
    run_id: str
    model_id: str
    run_root: str  # artifact store paths
    model_root: str


@pytest.fixture(scope="module")
def carol(mlflow_server: MlflowServer) -> str:
    """A user granted reader on every model: she reads every run and logged model too."""
    access = mlflow_server.service.access
    access.create_user("carol")
    access.grant("user:carol", "reader")
    return access.create_token("carol", name="test").secret


@pytest.fixture(scope="module")
def alices(mlflow_server: MlflowServer) -> Iterator[Logged]:
    """A run of alice's with a param, a metric, a file and a logged model (MLflow's own client)."""
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        env.setenv("MLFLOW_TRACKING_TOKEN", mlflow_server.user_token)
        env.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        mlflow.set_tracking_uri(mlflow_server.url)
        x = np.arange(40, dtype=float).reshape(20, 2)
        with mlflow.start_run(experiment_id="0", run_name="alice-secret") as run:  # searched in "0"
            mlflow.log_param("alpha", "0.5")
            mlflow.log_metric("loss", 0.25)
            mlflow.log_text("private notes", "notes.txt")
            info = mlflow.sklearn.log_model(LogisticRegression().fit(x, x[:, 0] > 20), name="model")
        experiment = run.info.experiment_id
        yield Logged(
            run.info.run_id,
            info.model_id,
            f"{experiment}/{run.info.run_id}/artifacts",
            f"{experiment}/models/{info.model_id}/artifacts",
        )


def _http(server: MlflowServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _reads(server: MlflowServer, token: str, logged: Logged) -> list[tuple[int, str]]:
    """Status and error code (or "") of every single read of alice's run, logged model and their files."""
    with _http(server, token) as c:
        answers = [
            c.get(f"{API}/runs/get", params={"run_id": logged.run_id}),
            c.get(f"{API}/logged-models/{logged.model_id}"),
            c.get(f"{API}/metrics/get-history", params={"run_id": logged.run_id, "metric_key": "loss"}),
            c.get(f"{ARTIFACTS}/{logged.run_root}/notes.txt"),
            c.get(f"{ARTIFACTS}/{logged.model_root}/MLmodel"),
        ]
    return [(r.status_code, "" if r.is_success else r.json()["error_code"]) for r in answers]


def _listed(server: MlflowServer, token: str, logged: Logged) -> list[list[str]]:
    with _http(server, token) as c:
        return [
            [f["path"] for f in c.get(ARTIFACTS, params={"path": root}).json()["files"]]
            for root in (logged.run_root, logged.model_root)
        ]


def _searched(server: MlflowServer, token: str, logged: Logged) -> tuple[bool, bool]:
    """Whether alice's run, and her logged model, are among the searches' results."""
    with _http(server, token) as c:
        body = {"experiment_ids": ["0"], "max_results": 1000}
        runs = c.post(f"{API}/runs/search", json=body).json().get("runs", [])
        models = c.post(f"{API}/logged-models/search", json=body).json().get("models", [])
    return (
        logged.run_id in [r["info"]["run_id"] for r in runs],
        logged.model_id in [m["info"]["model_id"] for m in models],
    )


def test_another_user_neither_reads_nor_finds_a_run_or_logged_model(
    mlflow_server: MlflowServer, alices: Logged
) -> None:
    assert [(404, "RESOURCE_DOES_NOT_EXIST")] * 5 == _reads(mlflow_server, mlflow_server.other_token, alices)
    assert [[], []] == _listed(mlflow_server, mlflow_server.other_token, alices)  # as for an unknown run
    assert (False, False) == _searched(mlflow_server, mlflow_server.other_token, alices)
    with _http(mlflow_server, mlflow_server.other_token) as bob:
        # Nor does he hang his own logged model on her run to reach it.
        linked = bob.post(f"{API}/logged-models", json={"experiment_id": "0", "source_run_id": alices.run_id})
        assert (404, "RESOURCE_DOES_NOT_EXIST") == (linked.status_code, linked.json()["error_code"])
        # The experiment stays visible: names are unique, so set_experiment must find it.
        assert 200 == bob.get(f"{API}/experiments/get", params={"experiment_id": "0"}).status_code
    # His own run he reads and finds.
    with _http(mlflow_server, mlflow_server.other_token) as bob:
        own = bob.post(f"{API}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
        assert 200 == bob.get(f"{API}/runs/get", params={"run_id": own}).status_code
        found = bob.post(f"{API}/runs/search", json={"experiment_ids": ["0"]}).json()["runs"]
        assert own in [r["info"]["run_id"] for r in found]
        assert {found["info"]["user_id"] for found in found} == {"bob"}


def test_mlflow_client_downloads_are_refused_to_another_user(
    mlflow_server: MlflowServer, alices: Logged, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", mlflow_server.other_token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(mlflow_server.url)
    for uri in (f"models:/{alices.model_id}", f"runs:/{alices.run_id}/notes.txt"):
        with pytest.raises(mlflow.exceptions.MlflowException) as refused:
            mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "out"))
        assert "RESOURCE_DOES_NOT_EXIST" == refused.value.error_code
    with pytest.raises(mlflow.exceptions.MlflowException) as listed:
        mlflow.MlflowClient().list_artifacts(alices.run_id)
    assert "RESOURCE_DOES_NOT_EXIST" == listed.value.error_code
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_creator_admins_and_readers_of_every_model_read_everything(
    mlflow_server: MlflowServer, alices: Logged, carol: str
) -> None:
    for token in (mlflow_server.user_token, mlflow_server.admin_token, carol):
        assert [(200, "")] * 5 == _reads(mlflow_server, token, alices)
        run_files, model_files = _listed(mlflow_server, token, alices)
        assert "notes.txt" in run_files and {"MLmodel", "model.skops"} <= set(model_files)
        assert (True, True) == _searched(mlflow_server, token, alices)
    with _http(mlflow_server, carol) as c:  # reading is not changing
        refused = c.post(f"{API}/runs/set-tag", json={"run_id": alices.run_id, "key": "k", "value": "v"})
        assert (403, "PERMISSION_DENIED") == (refused.status_code, refused.json()["error_code"])


def test_registering_a_run_or_logged_model_one_may_not_read_creates_nothing(
    mlflow_server: MlflowServer, alices: Logged
) -> None:
    service = mlflow_server.service
    service.create_model("bobs-model")
    service.access.grant("user:bob", "editor", model="bobs-model")
    sources = [
        f"models:/{alices.model_id}",
        f"runs:/{alices.run_id}/model",
        f"mlflow-artifacts:/{alices.model_root}",
        f"http://elsewhere:5000{ARTIFACTS}/{alices.run_root}",
    ]
    with _http(mlflow_server, mlflow_server.other_token) as bob:
        for source in sources:
            r = bob.post(f"{API}/model-versions/create", json={"name": "bobs-model", "source": source})
            assert (404, "RESOURCE_DOES_NOT_EXIST") == (r.status_code, r.json()["error_code"]), source
            assert source[:40] in r.json()["message"]
    assert [] == service.search_versions(model="bobs-model").items
    # Alice may: the model is hers (given editor on bobs-model for the purpose), and so may carol's reads.
    service.access.grant("user:alice", "editor", model="bobs-model")
    with _http(mlflow_server, mlflow_server.user_token) as alice:
        for source in sources[:2]:
            r = alice.post(f"{API}/model-versions/create", json={"name": "bobs-model", "source": source})
            assert 200 == r.status_code, r.text
    versions = service.search_versions(model="bobs-model").items
    assert [alices.run_id] * 2 == [v.run_id for v in versions]
    assert all("READY" == v.status for v in versions)


def test_a_pending_version_does_not_open_files_its_lister_never_proved_it_holds(mlflow_server: MlflowServer) -> None:
    """An editor lists another model's file digest in a version of their own, which stays PENDING: the artifact
    route must not serve those bytes (the blob API needs a READY version the caller may read)."""
    import hashlib

    from covex.domain.entities import FileEntry, NewVersion

    svc = mlflow_server.service
    secret = b"weights of a model alice may not read"
    digest = hashlib.sha256(secret).hexdigest()
    svc.create_model("hidden-weights")
    svc.put_blob(digest, len(secret), [secret])
    svc.create_version("hidden-weights", NewVersion(files=[FileEntry(path="w.bin", digest=digest, size=len(secret))]))
    svc.finalize_version("hidden-weights", 1)
    svc.create_model("alices-own")
    svc.access.grant("user:alice", "editor", model="alices-own")
    alice = svc.with_credentials(mlflow_server.user_token)
    listed = alice.create_version(
        "alices-own", NewVersion(files=[FileEntry(path="w.bin", digest=digest, size=len(secret))])
    )
    assert "PENDING" == listed.status
    answer = httpx.get(
        f"{mlflow_server.url}/api/2.0/mlflow-artifacts/artifacts/registry/alices-own/-/{listed.version}/w.bin",
        headers={"Authorization": f"Bearer {mlflow_server.user_token}"},
    )
    assert answer.status_code in (403, 404) and secret not in answer.content
