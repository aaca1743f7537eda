"""Fixtures of the serving tests: a registry holding servable models, and real ``covex serve`` processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import covex
from tests import support
from tests.serving import models

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ["tenure", "spend", "calls", "plan"]


def training_data(seed: int = 0) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.random((200, 3)), columns=COLUMNS[:3])
    X["plan"] = rng.integers(0, 4, 200)
    y = ((X.tenure + X.spend * (seed + 1)) > 1.0).astype(int)
    return X, y


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry folder, made once: ``churn`` v1 and v2 (logistic regressions), v3 (files that do not load),
    ``@champion`` on v1; ``echo`` v1 (a function model that sleeps, echoes and raises on request)."""
    import cloudpickle
    from sklearn.linear_model import LogisticRegression

    from covex.ml import log_model

    folder = tmp_path_factory.mktemp("serving-registry") / "data"
    cloudpickle.register_pickle_by_value(models)  # the serving process need not import the tests
    with warnings.catch_warnings(), covex.Client(folder) as c:
        warnings.simplefilter("ignore")
        for seed in (0, 1):
            X, y = training_data(seed)
            log_model(c, LogisticRegression().fit(X, y), "churn", input_example=X.head(3))
        broken = support.make_tree(tmp_path_factory.mktemp("broken"), {"MLmodel": "flavors: {nonsense: 1}\n"})
        c.create_version("churn", broken)
        c.set_alias("churn", "champion", 1)
        log_model(c, models.echo, "echo", input_example=models.ECHO_EXAMPLE)
    return folder


@pytest.fixture
def registry_dir(template: Path, tmp_path: Path) -> Path:
    """A private copy of the template registry (tests move its aliases)."""
    target = tmp_path / "registry"
    shutil.copytree(template, target)
    return target


class Serving:
    """A running ``covex serve`` process."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.proc, self.url, self.log_path = proc, url, log_path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, **kwargs)

    def metrics(self) -> dict[str, float]:
        """Every sample of ``/metrics``, keyed ``name{label="value",...}`` (labels sorted)."""
        from prometheus_client.parser import text_string_to_metric_families

        out: dict[str, float] = {}
        for family in text_string_to_metric_families(self.get("/metrics").text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()) if k != "pid")
                key = f"{s.name}{{{labels}}}" if labels else s.name
                out[key] = out.get(key, 0.0) + s.value if "model_version" not in s.name else s.value
        return out

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@contextmanager
def serve_process(
    uri: str,
    registry: str,
    *args: str,
    env: dict[str, str] | None = None,
    ready: bool = True,
    port: int | None = None,
) -> Iterator[Serving]:
    """``covex --uri REGISTRY serve URI ARGS`` on a free loopback port; yields once ``/ready`` answers 200."""
    port = port or support.free_port()
    log_path = Path(tempfile.mkdtemp()) / "serve.log"
    cache = Path(tempfile.mkdtemp()) / "cache"
    command = [sys.executable, "-m", "covex", "--uri", registry, "serve", uri, "--port", str(port), *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command,
            env={**os.environ, "COVEX_CACHE_DIR": str(cache), **(env or {})},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    serving = Serving(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + 180
        path = "/ready" if ready else "/ping"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"covex serve exited {proc.returncode}: {serving.log}")
            try:
                if httpx.get(serving.url + path, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"covex serve did not become ready: {serving.log}")
            time.sleep(0.1)
        yield serving
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def serve(registry_dir: Path) -> Callable[..., Any]:
    """Factory: ``with serve("models:/churn@champion", "--poll-seconds", "0.5") as s:`` on the test's registry."""

    def start(uri: str, *args: str, registry: str | None = None, **kwargs: Any) -> Any:
        return serve_process(uri, registry or str(registry_dir), *args, **kwargs)

    return start


def split(rows: Sequence[Sequence[Any]], columns: Sequence[str] = COLUMNS) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(columns), "data": [list(r) for r in rows]}}
