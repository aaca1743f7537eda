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


class _Auc:
    """ROC AUC of one score against a yes/no truth, for any row weights: rows sorted once, ties grouped."""

    def __init__(self, score: Any, positive: Any) -> None:
        import numpy as np

        self.order = np.argsort(score, kind="stable")
        ordered = score[self.order]
        self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self.positive = positive[self.order]

    def __call__(self, w: Any) -> float:
        import numpy as np

        ws = np.ones(len(self.order)) if w is None else w[self.order]
        wp = np.where(self.positive, ws, 0)
        gp, gall = np.add.reduceat(wp, self.starts), np.add.reduceat(ws, self.starts)
        gn = gall - gp
        p, n = gp.sum(), gn.sum()
        if p == 0 or n == 0:
            return float("nan")
        below = np.cumsum(gn) - gn  # negatives scored lower than the group; ties count half
        return float((gp * (below + 0.5 * gn)).sum() / (p * n))


@dataclass
class Outputs:
    """One version's outputs on the rows, against the truth, ready for weighted metrics."""

    task: str
    names: list[str]
    rows: int
    _parts: dict[str, Callable[[Any], float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def values(self, w: Any = None) -> dict[str, float]:
        """Every metric with row weights ``w`` (None: each row once)."""
        return {name: self._parts[name](w) for name in self.names if name in self._parts}


def _total(w: Any, rows: int) -> float:
    return float(rows if w is None else w.sum())


def _dot(w: Any, v: Any) -> float:
    return float(v.sum() if w is None else w @ v)


def classification(y: Any, hard: Any, scores: Any, classes: list[str], positive: str, names: Sequence[str]) -> Outputs:
    """Outputs of a classifier: ``y`` and ``hard`` as class text, ``scores`` the probabilities (or None).

    ``scores`` is one column (of ``positive``) for two classes, or one column per class of ``classes``.
    """
    import numpy as np

    rows = len(y)
    out = Outputs("classification", list(names), rows)
    correct = (hard == y).astype(float)
    out._parts["accuracy"] = lambda w: _dot(w, correct) / _total(w, rows)
    binary = len(set(classes) | set(np.unique(hard))) <= 2
    labels = [positive] if binary else sorted(set(classes) | set(np.unique(hard)))
    counts = []
    for label in labels:
        truth, said = y == label, hard == label
        counts.append(((truth & said).astype(float), (~truth & said).astype(float), (truth & ~said).astype(float)))

    def per_class(w: Any, fn: Callable[[float, float, float], float]) -> float:
        return float(np.mean([fn(_dot(w, tp), _dot(w, fp), _dot(w, fn_)) for tp, fp, fn_ in counts]))

    out._parts["precision"] = lambda w: per_class(w, lambda tp, fp, fn: _ratio(tp, tp + fp))
    out._parts["recall"] = lambda w: per_class(w, lambda tp, fp, fn: _ratio(tp, tp + fn))
    out._parts["f1"] = lambda w: per_class(w, lambda tp, fp, fn: _ratio(2 * tp, 2 * tp + fp + fn))
    if scores is None:
        if NEEDS_SCORES & set(names):
            out.notes.append("roc_auc and log_loss need probabilities; the model answered class labels")
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
    loss = -np.log(np.clip(p_true, _EPS, 1 - _EPS))
    out._parts["log_loss"] = lambda w: _dot(w, loss) / _total(w, rows)
    if aucs:
        out._parts["roc_auc"] = lambda w: float(np.mean([auc(w) for auc in aucs]))
    elif "roc_auc" in names:
        out.notes.append("roc_auc needs both classes among the labels")
    return out


def regression(y: Any, predicted: Any, names: Sequence[str]) -> Outputs:
    """Outputs of a regressor: ``y`` and ``predicted`` as floats."""
    import numpy as np

    rows = len(y)
    out = Outputs("regression", list(names), rows)
    error = predicted - y
    squared, absolute = error**2, np.abs(error)
    relative = absolute / np.maximum(np.abs(y), _EPS)
    y2 = y**2

    def r2(w: Any) -> float:
        total = _total(w, rows)
        spread = _dot(w, y2) - _dot(w, y) ** 2 / total
        return 1 - _dot(w, squared) / spread if spread > 0 else float("nan")

    out._parts["rmse"] = lambda w: float(np.sqrt(_dot(w, squared) / _total(w, rows)))
    out._parts["mae"] = lambda w: _dot(w, absolute) / _total(w, rows)
    out._parts["mape"] = lambda w: _dot(w, relative) / _total(w, rows)
    out._parts["r2"] = r2
    return out
