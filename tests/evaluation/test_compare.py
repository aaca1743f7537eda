"""``covex.evaluation.compare``: versions scored on the same rows, intervals, paired tests, reuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from covex.domain.errors import InvalidInput
from covex.evaluation import compare
from tests.evaluation.conftest import Registered, churn_frame


def test_a_clearly_better_baseline_and_an_equal_refit(registered: Registered, holdout: Path) -> None:
    with registered.client() as c:
        result = compare(
            c, ["models:/churn/1", "models:/churn/2", "models:/churn/3"], str(holdout), "churned", resamples=200
        )
    base, worse, equal = (e.body for e in result.evaluations)
    assert (
        base["metrics"]["accuracy"]["low"] < base["metrics"]["accuracy"]["value"] < base["metrics"]["accuracy"]["high"]
    )
    assert base["metrics"]["roc_auc"]["value"] > 0.8 and worse["metrics"]["roc_auc"]["value"] < 0.6
    assert worse["against_baseline"]["roc_auc"]["test"] == "DeLong"
    assert worse["against_baseline"]["roc_auc"]["verdict"] == "worse"
    assert worse["against_baseline"]["accuracy"]["test"] == "McNemar"
    assert worse["against_baseline"]["accuracy"]["p_value"] < 0.001
    assert equal["against_baseline"]["roc_auc"]["verdict"] == "no significant difference"
    assert equal["against_baseline"]["accuracy"]["verdict"] == "no significant difference"
    assert equal["agreement"]["share"] > 0.97
    assert worse["disagreements"] and worse["differences"]["params"] == {}
    assert equal["differences"]["params"] == {"C": {"baseline": "1.0", "this": "0.99"}}
    assert result.rows == 3000 and not result.reused


def test_values_match_scikit_learn(registered: Registered, holdout: Path) -> None:
    from covex.ml import load_model

    frame = churn_frame(3000, seed=7)
    with registered.client() as c:
        result = compare(c, ["models:/churn/1"], str(holdout), "churned", resamples=0)
        raw = load_model("models:/churn/1", client=c).get_raw_model()
    proba = raw.predict_proba(frame[["a", "b", "noise"]])[:, 1]
    metrics = result.evaluations[0].body["metrics"]
    assert metrics["roc_auc"]["value"] == pytest.approx(roc_auc_score(frame["churned"], proba))
    assert metrics["accuracy"]["value"] == pytest.approx(accuracy_score(frame["churned"], proba >= 0.5))


def test_a_stored_evaluation_is_reused_unless_forced(registered: Registered, holdout: Path) -> None:
    uris = ["models:/churn@champion", "models:/churn/3"]
    with registered.client() as c:
        first = compare(c, uris, str(holdout), "churned", resamples=50, seed=3)
        again = compare(c, uris, str(holdout), "churned", resamples=50, seed=3)
        forced = compare(c, uris, str(holdout), "churned", resamples=50, seed=3, force=True)
        other = compare(c, uris, str(holdout), "churned", resamples=50, seed=4)
    assert again.reused and [e.id for e in again.evaluations] == [e.id for e in first.evaluations]
    assert not forced.reused and forced.evaluations[0].id != first.evaluations[0].id
    assert forced.evaluations[1].body["metrics"] == first.evaluations[1].body["metrics"]
    assert not other.reused


def test_regression(registered: Registered, tmp_path: Path) -> None:
    from tests.evaluation.conftest import sales_frame

    path = tmp_path / "sales.csv"
    sales_frame(1000, seed=5).to_csv(path, index=False)
    with registered.client("http") as c:
        result = compare(c, ["models:/sales/1", "models:/sales/2"], str(path), "sales", resamples=200)
    base, worse = (e.body for e in result.evaluations)
    assert base["task"] == "regression" and base["metrics"]["rmse"]["value"] < worse["metrics"]["rmse"]["value"]
    assert worse["against_baseline"]["rmse"]["test"] == "paired bootstrap"
    assert worse["against_baseline"]["rmse"]["verdict"] == "worse"
    assert worse["against_baseline"]["rmse"]["low"] > 0
    assert "correlation" in worse["agreement"]


def test_a_segment_that_reverses_the_overall_result_is_found(registered: Registered, tmp_path: Path) -> None:
    # In the (smaller) south the labels run against a: there the baseline, which follows a, is worse than
    # the challenger, which guesses from noise; in the north and overall the baseline wins clearly.
    frame = churn_frame(4000, seed=11)
    frame["region"] = np.where(np.arange(4000) < 2800, "north", "south")
    frame["churned"] = np.where(frame["region"] == "north", frame["a"] > 0, frame["a"] < 0).astype(int)
    path = tmp_path / "reversal.parquet"
    frame.to_parquet(path)
    with registered.client() as c:
        result = compare(c, ["models:/churn/1", "models:/churn/2"], str(path), "churned", by=["region"], resamples=100)
    body = result.evaluations[1].body
    assert body["against_baseline"]["roc_auc"]["verdict"] == "worse"
    reversed_ = {(r["segment"]["region"], r["metric"]) for r in body["reversals"]}
    assert ("south", "roc_auc") in reversed_
    groups = {g["segment"]["region"]: g for g in body["segments"]["groups"]}
    assert groups["south"]["against_baseline"]["roc_auc"]["verdict"] == "better"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "nope"}, "column 'nope' is not in"),
        ({"by": ["nope"]}, "'--by': column 'nope'"),
        ({"metrics": ["rmse"]}, "'rmse' is not a classification metric"),
        ({"task": "ranking"}, "'--task' must be"),
        ({"uris": ["models:/churn/1", "models:/churn@champion"]}, "are the same version"),
        ({"uris": ["models:/churn/1", "models:/sales/1"], "task": "classification"}, "not classes"),
    ],
)
def test_bad_input_is_named(registered: Registered, holdout: Path, kwargs: dict, message: str) -> None:
    args = {"uris": ["models:/churn/1", "models:/churn/2"], "target": "churned"} | kwargs
    uris, target = args.pop("uris"), args.pop("target")
    with registered.client() as c, pytest.raises(InvalidInput, match=message):
        compare(c, uris, str(holdout), target, resamples=10, **args)


def test_missing_feature_column_is_named(registered: Registered, tmp_path: Path) -> None:
    path = tmp_path / "short.parquet"
    churn_frame(100).drop(columns=["b"]).to_parquet(path)
    with registered.client() as c, pytest.raises(InvalidInput, match="'b'"):
        compare(c, ["models:/churn/1"], str(path), "churned", resamples=10)
    assert np.isfinite(1.0)


def test_versions_whose_signatures_disagree_on_a_column_type_are_refused() -> None:
    from types import SimpleNamespace

    from covex.evaluation.differences import check_signatures

    def model(uri: str, **types: str) -> SimpleNamespace:
        return SimpleNamespace(input_types=types, version=SimpleNamespace(uri=uri))

    check_signatures([model("models:/a/1", x="double"), model("models:/b/1", x="double", y="long")])
    with pytest.raises(InvalidInput, match="models:/b/1 and models:/a/1 take input column 'x' as string and double"):
        check_signatures([model("models:/a/1", x="double"), model("models:/b/1", x="string")])
