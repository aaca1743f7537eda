"""Explain a loaded version's outputs with SHAP, choosing the explainer that fits the model.

===============  ==============================================================================
``tree``         scikit-learn forests, extra trees, decision trees and gradient boosting, XGBoost,
                 LightGBM: ``shap.TreeExplainer`` following the training data's paths through the
                 trees (exact, needs no background data, the fastest)
``linear``       scikit-learn linear models: ``shap.LinearExplainer`` against the background data
                 (exact, features taken as independent)
``exact``        anything else with at most 8 features (pipelines with preprocessing, neighbours,
                 SVMs, networks, a ``PythonModel`` or function): ``shap.ExactExplainer`` on the
                 model's own output against the background data, 2**features masked copies a row
``permutation``  the same with more features: ``shap.PermutationExplainer``, about 500 masked
                 copies a row
===============  ==============================================================================

The model-agnostic explainer for many features is the permutation one, not the kernel one: at
SHAP's defaults it evaluates the model on about 500 masked copies of a row (KernelExplainer:
2 * features + 2048), solves no regression per row, and its contributions add up to the output
exactly by construction. Each masked copy is scored against every background row, so a row costs
up to 500 * 100 model evaluations: pass ``rows`` to explain a sample. A tree ensemble SHAP cannot
read (a multiclass scikit-learn ``GradientBoostingClassifier``, an XGBoost linear booster) goes to
the model-agnostic explainers too.

Every explanation is checked: each row's contributions plus its base value must equal the model's
output for that row, computed separately from the explainer.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from covex.domain.errors import CovexError, InvalidInput
from covex.explain.frames import Codec, background_frame, feature_frame, sample
from covex.explain.result import Explanation
from covex.explain.targets import Target, plan_for
from covex.extras import needs_extra

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from covex.batch.model import ScoringModel

# The contributions of a row may differ from its output by this much relative to the outputs' scale.
ADDITIVITY_TOLERANCE = 1e-3
# Masked evaluations per row for the permutation explainer (SHAP's default; at least 2 * features + 1).
PERMUTATION_EVALS = 500
# Up to this many features, all 2**features coalitions cost fewer evaluations than the permutations.
EXACT_FEATURES = 8


def explain(
    model: ScoringModel,
    data: pd.DataFrame,
    *,
    background: pd.DataFrame | None = None,
    rows: int | None = None,
    seed: int = 0,
) -> Explanation:
    """Explain ``model``'s output on the rows of ``data``: each feature's SHAP contribution to each row.

    Args:
        model: a loaded version (``ScoringModel.load(client, "models:/churn@champion")``).
        data: the rows to explain; the model's signature chooses and orders the columns (others
            are ignored).
        background: rows to compare with, such as the version's reference data (at most 100 are
            used, sampled with ``seed``); by default a sample of ``data``. The tree explainer needs none.
        rows: explain this many rows of ``data``, sampled with ``seed`` (kept in their order).
        seed: makes the samples, and the permutation explainer, the same on every run.

    Returns:
        An ``Explanation``; what its output is (a probability, log-odds, a raw score or the
        prediction) is in ``Explanation.output`` and ``covex.explain.targets``.

    Raises:
        InvalidInput: a column the model needs is missing (named), ``data`` has no rows, the model
            cannot score the data, its output is not numbers, SHAP cannot explain it, or the
            contributions do not add up to the output (the row and the difference named).
        MissingExtra: the ``explain`` extra (shap) is not installed.
    """
    with needs_extra("explaining a model"):
        return _explain(model, data, background, rows, seed)


def _explain(
    model: ScoringModel, data: pd.DataFrame, background: pd.DataFrame | None, rows: int | None, seed: int
) -> Explanation:
    import numpy as np

    uri = model.version.uri
    _shap()  # a missing extra is named before any work
    features = feature_frame(model, data, "the data")
    x = sample(features, rows, seed)
    plan = plan_for(model)
    outputs = plan.target.evaluate(x)
    _check_outputs(plan.target, outputs, x, uri)
    column = _explained_column(outputs)
    picked = np.arange(len(x))
    explained = outputs[picked, column]
    tree = _tree_explainer(plan.estimator) if plan.explainer == "tree" else None
    # Made (and checked) even when the tree explainer does without it: a background that does not fit is a mistake.
    bg = background_frame(model, features, background, seed)
    background_rows = 0
    with _shap_errors(uri):
        if tree is not None:
            explainer = "tree"
            values, base = _shaped(*_tree(tree, x), len(x), outputs.shape[1], uri)
            contributions, base_values = values[picked, :, column], base[picked, column]
        else:
            background_rows = len(bg)
            if plan.explainer == "linear":
                explainer = "linear"
                values, base = _shaped(*_linear(plan.estimator, x, bg), len(x), outputs.shape[1], uri)
                contributions, base_values = values[picked, :, column], base[picked, column]
            else:
                explainer, contributions, base_values = _agnostic(plan.target, x, bg, column, seed)
    contributions = np.ascontiguousarray(contributions)
    error = _check_additivity(contributions, base_values, explained, x, uri)
    return Explanation(
        model=uri,
        features=list(x.columns),
        contributions=contributions,
        base_values=base_values,
        outputs=explained,
        explainer=explainer,
        output=plan.target.kind,
        data=x,
        classes=_classes_explained(plan.target, column, outputs.shape[1]),
        background_rows=background_rows,
        additivity_error=error,
    )


def _check_outputs(target: Target, outputs: np.ndarray, x: pd.DataFrame, uri: str) -> None:
    """Refuse outputs an explanation cannot be about: several for a regressor, or ones that are not finite."""
    import numpy as np

    if not target.classifier and outputs.shape[1] > 1:
        raise InvalidInput(f"{uri} returns {outputs.shape[1]} values for each row; an explanation explains one")
    bad = ~np.isfinite(outputs).all(axis=1)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise InvalidInput(
            f"{uri} returns a value that is not a finite number for row {position} "
            f"(index {x.index[position]!r}): it cannot be explained"
        )


def _explained_column(outputs: np.ndarray) -> np.ndarray:
    """Per row, which output column is explained: the only one, the positive class, or the predicted class."""
    import numpy as np

    rows, k = outputs.shape
    if k <= 2:
        return np.full(rows, k - 1, dtype=np.int64)
    return np.asarray(np.argmax(outputs, axis=1), dtype=np.int64)


def _classes_explained(target: Target, column: np.ndarray, outputs: int) -> np.ndarray | None:
    """Per row, the label of the class explained; a binary margin (one output) is about the second class."""
    import numpy as np

    if not target.classifier:
        return None
    labels = np.asarray(target.classes if target.classes is not None else range(max(2, outputs)), dtype=object)
    return np.asarray(labels[column if outputs > 1 else column + 1], dtype=object)


def _tree_explainer(estimator: Any) -> Any | None:
    """SHAP's tree explainer on the trees' own paths, or None when SHAP cannot read this ensemble."""
    shap = _shap()

    try:
        with _quiet():
            return shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
    except Exception:  # noqa: BLE001 - an ensemble shap does not support: the permutation explainer takes it
        return None


def _tree(explainer: Any, x: pd.DataFrame) -> tuple[Any, Any]:
    with _quiet():
        # The additivity of the result is checked once, below, against the model's own output.
        values = explainer.shap_values(x, check_additivity=False)
    return values, explainer.expected_value


def _linear(estimator: Any, x: pd.DataFrame, background: pd.DataFrame) -> tuple[Any, Any]:
    shap = _shap()

    with _quiet():
        explainer = shap.LinearExplainer(estimator, _floats(background, "the background data"))
        values = explainer.shap_values(_floats(x, "the data"))
    return values, explainer.expected_value


def _floats(frame: pd.DataFrame, where: str) -> np.ndarray:
    import numpy as np

    try:
        return np.asarray(frame.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where} has columns that are not numbers; a linear model takes numbers only") from None


def _agnostic(
    target: Target, x: pd.DataFrame, background: pd.DataFrame, column: np.ndarray, seed: int
) -> tuple[str, np.ndarray, np.ndarray]:
    """Contributions to each row's ``column`` of the model's outputs, by the exact or the permutation explainer.

    The exact explainer takes models with few features (it evaluates fewer masked rows then). Rows
    are explained class by class, one output at a time: SHAP's model-agnostic explainers slow down
    many times over with every output they carry, and each row needs only its own.
    """
    import numpy as np

    shap = _shap()

    codec = Codec([x, background])
    encoded = codec.encode(x)
    masker = shap.maskers.Independent(codec.encode(background), max_samples=len(background))
    features = len(codec.columns)
    name = "exact" if features <= EXACT_FEATURES else "permutation"
    contributions = np.empty((len(x), features), dtype=np.float64)
    base = np.empty(len(x), dtype=np.float64)
    for output in np.unique(column):
        positions = np.flatnonzero(column == output)

        def evaluate(matrix: np.ndarray, output: int = int(output)) -> np.ndarray:
            return target.evaluate(codec.decode(matrix))[:, output]

        with _quiet():
            if name == "exact":
                result = shap.ExactExplainer(evaluate, masker)(encoded[positions], silent=True)
            else:
                explainer = shap.PermutationExplainer(evaluate, masker, seed=seed)
                evals = max(PERMUTATION_EVALS, 2 * features + 1)
                result = explainer(encoded[positions], max_evals=evals, silent=True)
        contributions[positions] = np.asarray(result.values, dtype=np.float64).reshape(len(positions), features)
        base[positions] = np.asarray(result.base_values, dtype=np.float64).reshape(len(positions))
    return name, contributions, base


def _shaped(values: Any, base: Any, rows: int, outputs: int, uri: str) -> tuple[np.ndarray, np.ndarray]:
    """SHAP's values as (rows, features, outputs) and base values as (rows, outputs), whatever its version gave."""
    import numpy as np

    if isinstance(values, list):  # older SHAP: one array per output
        values = np.stack([np.asarray(v) for v in values], axis=-1)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2:
        values = values[:, :, None]
    base = np.asarray(base, dtype=np.float64)
    # The tree and linear explainers give one expected value per output (a scalar for one output), never
    # one per row: with as many rows as outputs (2 rows of a binary classifier) it is still per output.
    if base.ndim == 0 or (base.ndim == 1 and (len(base) == values.shape[2] or len(base) != rows)):
        base = np.broadcast_to(base.reshape(1, -1), (rows, base.size))
    elif base.ndim == 1:
        base = base.reshape(rows, 1)
    if values.shape[0] != rows or values.shape[2] != outputs or base.shape != (rows, outputs):
        raise InvalidInput(
            f"{uri}: SHAP explained {values.shape[2]} output(s) of the model's {outputs}; it cannot be explained here"
        )
    return values, base


