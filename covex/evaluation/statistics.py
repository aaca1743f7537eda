"""The statistics of a fair comparison: bootstrap intervals and paired tests on the same rows.

Two versions scored on the same rows are compared pairwise, row by row, which is far more sensitive
than comparing two numbers computed apart:

- ``bootstrap_interval``: a metric's percentile interval over resamples of the rows;
- ``paired_bootstrap``: the difference of a metric between two versions, resampling the same rows for
  both, with its interval and a two-sided p-value (how often the resampled difference crosses 0);
- ``mcnemar``: for accuracy, the exact (binomial) test on the rows exactly one version gets right,
  or the chi-squared approximation with continuity correction once those are many;
- ``delong``: for ROC AUC, DeLong's test of two correlated AUCs (the fast algorithm of Sun and Xu,
  2014), with the difference's standard error and a normal interval.

Resamples are drawn in blocks so memory stays bounded on large evaluations, from a seeded generator
so a comparison gives the same numbers twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Metric = Callable[[Any, Any], float]
RESAMPLES = 1000
LEVEL = 0.95
BLOCK_CELLS = 5_000_000  # rows x resamples drawn at once


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


def _resample_indexes(rows: int, resamples: int, seed: int) -> Any:
    """Blocks of resampled row indexes (``resamples x rows`` in total), bounded in memory."""
    import numpy as np

    rng = np.random.default_rng(seed)
    per_block = max(1, BLOCK_CELLS // max(rows, 1))
    done = 0
    while done < resamples:
        n = min(per_block, resamples - done)
        yield rng.integers(0, rows, size=(n, rows))
        done += n


def _check(y: Any, *scores: Any) -> tuple[Any, ...]:
    import numpy as np

    arrays = [np.asarray(y), *(np.asarray(s) for s in scores)]
    if any(len(a) != len(arrays[0]) for a in arrays):
        raise ValueError("the labels and every version's predictions must have the same rows")
    if len(arrays[0]) < 2:
        raise ValueError("a comparison needs at least two rows")
    return tuple(arrays)


def bootstrap_interval(
    metric: Metric, y: Any, predicted: Any, *, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0
) -> Interval:
    """``metric(y, predicted)`` with its bootstrap percentile interval (resamples where it is undefined are skipped)."""
    import numpy as np

    y, predicted = _check(y, predicted)
    values = []
    for block in _resample_indexes(len(y), resamples, seed):
        for index in block:
            try:
                values.append(metric(y[index], predicted[index]))
            except ValueError:  # e.g. AUC of a resample holding one class only
                continue
    point = metric(y, predicted)
    if not values:
        return Interval(point, float("nan"), float("nan"), level)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(point), float(low), float(high), level)


def paired_bootstrap(
    metric: Metric, y: Any, a: Any, b: Any, *, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0
) -> PairedTest:
    """``metric(y, b) - metric(y, a)`` on the same resampled rows: interval and two-sided p-value."""
    import numpy as np

    y, a, b = _check(y, a, b)
    differences = []
    for block in _resample_indexes(len(y), resamples, seed):
        for index in block:
            try:
                differences.append(metric(y[index], b[index]) - metric(y[index], a[index]))
            except ValueError:
                continue
    point = metric(y, b) - metric(y, a)
    if not differences:
        return PairedTest("paired bootstrap", float(point), float("nan"), float("nan"), 1.0)
    d = np.asarray(differences)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(d, [tail, 100 - tail])
    # Two-sided: twice the smaller share of resamples on either side of 0 (ties count half), at most 1.
    below = (np.sum(d < 0) + 0.5 * np.sum(d == 0)) / len(d)
    p_value = min(1.0, 2 * min(below, 1 - below))
    return PairedTest("paired bootstrap", float(point), float(low), float(high), float(p_value))


def mcnemar(y: Any, a: Any, b: Any) -> PairedTest:
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
    z = stats.norm.ppf(0.5 + LEVEL / 2)
    return PairedTest("McNemar", float(difference), float(difference - z * se), float(difference + z * se), p_value)


def _midranks(x: Any) -> Any:
    from scipy import stats

    return stats.rankdata(x, method="average")


def delong(y: Any, a: Any, b: Any, *, positive: Any = 1) -> PairedTest:
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
        p_value = 1.0 if difference == 0 else 0.0
        return PairedTest("DeLong", float(difference), float(difference), float(difference), p_value)
    se = float(np.sqrt(variance))
    z = stats.norm.ppf(0.5 + LEVEL / 2)
    p_value = float(2 * stats.norm.sf(abs(difference) / se))
    return PairedTest("DeLong", float(difference), float(difference - z * se), float(difference + z * se), p_value)
