"""Explanation: importance ranking, one row's contributions, and a record small enough to keep on a version."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from covex.domain.errors import InvalidInput
from covex.explain import Explanation


def explanation(contributions: Any, features: list[str] | None = None, classes: Any = None) -> Explanation:
    values = np.asarray(contributions, dtype=float)
    names = features or [f"f{i}" for i in range(values.shape[1])]
    base = np.full(len(values), 0.5)
    return Explanation(
        model="models:/m/1",
        features=names,
        contributions=values,
        base_values=base,
        outputs=values.sum(axis=1) + base,
        explainer="tree",
        output="prediction",
        data=pd.DataFrame(np.zeros(values.shape), columns=names),
        classes=classes,
    )


def test_global_importance_is_the_mean_absolute_contribution_largest_first() -> None:
    e = explanation([[1.0, -3.0, 0.0], [-1.0, 1.0, 0.5]])
    assert [("f1", 2.0), ("f0", 1.0), ("f2", 0.25)] == e.global_importance()


def test_equal_importances_keep_the_signature_order() -> None:
    assert ["f0", "f1", "f2"] == [n for n, _ in explanation([[1.0, -1.0, 1.0]]).global_importance()]


def test_a_row_lists_its_contributions_largest_in_size_first() -> None:
    e = explanation([[1.0, -3.0, 0.5], [0.0, 0.0, 0.0]])
    assert [("f1", -3.0), ("f0", 1.0), ("f2", 0.5)] == e.row(0)
    with pytest.raises(InvalidInput, match="row 2 is not among the 2 explained rows"):
        e.row(2)


def test_the_target_says_which_output_was_explained() -> None:
    assert "prediction" == explanation([[1.0]]).target
    assert "class yes" == explanation([[1.0], [2.0]], classes=np.array(["yes", "yes"], dtype=object)).target
    assert "predicted class" == explanation([[1.0], [2.0]], classes=np.array([0, 2], dtype=object)).target


def test_the_record_is_json_with_the_top_features_and_how_many_were_left_off() -> None:
    e = explanation([[1.0, -3.0, 0.0], [-1.0, 1.0, 0.5]])
    record = json.loads(json.dumps(e.to_record(top=2)))
    assert {
        "model": "models:/m/1",
        "explainer": "tree",
        "output": "prediction",
        "target": "prediction",
        "rows": 2,
        "background_rows": 0,
        "features": 3,
        "base_value": 0.5,
        "mean_output": 0.5 + (1.0 - 3.0 + 0.0 - 1.0 + 1.0 + 0.5) / 2,
        "importances": [{"feature": "f1", "mean_abs": 2.0}, {"feature": "f0", "mean_abs": 1.0}],
        "importances_left_off": 1,
        "additivity_max_error": 0.0,
    } == record


def test_the_record_stays_small_for_thousands_of_long_named_features() -> None:
    names = [f"{'x' * 300}{i}" for i in range(5000)]
    e = explanation(np.random.default_rng(0).normal(size=(3, 5000)), names)
    record = e.to_record(top=100)
    assert len(json.dumps(record).encode()) < 64 * 1024
    assert (100, 4900) == (len(record["importances"]), record["importances_left_off"])
    assert all(len(i["feature"]) == 200 and i["feature"].endswith("…") for i in record["importances"])


@pytest.mark.parametrize("top", [0, 101, 2.0, True])
def test_the_record_takes_1_to_100_features(top: Any) -> None:
    with pytest.raises(InvalidInput, match="'top' must be a whole number from 1 to 100"):
        explanation([[1.0]]).to_record(top=top)
