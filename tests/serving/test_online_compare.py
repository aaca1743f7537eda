"""``covex compare --online``: a champion and its shadow compared on the requests both scored, once labelled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

import covex
from covex.cli import app
from covex.domain.errors import InvalidInput
from covex.evaluation import compare_online
from covex.monitoring import add_labels
from tests.serving.conftest import Serving, serve_process, split, training_data
from tests.serving.test_shadow import wait_until


@pytest.fixture(scope="module")
def shadowed(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A registry copy whose churn v1 answered 150 labelled requests with v2 as its shadow; the log folder."""
    import shutil

    tmp_path = tmp_path_factory.mktemp("online")
    registry = tmp_path / "registry"
    shutil.copytree(template, registry)
    folder = tmp_path / "log"
    X, y = training_data(0)
    rows = [[*r[:3], int(r[3])] for r in X.values.tolist()][:150]
    with serve_process("models:/churn@champion", str(registry), "--shadow", "2", "--log-inferences", str(folder)) as s:
        wait_until(s, lambda doc: doc["shadow"]["ready"])
        with httpx.Client(timeout=30) as http:
            for i, row in enumerate(rows):
                r = http.post(s.url + "/invocations", json=split([row]), headers={"X-Request-ID": f"req-{i}"})
                assert r.status_code == 200
        wait_until(s, lambda doc: doc["shadow"]["scored"] + doc["shadow"]["skipped"] == len(rows))
        scored = _scored(s)
    labels = pd.DataFrame({"request_id": [f"req-{i}" for i in range(len(rows))], "churned": y[: len(rows)]})
    with covex.Client(registry) as c:
        add_labels(c, "models:/churn/1", labels, key=["request_id"], target="churned", log=str(folder))
    return registry, folder, scored


def _scored(s: Serving) -> int:
    return int(s.get("/version").json()["shadow"]["scored"])


def test_online_comparison_pairs_the_logged_requests(shadowed: Any) -> None:
    registry, folder, scored = shadowed
    with covex.Client(registry) as c:
        result = compare_online(c, ["models:/churn/1", "models:/churn/2"], since="1d", log=str(folder), resamples=100)
        again = compare_online(c, ["models:/churn/1", "models:/churn/2"], since="1d", log=str(folder), resamples=100)
        stored = c.evaluations("models:/churn/2", kind="online")
    assert result.rows == scored > 100
    base, challenger = (e.body for e in result.evaluations)
    assert base["metrics"]["accuracy"]["value"] > challenger["metrics"]["accuracy"]["value"]
    assert challenger["against_baseline"]["accuracy"]["test"] == "McNemar"
    assert again.reused and stored and stored[0].source.startswith("inference log ")
    args = ["--uri", str(registry), "compare", "--online", "models:/churn/1", "models:/churn/2"]
    r = CliRunner().invoke(
        app,
        [*args, "--log", str(folder), "--resamples", "100"],
        env={"COLUMNS": "200"},
    )
    assert r.exit_code == 0, r.stdout
    assert "stored evaluations reused" in r.stdout and "McNemar" in r.stdout


def test_online_comparison_needs_both_versions_and_labels(shadowed: Any, tmp_path: Path) -> None:
    registry, folder, _ = shadowed
    with covex.Client(registry) as c:
        with pytest.raises(InvalidInput, match="scored by both"):
            compare_online(c, ["models:/churn/1", "models:/echo/1"], since="1d", log=str(folder))
        with pytest.raises(InvalidInput, match="two versions"):
            compare_online(c, ["models:/churn/1"], since="1d", log=str(folder))
        empty = tmp_path / "unlabelled"
        import shutil

        shutil.copytree(folder, empty, ignore=shutil.ignore_patterns("labels"))
        with pytest.raises(InvalidInput, match="has a label yet"):
            compare_online(c, ["models:/churn/1", "models:/churn/2"], since="1d", log=str(empty))
