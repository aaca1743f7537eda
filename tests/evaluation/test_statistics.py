"""Intervals and paired tests: checked by hand, against scikit-learn and scipy, and on known cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, mean_absolute_error, roc_auc_score

from covex.evaluation.statistics import bootstrap_interval, delong, mcnemar, paired_bootstrap


def classifier_scores(rows: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    return y, y + rng.normal(0, noise, rows)


def test_the_interval_holds_the_value_and_narrows_with_more_rows() -> None:
    y, score = classifier_scores(2000, 1.0, 0)
    hard = (score > 0.5).astype(int)
    wide = bootstrap_interval(accuracy_score, y[:200], hard[:200], resamples=300)
    narrow = bootstrap_interval(accuracy_score, y, hard, resamples=300)
    assert wide.low <= wide.value <= wide.high and narrow.low <= narrow.value <= narrow.high
    assert narrow.high - narrow.low < wide.high - wide.low
    assert narrow.value == accuracy_score(y, hard)
    assert narrow == bootstrap_interval(accuracy_score, y, hard, resamples=300)  # seeded: the same twice


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
    boot = paired_bootstrap(roc_auc_score, y, a, b, resamples=400)
    delong_width, boot_width = test.high - test.low, boot.high - boot.low
    assert 0.8 < delong_width / boot_width < 1.25
    assert test.significant and boot.significant  # less noise: clearly better


def test_equal_models_are_no_significant_difference() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2000)
    a = y + rng.normal(0, 1.0, 2000)
    b = y + rng.normal(0, 1.0, 2000)  # another model, as good
    assert not delong(y, a, b).significant
    assert not mcnemar(y, (a > 0.5).astype(int), (b > 0.5).astype(int)).significant
    assert not paired_bootstrap(roc_auc_score, y, a, b, resamples=300).significant
    same = delong(y, a, a)
    assert (0.0, 1.0) == (same.difference, same.p_value)


def test_paired_bootstrap_of_a_regression_error() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=1000)
    good, bad = y + rng.normal(0, 0.5, 1000), y + rng.normal(0, 1.0, 1000)
    test = paired_bootstrap(mean_absolute_error, y, bad, good, resamples=300)
    assert test.difference == pytest.approx(mean_absolute_error(y, good) - mean_absolute_error(y, bad))
    assert test.high < 0 and test.significant  # good's error is lower


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="same rows"):
        mcnemar([1, 0], [1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="both classes"):
        delong([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
