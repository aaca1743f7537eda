"""Fixtures of the batch tests: a registry holding a trained model, data files, and the ``covex`` command on it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import covex
from covex.cli import app
from covex.server import create_app
from covex.service import open_service
from covex.settings import Settings
from tests import support

FEATURES = ["tenure", "spend", "calls"]


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows of the model's features with an ``id`` and a column the model does not use."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "tenure": rng.random(rows) * 60,
            "spend": rng.random(rows) * 100,
            "calls": rng.integers(0, 9, rows).astype(np.int64),
            "region": rng.choice(["north", "south"], rows),
        }
    )


@dataclass
class Registered:
    """A registry (embedded folder, and the same behind a server) holding ``churn`` v1 (@champion) and v2."""

    settings: Settings
    url: str
    token: str
    models: dict[int, Any]

    def client(self, backend: str = "embedded", cache: Path | None = None) -> covex.Client:
        extra = {"cache_dir": str(cache)} if cache else {}
        if backend == "http":
            return covex.Client(self.url, settings=self.settings, token=self.token, **extra)
        return covex.Client(settings=self.settings, **extra)

    def cli(self, *args: str, backend: str = "embedded") -> support.CliResult:
        env = {"COVEX_URI": self.settings.uri, "COVEX_ARTIFACTS": self.settings.artifacts_url, "COLUMNS": "200"}
        env["COVEX_CACHE_DIR"] = self.settings.cache_dir
        if backend == "http":
            env.update(COVEX_URI=self.url, COVEX_TOKEN=self.token)
        r = CliRunner().invoke(app, list(args), env=env)
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return support.CliResult(r.exit_code, r.stdout, r.stderr)


@pytest.fixture(scope="session")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registered]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from covex.ml import log_model

    root = tmp_path_factory.mktemp("batch-registry")
    settings = Settings(uri=str(root / "data"), user="tester", cache_dir=str(root / "cache"))
    x = frame(400, seed=1)[FEATURES]
    y = ((x.tenure < 20) & (x.calls > 3)).astype(int)
    models = {
        1: LogisticRegression(max_iter=500).fit(x, y),
        2: RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y),
    }
    service = open_service(settings, create=True)
    token = service.access.bootstrap("tester").secret
    with covex.Client(settings=settings) as c, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log_model(c, models[1], "churn", input_example=x.head(), aliases=["champion"])
        log_model(c, models[2], "churn", input_example=x.head())
    with support.server_thread(create_app(service, auth=True)) as url:
        yield Registered(settings, url, token, models)
    service.close()


@pytest.fixture
def data(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``data(rows, "parquet"|"csv"|"folder")`` writes ``frame(rows)`` and returns its path."""

    def make(rows: int = 1000, kind: str = "parquet", df: pd.DataFrame | None = None) -> Path:
        df = frame(rows) if df is None else df
        if kind == "csv":
            path = tmp_path / "data.csv"
            df.to_csv(path, index=False)
        elif kind == "folder":
            path = tmp_path / "data"
            path.mkdir()
            bounds = [0, len(df) // 3, 2 * len(df) // 3, len(df)]
            for i in range(3):
                df.iloc[bounds[i] : bounds[i + 1]].to_parquet(
                    path / f"part-{i}.parquet", index=False, row_group_size=97
                )
        else:
            path = tmp_path / "data.parquet"
            df.to_parquet(path, index=False, row_group_size=97)
        return path

    return make
