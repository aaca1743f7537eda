"""Shadow and split logic, in process: the options, the routing, the bounded shadow queue, the log's role column."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pandas as pd
import pytest

import covex
from covex.domain.errors import InvalidInput
from covex.serving import ServeOptions, create_app
from covex.serving.challenger import ShadowScorer, Splitter, bucket, check_compatible, parse_split, shadow_input
from covex.serving.inference_log import InferenceLog, arrow_schema
from covex.serving.metrics import Metrics
from covex.serving.payloads import ModelInput
from covex.serving.signature import Column, InputSchema
from tests.serving.challengers import registry_with_challengers
from tests.serving.conftest import split, training_data

CHURN = "models:/churn@champion"


@pytest.fixture(scope="module")
def registry(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(registry_with_challengers(template, tmp_path_factory.mktemp("challenger") / "registry"))


def options(registry: Path, **fields: Any) -> ServeOptions:
    settings = {"uri": str(registry), "cache_dir": str(registry.parent / "cache")}
    return ServeOptions(uri=CHURN, registry=settings, **fields)


@asynccontextmanager
async def running(opts: ServeOptions) -> AsyncIterator[httpx.AsyncClient]:
    """The app, in this process, once both versions are loaded."""
    app = create_app(opts)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://covex") as http,
    ):
        deadline = time.monotonic() + 120
        while not ((doc := (await http.get("/version")).json())["ready"] and doc["split"]["ready"]):
            assert time.monotonic() < deadline, doc
            await asyncio.sleep(0.05)
        yield http


BODY = split(training_data()[0].head(2).values.tolist())


def test_the_split_sends_its_share_to_the_challenger(registry: Path) -> None:
    async def go() -> tuple[dict[tuple[str, str], int], dict[str, Any]]:
        answers: dict[tuple[str, str], int] = {}
        async with running(options(registry, split="models:/churn@challenger", split_percent=20)) as http:
            for _ in range(100):  # 20 at a time, as concurrent callers would
                for r in await asyncio.gather(*(http.post("/invocations", json=BODY) for _ in range(20))):
                    key = (r.headers["Covex-Model-Role"], r.headers["Covex-Model-Version"])
                    answers[key] = answers.get(key, 0) + 1
            return answers, (await http.get("/version")).json()

    answers, version = asyncio.run(go())
    assert {("champion", "1"), ("challenger", "2")} == set(answers)
    assert 16 <= answers["challenger", "2"] / 2000 * 100 <= 24, answers
    assert (1, "models:/churn@challenger", 2, 20.0, None) == (
        version["version"],
        version["split"]["uri"],
        version["split"]["version"],
        version["split"]["percent"],
        version["split"]["key"],
    )


def test_a_split_key_sticks_each_caller_to_one_version(registry: Path) -> None:
    users = [f"customer-{i}" for i in range(150)]
    infer = {"inputs": [{"name": "rows", "shape": [1, 4], "datatype": "FP64", "data": [[0.9, 0.8, 0.1, 2]]}]}

    async def go() -> dict[str, set[tuple[str, str]]]:
        seen: dict[str, set[tuple[str, str]]] = {u: set() for u in users}
        opts = options(registry, split="models:/churn/2", split_percent=30, split_key="X-User")
        async with running(opts) as http:
            for user in users * 2:
                for path, body in (("/invocations", BODY), ("/v2/models/churn/infer", infer)):
                    r = await http.post(path, json=body, headers={"X-User": user})
                    assert 200 == r.status_code, r.text
                    seen[user].add((r.headers["Covex-Model-Role"], r.headers["Covex-Model-Version"]))
            pinned = await http.post("/v2/models/churn/versions/2/infer", json=infer, headers={"X-User": users[0]})
            assert ("challenger", "2") == (pinned.headers["Covex-Model-Role"], pinned.headers["Covex-Model-Version"])
            assert 404 == (await http.post("/v2/models/churn/versions/3/infer", json=infer)).status_code
        return seen

    seen = asyncio.run(go())
    expected = {u: {("challenger", "2") if bucket(u) < 30 else ("champion", "1")} for u in users}
    assert expected == seen
    share = sum(bucket(u) < 30 for u in users) / len(users)
    assert 0.15 < share < 0.45


def test_the_bucket_is_the_same_everywhere() -> None:
    """SHA-256 of the value, not Python's salted hash(): the same in every process and after restarts."""
    assert 62.60668756371839 == bucket("customer-42")
    assert [False, True] == [Splitter(10, "X-User").to_challenger({"x-user": v}) for v in ("a", "customer-25")]
    assert bucket("customer-25") < 10 <= bucket("a")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("challenger=10%", ("models:/churn@challenger", 10.0)),
        ("candidate = 2.5%", ("models:/churn@candidate", 2.5)),
        ("models:/churn/2=99.9%", ("models:/churn/2", 99.9)),
        ("2=1e1%", ("models:/churn/2", 10.0)),
        ("models:/team/churn@b=50%", ("models:/team/churn@b", 50.0)),
    ],
)
def test_split_values(value: str, expected: tuple[str, float]) -> None:
    assert expected == parse_split(value, CHURN)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("challenger", "must look like ALIAS=P%"),
        ("challenger=10", "must look like ALIAS=P%"),
        ("challenger=ten%", "'ten%' is not a percentage"),
        ("challenger=0%", "more than 0% and less than 100%, got 0%"),
        ("challenger=100%", "got 100%"),
        ("challenger=-5%", "got -5%"),
        ("challenger=nan%", "got nan%"),
        ("=10%", "names no version"),
        ("champion=10%", "is the URI already served"),
        ("models:/churn=10%", "'--split' 'models:/churn' must name a version"),
    ],
)
def test_bad_split_values_name_the_option(value: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_split(value, CHURN)
    assert "'--split'" in caught.value.message and words in caught.value.message, caught.value.message


def test_a_challenger_must_take_what_the_served_version_takes(registry: Path) -> None:
    with covex.Client(registry) as c:
        check_compatible(c, CHURN, "models:/churn/5", "--shadow", same_columns=False)  # the same model
        check_compatible(c, CHURN, "models:/churn-b/1", "--split", same_columns=True)  # same columns and types
        with pytest.raises(InvalidInput) as caught:
            check_compatible(c, CHURN, "models:/echo/1", "--shadow", same_columns=False)
        assert "'--shadow' 'models:/echo/1' takes column 'x' (double)" in caught.value.message
        with pytest.raises(InvalidInput) as caught:
            check_compatible(c, CHURN, "models:/echo/1", "--split", same_columns=True)
        assert "a split needs the same columns" in caught.value.message


def test_serve_options_refuse_a_shadow_without_the_log_and_both_at_once() -> None:
    with pytest.raises(ValueError, match="log_inferences"):
        ServeOptions(uri=CHURN, shadow="models:/churn/2")
    with pytest.raises(ValueError, match="not both"):
        ServeOptions(uri=CHURN, shadow="models:/churn/2", log_inferences="x", split="models:/churn/3", split_percent=5)


# -- the shadow's queue, with stand-ins for the versions ------------------------------------------------


class Version(SimpleNamespace):
    def predict(self, data: Any, params: Any) -> Any:
        return self.fn(data)


class Holder:
    def __init__(self, current: Any) -> None:
        self.current = current


class Log:
    def __init__(self) -> None:
        self.rows: list[tuple[str, int, str, Any]] = []

    def record(self, request_id: str, served: Any, parsed: Any, predictions: Any, elapsed: float, **kw: Any) -> None:
        self.rows.append((request_id, served.version, kw["role"], predictions))


def version(number: int, fn: Callable[[Any], Any], schema: InputSchema | None = None) -> Version:
    return Version(name="churn", version=number, uri=f"models:/churn/{number}", schema=schema, fn=fn)


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_full_queue_skips_and_a_failing_shadow_is_counted() -> None:
    gate = threading.Event()
    champion = version(1, lambda d: [0] * len(d))
    shadow = version(2, lambda d: gate.wait(30) and [1] * len(d))
    log, metrics = Log(), Metrics()
    scorer = ShadowScorer(Holder(shadow), log, metrics, max_queue=2)  # type: ignore[arg-type]
    parsed = ModelInput(pd.DataFrame({"x": [1.0]}), None, 1)
    scorer.start()
    try:
        scorer.submit("r0", champion, parsed, "invocations")  # taken by the thread, which waits on the gate
        wait_for(lambda: scorer.describe()["queued"] == 0)
        for i in range(1, 6):
            scorer.submit(f"r{i}", champion, parsed, "invocations")
        assert (2, 3) == (scorer.describe()["queued"], scorer.describe()["skipped"])
        gate.set()
        wait_for(lambda: scorer.describe()["scored"] == 3)
        assert [("r0", 2, "shadow", [1]), ("r1", 2, "shadow", [1]), ("r2", 2, "shadow", [1])] == log.rows
        scorer.submit("same", shadow, parsed, "invocations")  # answered by the shadow's own version: no second row
        shadow.fn = lambda d: 1 / 0
        scorer.submit("r9", champion, parsed, "invocations")
        wait_for(lambda: scorer.describe()["errors"] == 1)
        assert "ZeroDivisionError" in scorer.describe()["last_error"]
        scorer.holder.current = None  # type: ignore[attr-defined]
        scorer.submit("r10", champion, parsed, "invocations")
        wait_for(lambda: scorer.describe()["skipped"] == 4)
    finally:
        gate.set()
        scorer.stop()
    text = metrics.render().decode()
    for line in ("shadow_skipped_total 4.0", "shadow_errors_total 1.0", "shadow_scored_total 3.0"):
        assert f"covex_serving_{line}" in text
    assert 3 == len(log.rows)


def test_the_shadow_gets_its_own_copy_with_its_columns_in_its_order() -> None:
    served = version(1, len, InputSchema((Column("a", "double"), Column("b", "long"), Column("c", "string"))))
    shadow = version(2, len, InputSchema((Column("c", "string"), Column("a", "double"))))
    frame = pd.DataFrame({"a": [1.5], "b": [2], "c": ["x"]})
    given = shadow_input(ModelInput(frame, None, 1), served, shadow)
    assert (["c", "a"], 1) == (list(given.data.columns), given.rows)
    given.data.loc[0, "a"] = 9.0
    assert 1.5 == frame.loc[0, "a"]


def test_the_log_has_a_role_column_at_the_end(tmp_path: Path) -> None:
    assert "role" == arrow_schema().names[-1]
    writer = InferenceLog(str(tmp_path), interval=0.05)
    writer.start()
    frame = pd.DataFrame({"x": [1.0]})
    for number, role in ((1, "served"), (2, "shadow")):
        served = SimpleNamespace(name="churn", version=number)
        writer.record("req-1", served, ModelInput(frame, None, 1), [number], 0.001, endpoint="invocations", role=role)
    writer.close()
    table = pd.read_parquet(tmp_path).sort_values("role")
    assert [("req-1", 1, "served", [1]), ("req-1", 2, "shadow", [2])] == [
        (r.request_id, int(r.version), r.role, json.loads(r.outputs)) for r in table.itertuples()
    ]
