"""The closed loop with real processes: ``covex serve`` logs inferences, ``covex monitor`` checks the log, labels
arrive, the version turns DEGRADED, and a webhook receiver on loopback hears of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import covex
from covex.service.factory import open_service
from covex.settings import Settings
from covex.workers.webhooks import Dispatcher
from tests.serving.conftest import ROOT, serve_process
from tests.webhooks.receiver import Receiver, allow, receiving

pytestmark = pytest.mark.slow
COLUMNS = ["tenure", "spend", "calls"]
REQUESTS = 300


def data(seed: int, rows: int, shift: float = 0.0, boundary: float = 1.0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.random((rows, 3)), columns=COLUMNS)
    frame["spend"] += shift
    return frame, ((frame.tenure + frame.spend) > boundary).astype(int)


def covex_cli(registry: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "covex", "--uri", str(registry), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )


def wait_for(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.1)


def test_a_served_version_drifts_degrades_and_says_so(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from covex.ml import log_model

    registry, log = tmp_path / "registry", tmp_path / "inferences"
    X, y = data(0, 2000)
    with warnings.catch_warnings(), covex.Client(registry) as c:
        warnings.simplefilter("ignore")
        model = LogisticRegression().fit(X, y)
        log_model(c, model, "churn", input_example=X.head(3), reference_data=X, metrics={"accuracy": 0.97})
        c.set_alias("churn", "champion", 1)
        assert {"prediction"} == set(c.get_document("models:/churn/1", "reference")["predictions"])
        hook = c.webhooks.create_webhook("http://127.0.0.1:1/hook", ["monitor.*"])

    # Spend drifts up, and what it means changes: churn now starts higher, the model keeps its old boundary.
    current, truth = data(1, REQUESTS, shift=0.8, boundary=1.8)
    with serve_process("models:/churn@champion", str(registry), "--log-inferences", str(log)) as s:
        with httpx.Client(base_url=s.url, timeout=30) as http:
            for i, row in enumerate(current.itertuples(index=False)):
                body = {"dataframe_split": {"columns": COLUMNS, "data": [list(row)]}}
                assert 200 == http.post("/invocations", json=body, headers={"X-Request-ID": f"r{i}"}).status_code
        wait_for(lambda: sum(len(pd.read_parquet(f)) for f in log.rglob("part-*.parquet")) == REQUESTS, "the log")
        with covex.Client(registry) as c:
            (serving,) = c.deployments("churn", active=True)
            assert str(log.resolve()) == serving.log_location

        # While it serves: `monitor run` finds the deployment and its log by itself.
        ran = covex_cli(registry, "monitor", "run", "churn", "--since", "1h", "--json")
        assert 0 == ran.returncode, ran.stderr
        (first,) = json.loads(ran.stdout)["results"]
        assert (1, REQUESTS, "DRIFT") == (first["version"], first["rows"], first["status"])
        assert "spend" in first["body"]["drifted"] and first["body"]["prediction_drift"]

    # Outcomes arrive later, keyed by request id; the model is now wrong on the shifted rows.
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": [f"r{i}" for i in range(REQUESTS)], "churned": truth}).to_csv(labels, index=False)
    stored = covex_cli(registry, "monitor", "labels", "models:/churn@champion", "--file", str(labels),
                       "--target", "churned")  # fmt: skip
    assert (0, f"stored {REQUESTS} label(s)") == (
        stored.returncode,
        stored.stdout.strip()[: len(f"stored {REQUESTS} label(s)")],
    )
    checked = covex_cli(registry, "monitor", "check", "models:/churn@champion", "--since", "1h", "--json",
                        "--fail-on", "DEGRADED")  # fmt: skip
    assert 7 == checked.returncode, checked.stderr
    result = json.loads(checked.stdout)
    accuracy = result["body"]["performance"]["metrics"]["accuracy"]
    expected = float(np.mean(model.predict(current) == truth))
    assert ("DEGRADED", REQUESTS) == (result["status"], result["body"]["performance"]["labelled"])
    assert (pytest.approx(expected), 0.97, True) == (accuracy["value"], accuracy["registered"], accuracy["degraded"])

    shown = covex_cli(registry, "monitor", "status", "churn")
    assert "DEGRADED" in shown.stdout and "degraded: accuracy" in shown.stdout

    # The webhook receiver hears both changes (OK -> DRIFT -> DEGRADED), signed, from the outbox.
    receiver = Receiver()
    with receiving(receiver) as url, covex.Client(registry) as c:
        c.webhooks.update_webhook(hook.id, url=url)
        receiver.secret = c.webhooks.rotate_secret(hook.id).secret
        service = open_service(Settings(uri=str(registry)))
        dispatcher = Dispatcher(service, backoff=0.01, allow=allow(url))
        try:
            wait_for(lambda: dispatcher.run_once() >= 0 and len(receiver.received) >= 2, "the deliveries")
        finally:
            dispatcher.stop()
            service.close()
    assert ["monitor.drift_detected", "monitor.performance_degraded"] == sorted(receiver.events())  # sent in parallel
    assert all(r.valid for r in receiver.received)
    (degraded,) = [r.payload["data"] for r in receiver.received if r.event == "monitor.performance_degraded"]
    assert {"model": "churn", "version": 1, "status": "DEGRADED", "previous": "DRIFT"}.items() <= degraded.items()
    assert ["accuracy"] == degraded["degraded"]
