"""``covex batch --explain``: contribution columns that add up to each row's explained output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tests.batch.conftest import FEATURES, Registered, frame


def test_contribution_columns_add_up(registered: Registered, data: Callable[..., Path], tmp_path: Path) -> None:
    df = frame(300)
    out = tmp_path / "explained.parquet"
    r = registered.cli(
        "batch", "models:/churn/2", "-i", str(data(df=df)), "-o", str(out), "--id-column", "id", "--explain",
        "--chunk-rows", "120",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    got = pd.read_parquet(out)
    shap_columns = [f"shap_{f}" for f in FEATURES]
    assert list(got.columns[: 2 + len(FEATURES)]) == ["id", "prediction", *shap_columns]
    assert got["id"].tolist() == df["id"].tolist()
    # The forest's explained output is the probability of churn: contributions plus base add up to it.
    proba = registered.models[2].predict_proba(df[FEATURES])[:, 1]
    total = got[shap_columns].sum(axis=1) + got["shap_base_value"]
    assert np.allclose(total, proba, atol=1e-6)


def test_explain_is_refused_on_spark(registered: Registered, data: Callable[..., Path], tmp_path: Path) -> None:
    r = registered.cli(
        "batch", "models:/churn/2", "-i", str(data()), "-o", str(tmp_path / "o"), "--engine", "spark", "--explain"
    )
    assert r.exit_code == 2 and "'--explain'" in r.stderr


def test_without_a_registered_background_every_chunk_shares_the_first_ones(
    registered: Registered, data: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "linear.parquet"
    r = registered.cli(
        "batch", "models:/churn/1", "-i", str(data(df=frame(301))), "-o", str(out), "--explain", "--chunk-rows", "100"
    )
    assert r.exit_code == 0, r.stderr
    got = pd.read_parquet(out)
    assert got["shap_base_value"].nunique() == 1  # the last chunk holds one row: no background of its own
