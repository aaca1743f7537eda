"""Intervals and paired tests: checked by hand, against scikit-learn and scipy, and on known cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from covex.evaluation.metrics import Draw, classification
from covex.evaluation.statistics import delong, mcnemar


def classifier_scores(rows: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    return y, y + rng.normal(0, noise, rows)


def bootstrap_auc_differences(y: np.ndarray, a: np.ndarray, b: np.ndarray, resamples: int) -> np.ndarray:
    truth = y.astype(str).astype(object)
    hard = np.full(len(y), "0", dtype=object)
    auc_a = classification(truth, hard, a, ["0", "1"], "1", ["roc_auc"])
    auc_b = classification(truth, hard, b, ["0", "1"], "1", ["roc_auc"])
    rng = np.random.default_rng(0)
    out = []
    for _ in range(resamples):
        counts = Draw(np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(np.uint8))
        out.append(auc_b.values(counts)["roc_auc"] - auc_a.values(counts)["roc_auc"])
    return np.asarray(out)


def test_mcnemar_by_hand() -> None:
    y = np.ones(100, dtype=int)
    a = np.ones(100, dtype=int)
    b = np.ones(100, dtype=int)
    a[:30] = 0  # a wrong on 30 rows
    b[20:30] = 0  # b wrong on 10 of them: 20 rows only b gets right, none only a
    test = mcnemar(y, a, b)
    assert (0.2, stats.binomtest(20, 20, 0.5).pvalue) == (pytest.approx(test.difference), test.p_value)
    a[:] = 1
    a[:30] = 0
    b[:] = 1
    b[:10] = 0
    b[40:60] = 0  # only a right: 20 rows (b's 40-59); only b right: 20 rows (a's 10-29)
    assert 1.0 == mcnemar(y, a, b).p_value
    b[40:50] = 1  # only a right: 10, only b right: 20 -> 30 discordant rows: chi-squared with correction
    assert pytest.approx(stats.chi2.sf((20 - 10 - 1) ** 2 / 30, 1)) == mcnemar(y, a, b).p_value


def test_delong_aucs_are_scikit_learns_and_its_error_matches_the_bootstrap() -> None:
    y, a = classifier_scores(3000, 1.0, 1)
    _, b = classifier_scores(3000, 0.8, 1)
    b = y + np.random.default_rng(2).normal(0, 0.8, 3000)
    test = delong(y, a, b)
    assert pytest.approx(roc_auc_score(y, b) - roc_auc_score(y, a)) == test.difference
    boot = bootstrap_auc_differences(y, a, b, 400)
    delong_width, boot_width = test.high - test.low, np.subtract(*np.percentile(boot, [97.5, 2.5]))
    assert 0.8 < delong_width / boot_width < 1.25
    assert test.significant and np.percentile(boot, 2.5) > 0  # less noise: clearly better


def test_equal_models_are_no_significant_difference() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2000)
    a = y + rng.normal(0, 1.0, 2000)
    b = y + rng.normal(0, 1.0, 2000)  # another model, as good
    assert not delong(y, a, b).significant
    assert not mcnemar(y, (a > 0.5).astype(int), (b > 0.5).astype(int)).significant
    boot = bootstrap_auc_differences(y, a, b, 300)
    assert np.percentile(boot, 2.5) < 0 < np.percentile(boot, 97.5)
    same = delong(y, a, a)
    assert (0.0, 1.0) == (same.difference, same.p_value)
