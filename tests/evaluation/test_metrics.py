"""Weighted metrics: scikit-learn's values without weights, and counts equal repeated rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as m

from covex.evaluation.metrics import Draw, classification, metric_names, regression


def binary(rows: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    scores = np.clip(0.5 * y + rng.normal(0.25, 0.3, rows), 0, 1)
    scores[:20] = 0.5  # ties
    return y.astype(str).astype(object), scores, np.where(scores >= 0.5, "1", "0").astype(object)


def test_binary_classification_matches_scikit_learn() -> None:
    y, scores, hard = binary()
    out = classification(y, hard, scores, ["0", "1"], "1", metric_names("classification", None)).values()
    assert out["accuracy"] == pytest.approx(m.accuracy_score(y, hard))
    assert out["precision"] == pytest.approx(m.precision_score(y, hard, pos_label="1"))
    assert out["recall"] == pytest.approx(m.recall_score(y, hard, pos_label="1"))
    assert out["f1"] == pytest.approx(m.f1_score(y, hard, pos_label="1"))
    assert out["roc_auc"] == pytest.approx(m.roc_auc_score(y == "1", scores))
    untied = np.random.default_rng(9).random(len(y))
    assert classification(y, hard, untied, ["0", "1"], "1", ["roc_auc"]).values()["roc_auc"] == pytest.approx(
        m.roc_auc_score(y == "1", untied)
    )
    assert out["log_loss"] == pytest.approx(m.log_loss(y == "1", scores), rel=1e-6)


def test_multiclass_matches_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = rng.choice(["a", "b", "c"], 600).astype(object)
    proba = rng.dirichlet([1, 1, 1], 600)
    proba[np.arange(600), (y == "b") + 2 * (y == "c")] += 0.8
    proba /= proba.sum(axis=1, keepdims=True)
    hard = np.asarray(["a", "b", "c"], dtype=object)[proba.argmax(axis=1)]
    out = classification(y, hard, proba, ["a", "b", "c"], "c", metric_names("classification", None)).values()
    assert out["f1"] == pytest.approx(m.f1_score(y, hard, average="macro"))
    assert out["precision"] == pytest.approx(m.precision_score(y, hard, average="macro"))
    assert out["roc_auc"] == pytest.approx(m.roc_auc_score(y, proba, multi_class="ovr", labels=["a", "b", "c"]))
    assert out["log_loss"] == pytest.approx(m.log_loss(y, proba, labels=["a", "b", "c"]), rel=1e-6)


def test_regression_matches_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(10, 3, 400)
    p = y + rng.normal(0, 1, 400)
    out = regression(y, p, metric_names("regression", None)).values()
    assert out["rmse"] == pytest.approx(np.sqrt(m.mean_squared_error(y, p)))
    assert out["mae"] == pytest.approx(m.mean_absolute_error(y, p))
    assert out["mape"] == pytest.approx(m.mean_absolute_percentage_error(y, p))
    assert out["r2"] == pytest.approx(m.r2_score(y, p))


def test_counts_are_repeated_rows() -> None:
    y, scores, hard = binary(300, seed=3)
    counts = Draw(np.random.default_rng(4).integers(0, 4, 300).astype(np.uint8))
    repeat = np.repeat(np.arange(300), counts.counts)
    names = metric_names("classification", None)
    weighted = classification(y, hard, scores, ["0", "1"], "1", names).values(counts)
    repeated = classification(y[repeat], hard[repeat], scores[repeat], ["0", "1"], "1", names).values()
    assert weighted == pytest.approx(repeated, rel=1e-5)
    r = np.random.default_rng(5).normal(size=300)
    assert regression(r, r * 0.9, ["rmse", "r2"]).values(counts) == pytest.approx(
        regression(r[repeat], r[repeat] * 0.9, ["rmse", "r2"]).values(), rel=1e-5
    )


def test_metric_names() -> None:
    assert metric_names("classification", ["auc", "F1", "auc"]) == ["roc_auc", "f1"]
    with pytest.raises(Exception, match="'mae' is not a classification metric"):
        metric_names("classification", ["mae"])
