"""Fixtures of the evaluation tests: a registry holding classifiers and regressors of known quality."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
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

FEATURES = ["a", "b", "noise"]


def churn_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows where ``churned`` depends strongly on ``a``, weakly on ``b``; ``region`` is a segment."""
    rng = np.random.default_rng(seed)
    a, b, noise = rng.normal(size=rows), rng.normal(size=rows), rng.normal(size=rows)
    churned = (a + 0.3 * b + rng.normal(0, 0.7, rows) > 0).astype(np.int64)
    return pd.DataFrame(
        {"a": a, "b": b, "noise": noise, "region": rng.choice(["north", "south"], rows), "churned": churned}
    )


def sales_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b, noise = rng.normal(size=rows), rng.normal(size=rows), rng.normal(size=rows)
    return pd.DataFrame({"a": a, "b": b, "noise": noise, "sales": 3 * a + b + rng.normal(0, 0.5, rows)})


@dataclass
class Registered:
    """``churn``: v1 logistic on all features, v2 on ``noise`` only (clearly worse), v3 = v1 refit (equal);
    ``sales``: v1 linear on all features, v2 linear on ``noise`` only."""

    settings: Settings
    url: str
    token: str

    def client(self, backend: str = "embedded") -> covex.Client:
        if backend == "http":
            return covex.Client(self.url, settings=self.settings, token=self.token)
        return covex.Client(settings=self.settings)

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
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline

    from covex.ml import log_model

    root = tmp_path_factory.mktemp("evaluation-registry")
    settings = Settings(uri=str(root / "data"), user="tester", cache_dir=str(root / "cache"))
    train = churn_frame(2000, seed=1)
    x, y = train[FEATURES], train["churned"]
    only_noise = ColumnTransformer([("keep", "passthrough", ["noise"])])
    sales = sales_frame(2000, seed=1)
    service = open_service(settings, create=True)
    token = service.access.bootstrap("tester").secret
    models: dict[str, Any] = {
        "churn1": LogisticRegression().fit(x, y),
        "churn2": make_pipeline(only_noise, LogisticRegression()).fit(x, y),
        "churn3": LogisticRegression(C=0.99).fit(x, y),
        "sales1": LinearRegression().fit(sales[FEATURES], sales["sales"]),
        "sales2": make_pipeline(only_noise, LinearRegression()).fit(sales[FEATURES], sales["sales"]),
    }
    with covex.Client(settings=settings) as c, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log_model(c, models["churn1"], "churn", input_example=x.head(), aliases=["champion"], params={"C": "1.0"})
        log_model(
            c,
            models["churn2"],
            "churn",
            input_example=x.head(),
            aliases=["challenger"],
            params={"C": "1.0"},
            reference_data=x,
        )
        log_model(c, models["churn3"], "churn", input_example=x.head(), params={"C": "0.99"})
        log_model(c, models["sales1"], "sales", input_example=sales[FEATURES].head())
        log_model(c, models["sales2"], "sales", input_example=sales[FEATURES].head())
    with support.server_thread(create_app(service, auth=True)) as url:
        yield Registered(settings, url, token)
    service.close()


@pytest.fixture
def holdout(tmp_path: Path) -> Path:
    path = tmp_path / "holdout.parquet"
    churn_frame(3000, seed=7).to_parquet(path, index=False)
    return path
