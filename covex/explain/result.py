"""An explanation of a version's outputs on some rows: each feature's contribution to each row's output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from covex.domain.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# A record is stored on the version: its list of features is capped, and so is each name's length,
# so that it stays small (a few tens of KiB) however wide the model.
MAX_RECORD_FEATURES = 100
MAX_NAME_CHARS = 200


@dataclass(frozen=True, eq=False)
class Explanation:
    """Each feature's SHAP contribution to the explained output of each row.

    For every row ``i``: ``contributions[i].sum() + base_values[i] == outputs[i]`` (checked when
    the explanation was made; the largest difference is ``additivity_error``).

    Attributes:
        model: the version explained, by number (``models:/churn/7``).
        features: the feature names, in the model's signature order.
        contributions: rows by features array of SHAP values, in the units of ``output``.
        base_values: per row, the output expected with no feature known (the background's mean output).
        outputs: per row, the model's output that is explained.
        explainer: ``tree``, ``linear``, ``exact`` or ``permutation`` (see ``covex.explain.explainers``).
        output: ``probability``, ``log_odds``, ``raw`` or ``prediction`` (see ``covex.explain.targets``).
        data: the explained rows (the features as given, with their index).
        classes: per row, the class explained (classifiers), or None.
        background_rows: rows of background data SHAP compared with (0 for the tree explainer,
            which follows the training data's paths through the trees instead).
        additivity_error: the largest ``|contributions.sum() + base - output|`` over the rows.
    """

    model: str
    features: list[str]
    contributions: np.ndarray
    base_values: np.ndarray
    outputs: np.ndarray
    explainer: str
    output: str
    data: pd.DataFrame = field(repr=False)
    classes: np.ndarray | None = None
    background_rows: int = 0
    additivity_error: float = 0.0

    @property
    def rows(self) -> int:
        """How many rows were explained."""
        return int(self.contributions.shape[0])

    @property
    def target(self) -> str:
        """In words, which output was explained: ``prediction``, ``class 'yes'`` or ``predicted class``."""
        if self.classes is None:
            return "prediction"
        distinct = {str(c) for c in self.classes}
        return f"class {distinct.pop()}" if len(distinct) == 1 else "predicted class"

    def global_importance(self) -> list[tuple[str, float]]:
        """Each feature with its mean absolute contribution over the rows, the largest first (ties by name order)."""
        import numpy as np

        means = np.abs(self.contributions).mean(axis=0)
        order = np.argsort(-means, kind="stable")
        return [(self.features[i], float(means[i])) for i in order]

    def row(self, position: int) -> list[tuple[str, float]]:
        """The contributions of the row at ``position`` (0-based), the largest in size first."""
        import numpy as np

        if not 0 <= position < self.rows:
            raise InvalidInput(f"row {position} is not among the {self.rows} explained rows (0 to {self.rows - 1})")
        values = self.contributions[position]
        order = np.argsort(-np.abs(values), kind="stable")
        return [(self.features[i], float(values[i])) for i in order]

    def to_record(self, top: int = 20) -> dict[str, Any]:
        """A small JSON-able summary to keep on the version: the ``top`` most important features and how many more.

        ``top`` is 1 to 100; names longer than 200 characters are cut (ending in ``…``), so the
        record stays a few tens of KiB even for a model with thousands of features.
        """
        if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_RECORD_FEATURES:
            raise InvalidInput(f"'top' must be a whole number from 1 to {MAX_RECORD_FEATURES}, got {top!r}")
        ranked = self.global_importance()
        return {
            "model": self.model,
            "explainer": self.explainer,
            "output": self.output,
            "target": _cut(self.target),
            "rows": self.rows,
            "background_rows": self.background_rows,
            "features": len(self.features),
            "base_value": float(self.base_values.mean()),
            "mean_output": float(self.outputs.mean()),
            "importances": [{"feature": _cut(name), "mean_abs": value} for name, value in ranked[:top]],
            "importances_left_off": max(0, len(ranked) - top),
            "additivity_max_error": self.additivity_error,
        }


def _cut(text: str) -> str:
    return text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 1] + "…"
