"""``covex serve`` as an operator runs it: several workers, SIGTERM, the inference log, bad options."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.serving.conftest import ROOT, split

ROWS = [[0.9, 0.8, 0.1, 2], [0.1, 0.05, 0.3, 0]]


def test_two_workers_share_one_metrics_view(serve: Callable[..., Any]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def samples(text: str) -> list[Any]:
        return [x for f in text_string_to_metric_families(text) for x in f.samples]

    with serve("models:/churn@champion", "--workers", "2") as s:
        deadline = time.monotonic() + 120
        while len({x.labels["pid"] for x in samples(s.get("/metrics").text) if "model_version" in x.name}) < 2:
            assert time.monotonic() < deadline, s.log  # until both workers have loaded the model
            time.sleep(0.2)
        with httpx.Client(timeout=30) as http:  # new connections spread over the workers
            statuses = [
                http.post(s.url + "/invocations", json=split(ROWS), headers={"Connection": "close"}).status_code
                for _ in range(40)
            ]
        assert {200} == set(statuses)
        text = s.get("/metrics").text
        assert 0 == s.terminate(), s.log
    assert "serving models:/churn/1" in s.log
    found = samples(text)
    versions = [x for x in found if x.name == "covex_serving_model_version"]
    assert (2, {1.0}) == (len({x.labels["pid"] for x in versions}), {x.value for x in versions}), text
    requests = [x for x in found if x.name == "covex_serving_requests_total"]
    assert [({"endpoint": "invocations", "code": "200"}, 40.0)] == [(x.labels, x.value) for x in requests], text
    assert 80 == sum(x.value for x in found if x.name == "covex_serving_rows_total")


def test_sigterm_finishes_the_request_in_flight_and_exits_0(serve: Callable[..., Any]) -> None:
    answer: dict[str, Any] = {}

    def slow() -> None:
        r = httpx.post(s.url + "/invocations", json=split([[3.0, 2.0, "a"]], ["x", "sleep", "kind"]), timeout=60)
        answer.update(status=r.status_code, body=r.json())

    with serve("models:/echo/1") as s:
        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(0.7)  # the request is being scored
        code = s.terminate()
        thread.join(60)
    assert 0 == code, s.log
    assert {"status": 200, "body": {"predictions": [{"double": 6.0, "kind": "a"}]}} == answer
    try:
        httpx.get(s.url + "/ping", timeout=2)
        raise AssertionError("still listening")
    except httpx.TransportError:
        pass


def test_the_inference_log_is_parquet_partitioned_by_model_version_and_date(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    import pandas as pd

    folder = tmp_path / "inferences"
    with serve("models:/churn/1", "--log-inferences", str(folder)) as s:
        r = s.post("/invocations", json=split(ROWS), headers={"X-Request-ID": "req-1"})
        s.post("/invocations", json=split([[0.1]], ["tenure"]))  # refused: not logged
        v2 = s.post(
            "/v2/models/churn/infer",
            json={"inputs": [{"name": "rows", "shape": [1, 4], "datatype": "FP64", "data": [ROWS[0]]}]},
            headers={"X-Request-ID": "req-2"},
        )
        assert (200, 200) == (r.status_code, v2.status_code)
        assert 0 == s.metrics()["covex_serving_inference_log_dropped_total"]
        code = s.terminate()  # the log is flushed on the way out
    assert 0 == code
    files = sorted(folder.rglob("*.parquet"))
    assert files and all(f.parent.parent.parent.name == "model=churn" for f in files)
    assert {"version=1"} == {f.parent.parent.name for f in files}
    assert all(f.parent.name.startswith("date=20") for f in files)
    table = pd.read_parquet(folder).sort_values("request_id")
    assert ["req-1", "req-2"] == table["request_id"].tolist()
    first = table.iloc[0]
    assert ("churn", 1, "invocations", 2) == (
        str(first["model"]),
        int(first["version"]),
        first["endpoint"],
        first["rows"],
    )
    assert r.json()["predictions"] == json.loads(first["outputs"])
    assert [dict(zip(["tenure", "spend", "calls", "plan"], row, strict=True)) for row in ROWS] == json.loads(
        first["inputs"]
    )
    assert first["latency_ms"] > 0 and str(first["timestamp"].tz) == "UTC"


def covex(*args: str, registry: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "covex", "--uri", str(registry), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_bad_options_and_uris_are_one_line(registry_dir: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    cases = [
        (["serve", "churn"], 2, "'uri' 'churn' must start with 'models:/'"),
        (["serve", "models:/nope@champion"], 3, "nope"),
        (["serve", "models:/churn@nobody"], 3, "nobody"),
        (["serve", "models:/churn/1", "--workers", "0"], 2, "'--workers' must be at least 1"),
        (["serve", "models:/churn/1", "--poll-seconds", "0"], 2, "'--poll-seconds'"),
        (["serve", "models:/churn/1", "--token-file", str(tmp_path / "none")], 2, "'--token-file'"),
        (["serve", "models:/churn/1", "--log-inferences", "foo://x/y"], 2, "'--log-inferences' 'foo://x/y'"),
        (["serve", "models:/churn/1", "--log-inferences", "gs://b/log"], 2, "'--log-inferences' 'gs://b/log'"),
        (["serve", "models:/churn/1", "--log-inferences", str(blocked / "log")], 2, "'--log-inferences'"),
    ]
    for args, code, words in cases:
        r = covex(*args, registry=registry_dir)
        assert (code, True) == (r.returncode, words in r.stderr), (args, r.stderr)
        assert "Traceback" not in r.stderr and 1 == len(r.stderr.strip().splitlines()), r.stderr
