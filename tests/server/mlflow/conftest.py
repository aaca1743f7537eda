"""A real Covex server for MLflow's clients: uvicorn on a loopback port, auth on, an admin and a user with tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests import support


@dataclass(frozen=True)
class MlflowServer:
    url: str
    service: RegistryService  # acting as the local admin "admin"
    settings: Settings
    admin_token: str
    user_token: str  # of "alice", no admin rights and no grants
    other_token: str  # of "bob", likewise

    @property
    def artifacts(self) -> Path:
        return Path(self.settings.artifacts_url)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    root = tmp_path_factory.mktemp("mlflow-server")
    settings = Settings(uri=f"sqlite:///{root / 'covex.db'}", artifacts=str(root / "artifacts"), user="admin")
    service = open_service(settings)
    admin = service.access.bootstrap("admin").secret
    tokens = []
    for name in ("alice", "bob"):
        service.access.create_user(name)
        tokens.append(service.access.create_token(name, name="test").secret)
    with support.server_thread(create_app(service, settings, auth=True), settings) as url:
        yield MlflowServer(url, service, settings, admin, *tokens)
    service.close()


@pytest.fixture
def as_user(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """MLflow's client pointed at the server as "alice" (MLFLOW_TRACKING_TOKEN), with no run left active."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", mlflow_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", mlflow_server.user_token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(mlflow_server.url)
    yield mlflow_server
    while mlflow.active_run() is not None:
        mlflow.end_run()
