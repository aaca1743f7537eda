"""covex.batch.score: a pandas DataFrame scored by the version a URI resolves to, embedded and over HTTP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import covex
import covex.batch
from tests.batch.conftest import FEATURES, Registered, frame


@pytest.mark.parametrize("backend", ["embedded", "http"])
def test_score_adds_predictions_and_the_version(registered: Registered, backend: str, tmp_path: Path) -> None:
    df = frame(250).set_index("id")
    with registered.client(backend, tmp_path / "cache") as c:
        scored = covex.batch.score(df, "models:/churn@champion", client=c)
    expected = registered.models[1].predict(df[FEATURES])
    assert [*df.columns, "prediction", "model_name", "model_version"] == list(scored.columns)
    pd.testing.assert_frame_equal(df, scored[df.columns])
    np.testing.assert_array_equal(expected, scored["prediction"].to_numpy())
    assert ({"churn"}, {1}) == (set(scored.model_name), set(scored.model_version))


def test_score_by_number_uses_that_version(registered: Registered) -> None:
    df = frame(50)
    with registered.client() as c:
        scored = covex.batch.score(df, "models:/churn/2", client=c)
    np.testing.assert_array_equal(registered.models[2].predict(df[FEATURES]), scored["prediction"].to_numpy())
    assert {2} == set(scored.model_version)


def test_a_missing_column_is_named(registered: Registered) -> None:
    with registered.client() as c, pytest.raises(covex.InvalidInput, match="column 'spend' is not in the DataFrame"):
        covex.batch.score(frame(5).drop(columns="spend"), "models:/churn@champion", client=c)


def test_a_clashing_column_is_refused(registered: Registered) -> None:
    df = frame(5).assign(prediction=1)
    with registered.client() as c, pytest.raises(covex.InvalidInput, match="'prediction'"):
        covex.batch.score(df, "models:/churn@champion", client=c)


def test_an_unknown_alias_is_not_found(registered: Registered) -> None:
    with registered.client() as c, pytest.raises(covex.NotFound):
        covex.batch.score(frame(5), "models:/churn@nobody", client=c)
