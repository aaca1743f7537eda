"""Metrics of one version's outputs against the labels, computed with row weights.

A bootstrap resample is a vector of counts (how often each row was drawn), so every metric here is a
weighted sum over rows: one draw of counts serves every metric of every version, which is what makes
the comparison paired and keeps 1,000 resamples of a million rows within seconds per metric. With no
weights the values equal scikit-learn's (``accuracy_score``, ``precision_score``, ``recall_score``,
``f1_score`` for the positive class of two, else macro-averaged; ``roc_auc_score``, one-vs-rest
macro for several classes; ``log_loss``; root mean squared error, ``mean_absolute_error``,
``mean_absolute_percentage_error``, ``r2_score``), which the tests check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from covex.domain.errors import InvalidInput
from covex.domain.monitoring import CLASSIFICATION_METRICS, REGRESSION_METRICS

TASKS = ("classification", "regression")
ALIASES = {"auc": "roc_auc", "logloss": "log_loss", "acc": "accuracy"}
HIGHER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"})
NEEDS_SCORES = frozenset({"roc_auc", "log_loss"})
_EPS = 2.220446049250313e-16


def metric_names(task: str, wanted: Sequence[str] | None) -> list[str]:
    """The metrics to compute for ``task``: those asked for (``auc`` is ``roc_auc``), else the task's defaults."""
    known = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if not wanted:
        return list(known)
    names: list[str] = []
    for raw in wanted:
        name = ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if name not in known:
            raise InvalidInput(f"'--metrics': {raw!r} is not a {task} metric; choose from {', '.join(known)}")
        if name not in names:
            names.append(name)
    return names


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom else 0.0


class Draw:
    """The row weights of one bootstrap resample: how often each row was drawn (small integers)."""

    def __init__(self, counts: Any) -> None:
        import numpy as np

        self.counts = counts
        self.floats = counts.astype(np.float32)  # exact: every count and their sum stay below 2**24
        self.total = float(counts.sum(dtype=np.int64))

    def subset(self, rows: Any) -> Draw:
        return Draw(self.counts[rows])


class _Auc:
    """ROC AUC of one score against a yes/no truth, for any row counts: rows sorted once, ties grouped.

    A positive outranks the negatives sorted before its group of equal scores, and half of those in
    it; so one cumulative sum of the negatives' counts, in score order, gives every positive's share.
    """

    def __init__(self, score: Any, positive: Any) -> None:
        import numpy as np

        self.order = np.argsort(score, kind="stable")
        ordered = score[self.order]
        self.positive = positive[self.order]
        self.negative = (~self.positive).astype(np.uint8)
        self.at = np.flatnonzero(self.positive)  # where the positives are, in score order
        new = np.r_[True, ordered[1:] != ordered[:-1]]
        self.ties = not bool(new.all())
        if self.ties:
            group = np.cumsum(new) - 1
            starts = np.flatnonzero(new)
            ends = np.r_[starts[1:], len(ordered)] - 1
            self.first, self.last = starts[group][self.at], ends[group][self.at]
        self.ones = np.ones(len(ordered), dtype=np.uint8)

    def __call__(self, counts: Any) -> float:
        import numpy as np

        ws = self.ones if counts is None else counts[self.order]
        negatives = ws * self.negative
        upto = np.cumsum(negatives, dtype=np.int32)  # negatives' counts up to each row, inclusive (< 2**31)
        wp = ws[self.at].astype(np.float64)
        p, n = wp.sum(), float(upto[-1]) if len(upto) else 0.0
        if p == 0 or n == 0:
            return float("nan")
        if not self.ties:
            return float(wp @ upto[self.at].astype(np.float64) / (p * n))
        before = upto[self.first].astype(np.float64) - negatives[self.first]
        within = upto[self.last] - before
        return float(wp @ (before + 0.5 * within) / (p * n))


Formula = Callable[[Any, float, Any], float]


@dataclass
class Outputs:
    """One version's outputs on the rows, against the truth, as per-row columns that weighted sums turn
    into metrics (``formulas`` read the sums; ROC AUC needs its own pass in score order)."""

    task: str
    names: list[str]
    rows: int
    matrix: Any = None  # columns x rows, float32
    formulas: dict[str, Formula] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def values(self, draw: Draw | None = None) -> dict[str, float]:
        """Every metric with the rows weighted by ``draw`` (None: each row once)."""
        import numpy as np

        if draw is None:
            sums, total, counts = self.matrix.sum(axis=1, dtype=np.float64), float(self.rows), None
        else:
            sums, total, counts = (self.matrix @ draw.floats).astype(np.float64), draw.total, draw.counts
        return {name: self.formulas[name](sums, total, counts) for name in self.names if name in self.formulas}


