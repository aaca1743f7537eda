"""The statistics of a fair comparison: bootstrap intervals and paired tests on the same rows.

Two versions scored on the same rows are compared pairwise, row by row, which is far more sensitive
than comparing two numbers computed apart:

- ``mcnemar``: for accuracy, the exact (binomial) test on the rows exactly one version gets right,
  or the chi-squared approximation with continuity correction once those are many;
- ``delong``: for ROC AUC, DeLong's test of two correlated AUCs (the fast algorithm of Sun and Xu,
  2014), with the difference's standard error and a normal interval.

Bootstrap intervals and the paired bootstrap test of every other metric are in ``covex.evaluation.paired``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    level: float = LEVEL


@dataclass(frozen=True)
class PairedTest:
    """The difference ``b - a`` of one measure, its interval, and the two-sided p-value of a test of no difference."""

    test: str
    difference: float
    low: float
    high: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < 1 - LEVEL


def _check(y: Any, *scores: Any) -> tuple[Any, ...]:
    import numpy as np

    arrays = [np.asarray(y), *(np.asarray(s) for s in scores)]
    if any(len(a) != len(arrays[0]) for a in arrays):
        raise ValueError("the labels and every version's predictions must have the same rows")
    if len(arrays[0]) < 2:
        raise ValueError("a comparison needs at least two rows")
    return tuple(arrays)


def mcnemar(y: Any, a: Any, b: Any, *, level: float = LEVEL) -> PairedTest:
    """McNemar's test of two classifiers' accuracies on the same rows (exact below 25 discordant rows)."""
    import numpy as np
    from scipy import stats

    y, a, b = _check(y, a, b)
    right_a, right_b = a == y, b == y
    only_a = int(np.sum(right_a & ~right_b))
    only_b = int(np.sum(right_b & ~right_a))
    rows = len(y)
    difference = (only_b - only_a) / rows
    discordant = only_a + only_b
    if discordant == 0:
        p_value = 1.0
    elif discordant < 25:
        p_value = float(stats.binomtest(only_b, discordant, 0.5).pvalue)
    else:
        statistic = max(abs(only_b - only_a) - 1, 0) ** 2 / discordant
        p_value = float(stats.chi2.sf(statistic, 1))
    # The accuracy difference's standard error under pairing (Agresti): a normal interval.
    se = np.sqrt(max(discordant / rows - difference**2, 0.0) / rows)
    z = stats.norm.ppf(0.5 + level / 2)
    low, high = max(difference - z * se, -1.0), min(difference + z * se, 1.0)
    return PairedTest("McNemar", float(difference), float(low), float(high), p_value)


def _midranks(x: Any) -> Any:
    from scipy import stats

    return stats.rankdata(x, method="average")


def delong(y: Any, a: Any, b: Any, *, positive: Any = 1, level: float = LEVEL) -> PairedTest:
    """DeLong's test of two correlated ROC AUCs (scores ``a`` and ``b`` of the same rows, labels ``y``)."""
    import numpy as np
    from scipy import stats

    y, a, b = _check(y, a, b)
    is_positive = y == positive
    m, n = int(is_positive.sum()), int((~is_positive).sum())
    if m == 0 or n == 0:
        raise ValueError("ROC AUC needs both classes among the rows")
    aucs, v10, v01 = [], [], []
    for scores in (a, b):
        scores = scores.astype(float)
        positives, negatives = scores[is_positive], scores[~is_positive]
        tx, ty, tz = _midranks(positives), _midranks(negatives), _midranks(np.concatenate([positives, negatives]))
        aucs.append((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((tz[:m] - tx) / n)  # per positive: the share of negatives it outranks
        v01.append(1 - (tz[m:] - ty) / m)  # per negative: the share of positives that outrank it
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    covariance = s10 / m + s01 / n
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    difference = aucs[1] - aucs[0]
    if variance <= 0:
        if difference == 0:
            return PairedTest("DeLong", 0.0, 0.0, 0.0, 1.0)
        # No spread to judge the difference by (a handful of rows): no test rather than a false certainty.
        raise ValueError("DeLong's variance is zero: too few rows to test the difference")
    se = float(np.sqrt(variance))
    z = stats.norm.ppf(0.5 + level / 2)
    p_value = float(2 * stats.norm.sf(abs(difference) / se))
    return PairedTest("DeLong", float(difference), float(difference - z * se), float(difference + z * se), p_value)
