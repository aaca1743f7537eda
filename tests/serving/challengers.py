"""Challenger models for the shadow and split tests: they take churn's columns and answer like a classifier."""

from __future__ import annotations

import time
from typing import Any

SLOW_SECONDS = 0.5


def slow(frame: Any) -> Any:
    """Sleeps ``SLOW_SECONDS`` per call, then answers 1 where ``tenure`` passes 0.5."""
    time.sleep(SLOW_SECONDS)
    return (frame["tenure"] > 0.5).astype("int64")


def crashing(frame: Any) -> Any:
    """Raises on any ``plan`` but 0 (its input example holds only plan 0, so it warms up and loads)."""
    if (frame["plan"] != 0).any():
        raise RuntimeError("the challenger broke")
    return (frame["tenure"] > 0.5).astype("int64")


def registry_with_challengers(template: Any, target: Any) -> Any:
    """A copy of the serving tests' registry, plus ``churn`` v4 (``slow``), v5 (``crashing``), ``churn-b`` v1 (a
    classifier of another model taking churn's columns) and ``@challenger`` on churn v2."""
    import shutil
    import warnings

    import cloudpickle
    from sklearn.linear_model import LogisticRegression

    import covex
    from covex.ml import log_model
    from tests.serving import challengers
    from tests.serving.conftest import training_data

    shutil.copytree(template, target)
    cloudpickle.register_pickle_by_value(challengers)  # the serving process need not import the tests
    X, y = training_data(1)
    with warnings.catch_warnings(), covex.Client(target) as c:
        warnings.simplefilter("ignore")
        log_model(c, slow, "churn", input_example=X.head(3))
        log_model(c, crashing, "churn", input_example=X.head(3).assign(plan=0))
        log_model(c, LogisticRegression().fit(X, y), "churn-b", input_example=X.head(3))
        c.set_alias("churn", "challenger", 2)
    return target
