"""Reading the evaluation data and scoring one version on it: class labels, probabilities, time taken."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from covex.domain.entities import ModelVersion
from covex.domain.errors import InvalidInput

if TYPE_CHECKING:
    from covex.batch.model import ScoringModel
    from covex.client import Client


def read_frame(location: str) -> Any:
    """The rows of a Parquet or CSV file, or of a folder of them, as one DataFrame (refused when empty)."""
    from covex.monitoring.monitor import read_frame as read_whole

    frame = read_whole(location)
    if frame.empty:
        raise InvalidInput(f"'--data': {location!r} has no rows")
    return frame


@dataclass
class Scored:
    """One version's answers on the evaluation rows."""

    version: ModelVersion
    model: ScoringModel | None  # None: answers read from the inference log
    hard: Any  # class labels as text (classification) or numbers (regression), one per row
    scores: Any  # probabilities: of the positive class (two classes) or one column per class; None: labels only
    seconds: float

    @property
    def latency_ms_per_row(self) -> float:
        return self.seconds * 1000 / max(len(self.hard), 1)


def load(client: Client, uri: str) -> ScoringModel:
    from covex.batch.model import ScoringModel

    return ScoringModel.load(client, uri)


def score(model: ScoringModel, frame: Any, task: str, classes: list[str], positive: str) -> Scored:
    """Score ``frame`` with ``model``; for a classifier, ask for probabilities where the model has them."""
    import numpy as np

    from covex.batch.model import prediction_frame
    from covex.monitoring.performance import class_text

    uri = model.version.uri
    features = frame[model.feature_columns(list(frame.columns), None, "the evaluation data")]
    raw = _raw_model(model) if task == "classification" else None
    started = time.perf_counter()
    if raw is not None and hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
        proba = np.asarray(_call(uri, raw.predict_proba, features), dtype=float)
        seconds = time.perf_counter() - started
        own = [str(c) for c in class_text(list(raw.classes_))]
        hard = np.asarray(own, dtype=object)[proba.argmax(axis=1)]
        if len(classes) <= 2 and len(own) <= 2:
            scores = proba[:, own.index(positive)] if positive in own else np.zeros(len(frame))
        else:
            scores = np.zeros((len(frame), len(classes)))
            for i, c in enumerate(own):
                if c in classes:
                    scores[:, classes.index(c)] = proba[:, i]
        return Scored(model.version, model, hard, scores, seconds)
    predictions = prediction_frame(_call(uri, model.pyfunc.predict, features), len(frame))
    seconds = time.perf_counter() - started
    hard, scores = answers(uri, predictions, task, classes, positive)
    return Scored(model.version, model, hard, scores, seconds)


def answers(uri: str, predictions: Any, task: str, classes: list[str], positive: str) -> tuple[Any, Any]:
    """(labels or values, probabilities or None) from what a version answered (a frame of prediction columns)."""
    import numpy as np
    import pandas as pd

    from covex.monitoring.performance import class_text, scores_of

    if task == "regression":
        try:
            return predictions.iloc[:, 0].to_numpy(dtype=float), None
        except (TypeError, ValueError):
            raise InvalidInput(
                f"{uri} answers text, not numbers: it is not a regressor (use --task classification)"
            ) from None
    scores = scores_of(predictions, classes)
    if scores is not None:
        negative = next((c for c in classes if c != positive), "")
        hard = (
            np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
            if scores.ndim == 2
            else np.where(scores >= 0.5, positive, negative).astype(object)
        )
        return hard, scores
    column = predictions.iloc[:, 0]
    if pd.api.types.is_float_dtype(column) and not (column.dropna() % 1 == 0).all():
        raise InvalidInput(
            f"{uri} answers numbers that are not classes (such as {column.iloc[0]!r}): it is not a classifier "
            "of this target (use --task regression for a regressor)"
        )
    return np.asarray(class_text(column), dtype=object), None


def _raw_model(model: ScoringModel) -> Any:
    """The estimator inside a scikit-learn (or XGBoost, LightGBM) version; None for other flavors."""
    try:
        return model.pyfunc.get_raw_model()
    except Exception:  # noqa: BLE001 - a flavor without one: score through predict
        return None


def _call(uri: str, fn: Any, features: Any) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(features)
    except Exception as exc:  # the model's own error: the data does not fit it
        from covex.ml.packaging import one_line

        why = one_line(str(exc)) or type(exc).__name__
        raise InvalidInput(f"{uri} cannot score the evaluation data: {why}") from exc
