"""What an explanation explains: the estimator inside a loaded version, and which of its outputs.

A version registered with ``covex.ml`` loads as an MLflow pyfunc; its scikit-learn, XGBoost and
LightGBM flavors hand back the trained object (``get_raw_model``), a ``PythonModel`` or a function
does not. The output explained, per row (``Explanation.output``):

==============  ===========================================================================
``probability``  the class probability: random forests, extra trees and decision trees (tree
                 explainer); any other classifier with ``predict_proba`` (model-agnostic explainers)
``log_odds``     the margin of a binary classifier whose link is the logistic: gradient
                 boosting (scikit-learn, XGBoost, LightGBM), logistic regression
``raw``          any other margin: multiclass boosting and linear models (one score per class),
                 hinge-loss linear classifiers, Poisson/Gamma/Tweedie boosters (log scale)
``prediction``   what a regressor (or a ``PythonModel``, or a function) predicts
==============  ===========================================================================

A binary classifier is explained for its positive class (the second of its classes); a multiclass
one for each row's predicted class (the largest of the explained outputs), so every explanation is
one number per row and feature whatever the model.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from covex.domain.errors import CovexError, InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from covex.batch.model import ScoringModel

# Objectives whose margin is the log-odds of the positive class, or is the prediction itself.
XGBOOST_LOG_ODDS = frozenset({"binary:logistic", "binary:logitraw", "reg:logistic"})
XGBOOST_IDENTITY = frozenset(
    {"reg:squarederror", "reg:linear", "reg:squaredlogerror", "reg:pseudohubererror", "reg:absoluteerror",
     "reg:quantileerror"}
)  # fmt: skip
LIGHTGBM_LOG_ODDS = frozenset({"binary", "cross_entropy", "xentropy"})
LIGHTGBM_MULTICLASS = frozenset({"multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr"})
LIGHTGBM_IDENTITY = frozenset(
    {"regression", "regression_l2", "l2", "mean_squared_error", "mse", "l2_root", "root_mean_squared_error", "rmse",
     "regression_l1", "l1", "mean_absolute_error", "mae", "huber", "fair", "quantile", "mape",
     "mean_absolute_percentage_error"}
)  # fmt: skip


@dataclass(frozen=True)
class Target:
    """One output of the model as a function of its features: what the contributions of a row add up to.

    ``evaluate`` maps a frame of features to a rows by k float matrix: k = 1 for a regressor or a
    binary margin, one column per class otherwise. ``classes`` names those classes when known.
    """

    kind: str
    evaluate: Callable[[pd.DataFrame], np.ndarray]
    classifier: bool = False
    classes: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Plan:
    """Which SHAP explainer explains ``target``; ``estimator`` is what it is given (tree and linear)."""

    explainer: str
    target: Target
    estimator: Any = None


def underlying(pyfunc: Any) -> Any | None:
    """The trained object inside a loaded pyfunc (scikit-learn, XGBoost, LightGBM); None for a ``PythonModel``."""
    try:
        return pyfunc.get_raw_model()
    except Exception:  # noqa: BLE001 - MLflow raises its own error for flavors that keep no raw model
        return None


def plan_for(model: ScoringModel) -> Plan:
    """Choose the explainer and the output to explain for ``model`` (see the module's table)."""
    estimator = underlying(model.pyfunc)
    uri = model.version.uri
    if estimator is None:
        return Plan("agnostic", pyfunc_target(model))
    root = type(estimator).__module__.split(".")[0]
    if root == "xgboost":
        return Plan("tree", _xgboost_target(estimator, uri), estimator)
    if root == "lightgbm":
        return Plan("tree", _lightgbm_target(estimator, uri), estimator)
    if root != "sklearn":
        return Plan("agnostic", pyfunc_target(model))
    outputs = getattr(estimator, "n_outputs_", 1)
    if isinstance(outputs, int) and outputs > 1:
        raise InvalidInput(f"{uri} predicts {outputs} outputs for each row; an explanation explains one")
    tree = _sklearn_tree_target(estimator, uri)
    if tree is not None:
        return Plan("tree", tree, estimator)
    linear = _linear_target(estimator, uri)
    if linear is not None:
        return Plan("linear", linear, estimator)
    return Plan("agnostic", estimator_target(estimator, uri))


def pyfunc_target(model: ScoringModel) -> Target:
    """The pyfunc's own prediction (a ``PythonModel`` or a function): one number per row."""
    uri = model.version.uri

    def evaluate(frame: pd.DataFrame) -> np.ndarray:
        return as_matrix(model.predict(frame), len(frame), uri)

    return Target("prediction", evaluate)


def estimator_target(estimator: Any, uri: str) -> Target:
    """A scikit-learn estimator (or pipeline) of any kind: its probabilities, decision function or prediction."""
    from sklearn.base import is_classifier

    if not is_classifier(estimator):
        return Target("prediction", _scorer(estimator.predict, uri))
    classes = _classes(estimator)
    if hasattr(estimator, "predict_proba"):
        return Target("probability", _scorer(estimator.predict_proba, uri), True, classes)
    if hasattr(estimator, "decision_function"):
        return Target("raw", _scorer(estimator.decision_function, uri), True, classes)
    raise InvalidInput(
        f"{uri} is a classifier with neither predict_proba nor decision_function: it gives labels, "
        "and labels cannot be explained"
    )


def _sklearn_tree_target(estimator: Any, uri: str) -> Target | None:
    """Tree ensembles SHAP's tree explainer reads; None for other estimators."""
    from sklearn import ensemble, tree
    from sklearn.base import is_classifier

    averaged = (
        ensemble.RandomForestClassifier, ensemble.RandomForestRegressor, ensemble.ExtraTreesClassifier,
        ensemble.ExtraTreesRegressor, tree.DecisionTreeClassifier, tree.DecisionTreeRegressor,
    )  # fmt: skip
    boosted = (
        ensemble.GradientBoostingClassifier, ensemble.GradientBoostingRegressor,
        ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor,
    )  # fmt: skip
    if not isinstance(estimator, averaged + boosted):
        return None
    if not is_classifier(estimator):
        if getattr(estimator, "loss", "") in ("poisson", "gamma"):
            return None  # the trees add up to the log of the prediction: explain the prediction instead
        return Target("prediction", _scorer(estimator.predict, uri))
    classes = _classes(estimator)
    if isinstance(estimator, averaged):
        return Target("probability", _scorer(estimator.predict_proba, uri), True, classes)
    kind = "log_odds" if classes is not None and len(classes) == 2 else "raw"
    return Target(kind, _scorer(estimator.decision_function, uri), True, classes)


def _linear_target(estimator: Any, uri: str) -> Target | None:
    """Linear models (``y = X·coef + intercept``); None for others, GLMs with a log link among them."""
    from sklearn import linear_model, svm
    from sklearn.base import is_classifier

    module = type(estimator).__module__
    linear = module.startswith("sklearn.linear_model.") and not module.startswith("sklearn.linear_model._glm")
    if not (linear or isinstance(estimator, svm.LinearSVC | svm.LinearSVR)):
        return None
    if not (hasattr(estimator, "coef_") and hasattr(estimator, "intercept_")):
        return None
    if not is_classifier(estimator):
        return Target("prediction", _scorer(estimator.predict, uri))
    if not hasattr(estimator, "decision_function"):
        return None
    classes = _classes(estimator)
    logistic = isinstance(estimator, linear_model.LogisticRegression | linear_model.LogisticRegressionCV) or (
        isinstance(estimator, linear_model.SGDClassifier) and estimator.loss in ("log_loss", "log")
    )
    kind = "log_odds" if logistic and classes is not None and len(classes) == 2 else "raw"
    return Target(kind, _scorer(estimator.decision_function, uri), True, classes)


def _xgboost_target(estimator: Any, uri: str) -> Target:
    """An XGBoost model (scikit-learn wrapper or ``Booster``): its margin, as SHAP's tree explainer explains it."""
    import xgboost

    booster = estimator.get_booster() if hasattr(estimator, "get_booster") else estimator
    objective = str(json.loads(booster.save_config())["learner"]["objective"]["name"])
    if isinstance(estimator, xgboost.Booster):

        def margin(frame: pd.DataFrame) -> Any:
            return booster.predict(xgboost.DMatrix(frame), output_margin=True)

    else:

        def margin(frame: pd.DataFrame) -> Any:
            return estimator.predict(frame, output_margin=True)

    classifier = objective.startswith(("binary:", "multi:"))
    kind = _kind(objective, XGBOOST_LOG_ODDS, XGBOOST_IDENTITY, objective.startswith("multi:"))
    return Target(kind, _scorer(margin, uri), classifier, _classes(estimator))


def _lightgbm_target(estimator: Any, uri: str) -> Target:
    """A LightGBM model (scikit-learn wrapper or ``Booster``): its raw score."""
    import lightgbm

    if isinstance(estimator, lightgbm.Booster):
        objective = estimator.params.get("objective", "regression")
    else:
        objective = getattr(estimator, "objective_", None) or "regression"
    name = objective if isinstance(objective, str) else ""  # a custom objective: a raw score
    multiclass = name in LIGHTGBM_MULTICLASS
    if isinstance(estimator, lightgbm.Booster):
        classifier = multiclass or name == "binary"
    else:
        classifier = isinstance(estimator, lightgbm.LGBMClassifier)

    def margin(frame: pd.DataFrame) -> Any:
        return estimator.predict(frame, raw_score=True)

    kind = _kind(name, LIGHTGBM_LOG_ODDS, LIGHTGBM_IDENTITY, multiclass)
    return Target(kind, _scorer(margin, uri), classifier, _classes(estimator))


def _kind(objective: str, log_odds: frozenset[str], identity: frozenset[str], multiclass: bool) -> str:
    if multiclass:
        return "raw"
    if objective in log_odds:
        return "log_odds"
    return "prediction" if objective in identity else "raw"


def _classes(estimator: Any) -> tuple[Any, ...] | None:
    classes = getattr(estimator, "classes_", None)
    return None if classes is None else tuple(classes)


def _scorer(method: Callable[[pd.DataFrame], Any], uri: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """``method`` returning a float matrix, its errors (and warnings) as one ``InvalidInput`` line naming the model."""

    def evaluate(frame: pd.DataFrame) -> np.ndarray:
        from covex.ml.packaging import one_line

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                raw = method(frame)
        except CovexError:
            raise
        except Exception as exc:  # the model's own error: the input does not suit it
            message = one_line(str(exc)) or type(exc).__name__
            raise InvalidInput(f"{uri} cannot score the input: {message}") from exc
        return as_matrix(raw, len(frame), uri)

    return evaluate


def as_matrix(raw: Any, rows: int, uri: str) -> np.ndarray:
    """What a model returned as a rows by k float matrix; ``InvalidInput`` when it is not numbers."""
    import numpy as np
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    from covex.batch.model import prediction_frame

    if isinstance(raw, np.ndarray) and raw.dtype.kind in "iuf" and len(raw) == rows:
        return np.asarray(raw, dtype=np.float64).reshape(rows, -1)
    frame = prediction_frame(raw, rows)
    for name in frame.columns:
        dtype = frame[name].dtype
        if not is_numeric_dtype(dtype) or is_bool_dtype(dtype):
            example = frame[name].dropna().iloc[0] if frame[name].notna().any() else None
            raise InvalidInput(
                f"{uri} returns {dtype} values (such as {example!r}) in {name!r}: only numbers can be explained"
            )
    try:
        return np.asarray(frame.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{uri} returns values that are not numbers: {exc}") from None
