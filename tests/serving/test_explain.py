"""``POST /explain`` on a real ``covex serve --explain``: contributions that add up, for the version that answers."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest

import covex
from tests.serving.conftest import COLUMNS, serve_process, split, training_data

ROWS = [[0.9, 0.8, 0.1, 2], [0.1, 0.05, 0.3, 0], [0.5, 0.5, 0.5, 1]]


@pytest.fixture(scope="module")
def registry(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serving registry plus ``forest`` v1 (a random forest) and ``churn`` v4 (logistic, with a reference)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from covex.ml import log_model

    target = tmp_path_factory.mktemp("explain") / "registry"
    shutil.copytree(template, target)
    X, y = training_data(0)
    with warnings.catch_warnings(), covex.Client(target) as c:
        warnings.simplefilter("ignore")
        log_model(
            c, RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y), "forest", input_example=X.head(3)
        )
        log_model(c, LogisticRegression().fit(X, y), "churn", input_example=X.head(3), reference_data=X)
    return target


def _check(doc: dict, rows: int) -> None:
    contributions = np.asarray(doc["contributions"])
    assert contributions.shape == (rows, len(COLUMNS)) and doc["features"] == COLUMNS
    total = contributions.sum(axis=1) + np.asarray(doc["base_values"])
    assert np.allclose(total, doc["outputs"], atol=1e-6)


def test_explain_on_a_tree_and_a_linear_model(registry: Path) -> None:
    with serve_process("models:/forest/1", str(registry), "--explain") as s, httpx.Client(timeout=60) as http:
        r = http.post(s.url + "/explain", json=split(ROWS))
        assert r.status_code == 200, r.text
        doc = r.json()
        assert (doc["model"], doc["version"], doc["explainer"], doc["output"]) == ("forest", 1, "tree", "probability")
        _check(doc, len(ROWS))
        assert r.headers["covex-model-version"] == "1"
        assert http.post(s.url + "/invocations", json=split(ROWS)).status_code == 200
    with serve_process("models:/churn/4", str(registry), "--explain") as s, httpx.Client(timeout=60) as http:
        doc = http.post(s.url + "/explain", json=split(ROWS[:1])).json()
        assert doc["explainer"] == "linear"
        _check(doc, 1)
        assert any(abs(v) > 1e-6 for v in doc["contributions"][0])  # against the reference: not all zero


def test_explain_refuses_what_it_cannot_do(registry: Path) -> None:
    with serve_process("models:/churn/1", str(registry), "--explain") as s, httpx.Client(timeout=60) as http:
        r = http.post(s.url + "/explain", json=split(ROWS))
        assert r.status_code == 400 and "drift reference to explain against" in r.json()["message"]
        r = http.post(s.url + "/explain", json=split([[0.1, 0.2]], COLUMNS[:2]))
        assert r.status_code == 400 and "'calls'" in r.json()["message"]
        r = http.post(s.url + "/explain", json=split(ROWS * 334))
        assert r.status_code == 400 and "at most 1000 rows" in r.json()["message"]
    with serve_process("models:/forest/1", str(registry)) as s, httpx.Client(timeout=60) as http:
        r = http.post(s.url + "/explain", json=split(ROWS))
        assert r.status_code == 404 and "--explain" in r.json()["message"]
