"""``covex serve --shadow`` and ``--split`` as processes: the caller sees the version that answers, the log both."""

from __future__ import annotations

import json
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

import covex
from covex.serving.challenger import bucket
from tests.serving.challengers import registry_with_challengers
from tests.serving.conftest import COLUMNS, Serving, serve_process, split, training_data

ROWS = [[0.9, 0.8, 0.1, 2], [0.1, 0.05, 0.3, 0]]


@pytest.fixture(scope="module")
def registry(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(registry_with_challengers(template, tmp_path_factory.mktemp("shadow") / "registry"))


@pytest.fixture(scope="module")
def champion(registry: Path) -> Any:
    with covex.Client(registry) as c:
        return covex.load_model("models:/churn/1", client=c)


def predict(model: Any, rows: list[list[Any]]) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = pd.DataFrame(rows, columns=COLUMNS).astype({"plan": "int64"})
        return [int(p) for p in model.predict(frame)]


def wait_until(s: Serving, done: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
    """``/version`` once ``done`` holds for it."""
    deadline = time.monotonic() + timeout
    while not done(doc := s.get("/version").json()):
        assert time.monotonic() < deadline, doc
        time.sleep(0.05)
    return doc


def read_log(folder: Path) -> pd.DataFrame:
    table = pd.read_parquet(folder)
    table["version"] = table["version"].astype(int)
    return table


def test_a_slow_shadow_changes_nothing_the_caller_sees(registry: Path, champion: Any, tmp_path: Path) -> None:
    """200 requests from 4 threads; the shadow sleeps 0.5 s per call and its queue holds 2."""
    folder = tmp_path / "log"
    X, _ = training_data(3)
    rows = [[*r[:3], int(r[3])] for r in X.values.tolist()]
    batches = [rows[i % 50 : i % 50 + 1 + i % 3] for i in range(200)]
    with serve_process(
        "models:/churn@champion",
        str(registry),
        "--shadow",
        "models:/churn/4",
        "--shadow-queue",
        "2",
        "--log-inferences",
        str(folder),
    ) as s:
        wait_until(s, lambda doc: doc["shadow"]["ready"])

        def call(i: int) -> tuple[float, httpx.Response]:
            started = time.perf_counter()
            r = http.post(s.url + "/invocations", json=split(batches[i]), headers={"X-Request-ID": f"load-{i}"})
            return time.perf_counter() - started, r

        with httpx.Client(timeout=30) as http, ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(call, range(200)))
        # Every answered request is either scored by the shadow (and queued for the log) or skipped.
        doc = wait_until(s, lambda doc: doc["shadow"]["scored"] + doc["shadow"]["skipped"] == 200)
        metrics = s.metrics()
        assert 0 == s.terminate(), s.log
    assert [200] * 200 == [r.status_code for _, r in answers]
    assert [{"predictions": predict(champion, b)} for b in batches] == [r.json() for _, r in answers]
    assert all("1" == r.headers["Covex-Model-Version"] and "covex-model-role" not in r.headers for _, r in answers)
    assert statistics.median(t for t, _ in answers) < 0.05
    shadow = doc["shadow"]
    assert ("models:/churn/4", 4, 0) == (shadow["uri"], shadow["version"], shadow["errors"])
    assert shadow["skipped"] > 0 and shadow["scored"] > 0 and 200 == shadow["skipped"] + shadow["scored"]
    assert shadow["skipped"] == metrics["covex_serving_shadow_skipped_total"]
    assert 4 == metrics['covex_serving_challenger_version{model="churn",role="shadow"}']
    table = read_log(folder)
    served, shadowed = table[table.role == "served"], table[table.role == "shadow"]
    assert ({1}, 200) == (set(served.version), len(served))
    assert ({4}, shadow["scored"]) == (set(shadowed.version), len(shadowed))
    assert set(shadowed.request_id) <= set(served.request_id)
    first = shadowed.iloc[0]
    rows = batches[int(first.request_id.removeprefix("load-"))]
    assert [int(row[0] > 0.5) for row in rows] == json.loads(first.outputs)


def test_a_crashing_shadow_is_counted_then_the_alias_moves_to_one_that_logs(
    registry: Path, champion: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "log"
    with covex.Client(registry) as c:
        c.set_alias("churn", "challenger", 5)  # raises on any plan but 0
        try:
            with serve_process(
                "models:/churn@champion",
                str(registry),
                "--shadow",
                "challenger",
                "--log-inferences",
                str(folder),
                "--poll-seconds",
                "0.3",
            ) as s:
                wait_until(s, lambda doc: doc["shadow"]["version"] == 5)
                answers = [s.post("/invocations", json=split(ROWS)) for _ in range(30)]
                assert [200] * 30 == [r.status_code for r in answers]
                assert [{"predictions": predict(champion, ROWS)}] * 30 == [r.json() for r in answers]
                doc = wait_until(s, lambda doc: doc["shadow"]["errors"] == 30)
                assert "the challenger broke" in doc["shadow"]["last_error"]
                assert 30 == s.metrics()["covex_serving_shadow_errors_total"]
                c.set_alias("churn", "challenger", 2)
                wait_until(s, lambda doc: doc["shadow"]["version"] == 2)
                for i in range(10):
                    s.post("/invocations", json=split(ROWS), headers={"X-Request-ID": f"pair-{i}"})
                wait_until(s, lambda doc: doc["shadow"]["scored"] == 10)
                assert 0 == s.terminate(), s.log
                v2 = covex.load_model("models:/churn/2", client=c)
        finally:
            c.set_alias("churn", "challenger", 2)
    assert 1 == s.log.count("the challenger broke"), s.log  # one line, not one per request
    table = read_log(folder)
    pairs = table[table.request_id.str.startswith("pair-")]
    assert {(f"pair-{i}", 1, "served") for i in range(10)} | {(f"pair-{i}", 2, "shadow") for i in range(10)} == set(
        zip(pairs.request_id, pairs.version, pairs.role, strict=True)
    )
    assert {json.dumps(predict(v2, ROWS))} == set(
        pairs[pairs.role == "shadow"].outputs.map(lambda o: json.dumps(json.loads(o)))
    )
    assert (40, {"served"}) == (len(table[table.version == 1]), set(table[table.version == 1].role))


def test_a_sticky_split_answers_by_the_key_as_any_process_would(registry: Path) -> None:
    """Each key gets the version its SHA-256 says, computed here in another process: restarts and replicas agree."""
    users = [f"user-{i}" for i in range(40)]
    infer = {"inputs": [{"name": "rows", "shape": [1, 4], "datatype": "FP64", "data": [ROWS[0]]}]}
    with serve_process(
        "models:/churn@champion", str(registry), "--split", "challenger=30%", "--split-key", "X-User"
    ) as s:
        doc = wait_until(s, lambda doc: doc["split"]["ready"])
        seen = {}
        for user in users:
            for path, body in (("/invocations", split(ROWS)), ("/v2/models/churn/infer", infer)):
                r = s.post(path, json=body, headers={"X-User": user})
                assert 200 == r.status_code, r.text
                seen[user, path] = (r.headers["Covex-Model-Role"], r.headers["Covex-Model-Version"])
        metrics = s.metrics()
    expected = {(u, p): ("challenger", "2") if bucket(u) < 30 else ("champion", "1") for u, p in seen}
    assert expected == seen
    assert ("models:/churn@challenger", 2, 30.0, "X-User") == tuple(
        doc["split"][k] for k in ("uri", "version", "percent", "key")
    )
    challengers = sum(role == "challenger" for role, _ in seen.values())
    assert (challengers, 80 - challengers) == (
        metrics['covex_serving_split_requests_total{role="challenger"}'],
        metrics['covex_serving_split_requests_total{role="champion"}'],
    )


@pytest.fixture
def run(registry: Path, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    from covex.cli import app

    def invoke(*args: str) -> Any:
        env = {"COVEX_URI": str(registry), "COVEX_TOKEN": "", "COVEX_ARTIFACTS": "", "COLUMNS": "200"}
        return CliRunner().invoke(app, ["serve", "models:/churn@champion", *args], env=env)

    yield invoke


LOG = ["--log-inferences", "LOG"]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--shadow", "models:/churn@challenger"], 2, "'--shadow' needs '--log-inferences DIR'"),
        (["--shadow", "challenger", "--split", "challenger=10%", *LOG], 2, "give '--shadow' or '--split', not both"),
        (["--shadow", "challenger", "--shadow-queue", "0", *LOG], 2, "'--shadow-queue' must be at least 1"),
        (["--shadow", "models:/churn@champion", *LOG], 2, "'--shadow' 'models:/churn@champion' is the URI already"),
        (["--shadow", "models:/churn@nobody", *LOG], 3, "nobody"),
        (["--shadow", "models:/echo/1", *LOG], 2, "'--shadow' 'models:/echo/1' takes column 'x' (double)"),
        (["--split", "models:/echo/1=10%"], 2, "a split needs the same columns"),
        (["--split", "challenger=100%"], 2, "'--split': the challenger's share must be more than 0%"),
        (["--split", "challenger=0.0%"], 2, "'--split'"),
        (["--split", "challenger"], 2, "'--split' must look like ALIAS=P%"),
        (["--split", "nobody=10%"], 3, "nobody"),
        (["--split-key", "X-User"], 2, "'--split-key' needs '--split ALIAS=P%'"),
        (["--split", "challenger=10%", "--split-key", "X User"], 2, "'--split-key' must be an HTTP header name"),
    ],
)
def test_bad_options_are_one_line(
    run: Callable[..., Any], tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    r = run(*[str(tmp_path / "log") if a == "LOG" else a for a in args])
    lines = r.stderr.strip().splitlines()
    assert (code, 1, True) == (r.exit_code, len(lines), words in lines[0]), r.stderr
