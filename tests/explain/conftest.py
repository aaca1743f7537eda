"""Fixtures of the explanation tests: models trained on data with a known structure, registered and loaded.

The target depends strongly on ``a``, weakly on ``b`` and not at all on ``c``; every explainer
should rank them in that order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import covex
from covex.batch.model import ScoringModel
from covex.service import open_service
from covex.settings import Settings

FEATURES = ["a", "b", "c"]


def frame(rows: int, seed: int = 0, extra: int = 0) -> pd.DataFrame:
    """Rows of the features (and ``extra`` more like ``c``: unused), with an ``id`` column no model uses."""
    rng = np.random.default_rng(seed)
    columns = {"id": np.arange(rows), "a": rng.random(rows), "b": rng.random(rows), "c": rng.random(rows)}
    columns.update({f"n{i}": rng.random(rows) for i in range(extra)})
    return pd.DataFrame(columns)


def target(x: pd.DataFrame, seed: int = 0) -> pd.Series:
    """4a + b + a little noise: ``a`` matters most, ``b`` a little, ``c`` not at all."""
    return 4 * x.a + x.b + np.random.default_rng(seed + 100).normal(0, 0.05, len(x))


def labels(x: pd.DataFrame) -> pd.Series:
    return (target(x) > 2.5).astype(int)


def three_classes(x: pd.DataFrame) -> np.ndarray:
    return np.digitize(target(x), [1.8, 3.2])


def _forest_regressor(x: pd.DataFrame) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(x, target(x))


def _forest_classifier(x: pd.DataFrame) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(x, labels(x))


def _forest_multiclass(x: pd.DataFrame) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(x, three_classes(x))


def _xgboost_classifier(x: pd.DataFrame) -> Any:
    import xgboost

    return xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0).fit(x, labels(x))


def _lightgbm_regressor(x: pd.DataFrame) -> Any:
    import lightgbm

    return lightgbm.LGBMRegressor(n_estimators=20, num_leaves=8, verbose=-1, random_state=0).fit(x, target(x))


def _logistic(x: pd.DataFrame) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(x, labels(x))


def _linear(x: pd.DataFrame) -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(x, target(x))


def _neighbours(x: pd.DataFrame) -> Any:
    from sklearn.neighbors import KNeighborsRegressor

    return KNeighborsRegressor(n_neighbors=10).fit(x, target(x))


def _svc_pipeline(x: pd.DataFrame) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    # SVC(probability=True) is deprecated since scikit-learn 1.9; this is its replacement.
    svc = CalibratedClassifierCV(SVC(random_state=0), ensemble=False)
    return make_pipeline(StandardScaler(), svc).fit(x, labels(x))


def _gradient_boosting_multiclass(x: pd.DataFrame) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0).fit(x, three_classes(x))


def _additive_function(x: pd.DataFrame) -> Any:
    def predict(df: pd.DataFrame) -> Any:
        return 4 * df["a"] + df["b"]

    return predict


def _text_function(x: pd.DataFrame) -> Any:
    def predict(df: pd.DataFrame) -> Any:
        return np.where(df["a"] > 0.5, "yes", "no")

    return predict


def _two_outputs(x: pd.DataFrame) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    y = np.column_stack([target(x), x.b])
    return RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0).fit(x, y)


# Each model's trainer, and how many unused columns its data has besides a, b and c.
TRAINERS: dict[str, tuple[Callable[[pd.DataFrame], Any], int]] = {
    "forest-regressor": (_forest_regressor, 0),
    "forest-classifier": (_forest_classifier, 0),
    "forest-multiclass": (_forest_multiclass, 0),
    "xgboost-classifier": (_xgboost_classifier, 0),
    "lightgbm-regressor": (_lightgbm_regressor, 0),
    "logistic": (_logistic, 0),
    "linear": (_linear, 0),
    "neighbours": (_neighbours, 0),
    "svc-pipeline": (_svc_pipeline, 0),
    "boosting-multiclass": (_gradient_boosting_multiclass, 0),
    "additive-function": (_additive_function, 0),
    "additive-function-wide": (_additive_function, 7),
    "text-function": (_text_function, 0),
    "two-outputs": (_two_outputs, 0),
}


@dataclass
class Registry:
    """An embedded registry; ``load(name)`` trains, registers and loads a model of ``TRAINERS`` once."""

    client: covex.Client
    trained: dict[str, Any] = field(default_factory=dict)
    loaded: dict[str, ScoringModel] = field(default_factory=dict)

    def load(self, name: str) -> ScoringModel:
        from covex.ml import log_model

        if name not in self.loaded:
            train, extra = TRAINERS[name]
            x = frame(400, seed=1, extra=extra).drop(columns="id")
            model = train(x)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                log_model(self.client, model, name, input_example=x.head())
            self.trained[name] = model
            self.loaded[name] = ScoringModel.load(self.client, f"models:/{name}/latest")
        return self.loaded[name]


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root: Path = tmp_path_factory.mktemp("explain-registry")
    settings = Settings(uri=str(root / "data"), user="tester", cache_dir=str(root / "cache"))
    open_service(settings, create=True).close()
    with covex.Client(settings=settings) as client:
        yield Registry(client)


@pytest.fixture(scope="session")
def shap() -> Any:
    """The shap module (its import warns about matplotlib deprecations in shap's own colour maps)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shap
    return shap