def _check_additivity(
    contributions: np.ndarray, base: np.ndarray, outputs: np.ndarray, x: pd.DataFrame, uri: str
) -> float:
    """The largest difference between a row's contributions plus base value and its output; refused above tolerance."""
    import numpy as np

    total = contributions.sum(axis=1) + base
    errors = np.abs(total - outputs)
    scale = max(float(np.abs(outputs).max()), float(np.abs(contributions).sum(axis=1).max()))
    tolerance = ADDITIVITY_TOLERANCE * scale + 1e-9
    if not np.isfinite(errors).all():
        position = int(np.flatnonzero(~np.isfinite(errors))[0])
        raise InvalidInput(f"{uri}: the contributions for row {position} are not finite numbers")
    worst = int(np.argmax(errors))
    if errors[worst] > tolerance:
        raise InvalidInput(
            f"{uri}: the contributions do not add up to the model's output: they are off by {errors[worst]:.3g} "
            f"for row {worst} (index {x.index[worst]!r}), more than the {tolerance:.3g} allowed"
        )
    return float(errors[worst])


def _shap() -> Any:
    """The shap module (importing it draws matplotlib's deprecation warnings about shap's own colour maps)."""
    with _quiet():
        import shap  # type: ignore[import-untyped]
    return shap


@contextmanager
def _quiet() -> Iterator[None]:
    """SHAP and the libraries under it warn about their own future changes, which do not concern a user here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextmanager
def _shap_errors(uri: str) -> Iterator[None]:
    """An error inside SHAP as one ``InvalidInput`` line saying why the model cannot be explained."""
    from covex.ml.packaging import one_line

    try:
        yield
    except CovexError:
        raise
    except ModuleNotFoundError:
        raise
    except Exception as exc:
        message = one_line(str(exc)) or type(exc).__name__
        raise InvalidInput(f"{uri} cannot be explained: {type(exc).__name__}: {message}") from exc
