"""Score a pandas DataFrame in memory with a registered model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from covex.batch.job import check_names
from covex.batch.model import MODEL_COLUMN, VERSION_COLUMN, ScoringModel

if TYPE_CHECKING:
    import pandas as pd

    from covex.client import Client


def score(
    df: pd.DataFrame, uri: str, *, client: Client | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Return ``df`` with the predictions of the version ``uri`` resolves to, and that version.

    The model gets the columns its signature names (or ``columns``, or all of them); the result
    keeps ``df``'s columns and index and adds the prediction column(s) (``prediction``, or the
    model's own names), ``model_name`` and ``model_version``.

    Raises:
        InvalidInput: ``df`` lacks a column the model needs (named), or the model refuses the input.
    """
    from covex.client import Client

    own = client is None
    c = client or Client()
    try:
        model = ScoringModel.load(c, uri)
    finally:
        if own:
            c.close()
    features = model.feature_columns([str(c) for c in df.columns], list(columns) if columns else None, "the DataFrame")
    predictions = model.predict(df[features])
    check_names([str(c) for c in df.columns], list(predictions.columns))
    predictions.index = df.index
    out = df.join(predictions) if len(predictions.columns) else df.copy()
    out[MODEL_COLUMN] = model.version.name
    out[VERSION_COLUMN] = model.version.version
    return out
