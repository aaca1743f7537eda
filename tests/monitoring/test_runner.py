"""The server's monitor runner: one lease in the database, so one replica checks per interval."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

import covex
from covex.monitoring import reference_of
from covex.service.factory import open_service
from covex.serving.inference_log import InferenceLog
from covex.settings import Settings
from covex.workers.monitor import MonitorRunner
from tests.conftest import Registry
from tests.support import make_tree


def test_one_holder_at_a_time_until_the_lease_expires(registry: Registry) -> None:
    lease = f"test-{time.monotonic_ns()}"
    monitoring = registry.service.monitoring
    assert monitoring.take_lease(lease, "a", 30)
    assert not monitoring.take_lease(lease, "b", 30)
    assert monitoring.take_lease(lease, "a", 0.05)  # the holder renews (here: shortens) its own
    time.sleep(0.1)
    assert monitoring.take_lease(lease, "b", 30)  # expired: taken over
    assert not monitoring.take_lease(lease, "a", 30)


def test_contenders_starting_together_get_one_winner(registry: Registry) -> None:
    lease = f"race-{time.monotonic_ns()}"
    start = threading.Barrier(8)
    won: list[str] = []

    def contend(holder: str) -> None:
        service = registry.service.as_principal(registry.service.principal)
        start.wait()
        if service.monitoring.take_lease(lease, holder, 30):
            won.append(holder)

    threads = [threading.Thread(target=contend, args=(f"h{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert 1 == len(won)


def test_the_runner_checks_each_active_deployment_from_its_log(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=1000), "kind": rng.choice(["a", "b"], 1000)})
    settings = Settings(uri=str(tmp_path / "registry"), monitor_interval=60)
    folder = tmp_path / "log"
    with covex.Client(settings.uri) as c:
        c.create_model("echo")
        c.create_version("echo", make_tree(tmp_path / "files", {"model.pkl": b"w"}))
        c.monitoring.set_reference("echo", 1, reference_of(frame))
        c.start_deployment("models:/echo/1", "serving", "http://127.0.0.1:1", status="SERVING",
                           log_location=str(folder))  # fmt: skip
    writer = InferenceLog(str(folder), interval=0.05)
    writer.start()
    served = SimpleNamespace(name="echo", version=1)
    for i in range(0, 1000, 100):
        part = frame.iloc[i : i + 100].reset_index(drop=True)
        writer.record(f"r{i}", served, SimpleNamespace(data=part, rows=len(part)), [0] * len(part), 0.001,
                      endpoint="invocations")  # fmt: skip
    writer.close()

    service = open_service(settings)
    try:
        first, second = MonitorRunner(service, settings), MonitorRunner(service, settings)
        assert 1 == first.run_once()
        assert second.run_once() is None  # the other replica: this interval is taken
    finally:
        service.close()
    with covex.Client(settings.uri) as c:
        (result,) = c.monitoring.list_results("echo", 1)
    assert ("OK", 1000, f"inference log {folder}") == (result.status, result.rows, result.source)