def _stack(columns: list[Any]) -> Any:
    import numpy as np

    return np.ascontiguousarray(np.vstack([np.asarray(c, dtype=np.float32) for c in columns]))


def classification(y: Any, hard: Any, scores: Any, classes: list[str], positive: str, names: Sequence[str]) -> Outputs:
    """Outputs of a classifier: ``y`` and ``hard`` as class text, ``scores`` the probabilities (or None).

    ``scores`` is one column (of ``positive``) for two classes, or one column per class of ``classes``.
    """
    import numpy as np

    rows = len(y)
    out = Outputs("classification", list(names), rows)
    columns = [hard == y]
    binary = len(set(classes) | set(np.unique(hard))) <= 2
    labels = [positive] if binary else sorted(set(classes) | set(np.unique(hard)))
    for label in labels:
        truth, said = y == label, hard == label
        columns += [truth & said, ~truth & said, truth & ~said]
    k = len(labels)

    def per_class(sums: Any, fn: Callable[[float, float, float], float]) -> float:
        return float(np.mean([fn(sums[1 + 3 * i], sums[2 + 3 * i], sums[3 + 3 * i]) for i in range(k)]))

    out.formulas["accuracy"] = lambda s, total, c: float(s[0] / total)
    out.formulas["precision"] = lambda s, total, c: per_class(s, lambda tp, fp, fn: _ratio(tp, tp + fp))
    out.formulas["recall"] = lambda s, total, c: per_class(s, lambda tp, fp, fn: _ratio(tp, tp + fn))
    out.formulas["f1"] = lambda s, total, c: per_class(s, lambda tp, fp, fn: _ratio(2 * tp, 2 * tp + fp + fn))
    if scores is None:
        if NEEDS_SCORES & set(names):
            out.notes.append("roc_auc and log_loss need probabilities; the model answered class labels")
        out.matrix = _stack(columns)
        return out
    if scores.ndim == 1:
        aucs = [_Auc(scores, y == positive)] if len(set(y)) == 2 else []
        p_true = np.where(y == positive, scores, 1 - scores)
    else:
        index = {c: i for i, c in enumerate(classes)}
        aucs = [_Auc(scores[:, i], y == c) for c, i in index.items()] if len(set(y)) > 1 else []
        at = np.array([index.get(v, -1) for v in y])
        p_true = np.where(at >= 0, scores[np.arange(rows), np.maximum(at, 0)], 0.0)
        p_true = p_true / np.maximum(scores.sum(axis=1), _EPS)  # as scikit-learn: rows normalised
    columns.append(-np.log(np.clip(p_true, _EPS, 1 - _EPS)))
    loss = len(columns) - 1
    out.matrix = _stack(columns)
    out.formulas["log_loss"] = lambda s, total, c: float(s[loss] / total)
    if aucs:
        out.formulas["roc_auc"] = lambda s, total, c: float(np.mean([auc(c) for auc in aucs]))
    elif "roc_auc" in names:
        out.notes.append("roc_auc needs both classes among the labels")
    return out


def regression(y: Any, predicted: Any, names: Sequence[str]) -> Outputs:
    """Outputs of a regressor: ``y`` and ``predicted`` as floats."""
    import numpy as np

    rows = len(y)
    out = Outputs("regression", list(names), rows)
    error = predicted - y
    absolute = np.abs(error)
    center = float(np.mean(y)) if rows else 0.0  # sums of squares about a center: no cancellation in float32
    out.matrix = _stack([error**2, absolute, absolute / np.maximum(np.abs(y), _EPS), y - center, (y - center) ** 2])

    def r2(s: Any, total: float, c: Any) -> float:
        spread = s[4] - s[3] ** 2 / total
        return float(1 - s[0] / spread) if spread > 0 else float("nan")

    out.formulas["rmse"] = lambda s, total, c: float(np.sqrt(s[0] / total))
    out.formulas["mae"] = lambda s, total, c: float(s[1] / total)
    out.formulas["mape"] = lambda s, total, c: float(s[2] / total)
    out.formulas["r2"] = r2
    return out
