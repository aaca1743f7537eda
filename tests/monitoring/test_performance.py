"""Labels: checked before they are kept, joined by key, scored by scikit-learn, compared with baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as m

from covex.domain.errors import InvalidInput
from covex.domain.monitoring import MonitorConfig, Performance
from covex.monitoring import performance
from covex.monitoring.sources import Chunk


def write(tmp_path: Path, frame: pd.DataFrame, name: str = "labels.parquet") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False) if name.endswith(".csv") else frame.to_parquet(path)
    return str(path)


@pytest.mark.parametrize(
    ("frame", "key", "target", "says"),
    [
        (pd.DataFrame({"id": [1, 2], "y": [0, 1]}), ["request_id"], "y", "has no column 'request_id'"),
        (pd.DataFrame({"id": [1, 2], "y": [0, 1]}), ["id"], "churned", "has no column 'churned'"),
        (pd.DataFrame({"id": [1, 1, 2], "y": [0, 1, 1]}), ["id"], "y", "key id = 1 appears more than once"),
        (
            pd.DataFrame({"id": [1.0, None], "y": [0, 1]}),
            ["id"],
            "y",
            "key column 'id' is empty in record 2 \\(of 2\\)",
        ),
        (pd.DataFrame({"id": [1, 2], "y": [None, None]}, dtype=float), ["id"], "y", "target 'y' has no values"),
        (pd.DataFrame({"id": [1, 2], "y": pd.to_datetime(["2026-01-01", "2026-01-02"])}), ["id"], "y", "labels are"),
        (pd.DataFrame({"id": [1, 2], "y": [0, 1]}), ["id"], "id", "is also a key column"),
    ],
)
def test_bad_label_files_are_refused_with_the_reason(tmp_path: Path, frame, key, target, says) -> None:
    with pytest.raises(InvalidInput, match=says):
        performance.read_labels(write(tmp_path, frame), key, target)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        performance.read_labels(str(tmp_path / "nope.parquet"), ["id"], "y")


def test_labels_join_to_single_row_requests_and_to_rows_by_their_position() -> None:
    keys = pd.DataFrame({"request_id": ["a", "b", "b", "c"], "row": [0, 0, 1, 0]})
    chunk = Chunk(pd.DataFrame({"x": [1, 2, 3, 4]}), pd.DataFrame({"prediction": [10, 20, 21, 30]}), keys)
    labels = performance.check_labels(pd.DataFrame({"request_id": ["a", "b", "c", "z"], "y": [1, 2, 3, 9]}),
                                      ["request_id"], "y")  # fmt: skip
    ((_, (predictions, outcomes)),) = performance.joined(iter([chunk]), [(labels, ["request_id"])])
    assert ([10, 30], [1, 3]) == (predictions["prediction"].tolist(), outcomes.tolist())  # b scored two rows
    by_row = performance.check_labels(
        pd.DataFrame({"request_id": ["b"], "row": [1], "y": [7]}), ["request_id", "row"], "y"
    )
    ((_, (predictions, outcomes)),) = performance.joined(iter([chunk]), [(by_row, ["request_id", "row"])])
    assert ([21], [7]) == (predictions["prediction"].tolist(), outcomes.tolist())
    # Both kinds at once: each row takes the label of the most specific set that has one.
    both = [(labels, ["request_id"]), (by_row, ["request_id", "row"])]
    ((_, (predictions, outcomes)),) = performance.joined(iter([chunk]), both)
    assert ([21, 10, 30], [7, 1, 3]) == (predictions["prediction"].tolist(), outcomes.tolist())


def test_classification_metrics_are_scikit_learns() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.6 + rng.uniform(0, 0.5, 500), 0, 1)
    task, values, notes = performance.metrics(pd.DataFrame({"prediction": p}), pd.Series(y), MonitorConfig())
    hard = (p >= 0.5).astype(int)
    assert "classification" == task and [] == notes
    assert pytest.approx(m.accuracy_score(y, hard)) == values["accuracy"]
    assert pytest.approx(m.f1_score(y, hard)) == values["f1"]
    assert pytest.approx(m.roc_auc_score(y, p)) == values["roc_auc"]
    assert pytest.approx(m.log_loss(y, np.column_stack([1 - p, p]))) == values["log_loss"]
    task, values, notes = performance.metrics(pd.DataFrame({"prediction": hard}), pd.Series(y), MonitorConfig())
    assert "roc_auc" not in values and "need probabilities" in notes[0]


def test_regression_metrics_are_scikit_learns() -> None:
    y = np.linspace(1, 100, 300)
    p = y * 1.1
    task, values, _ = performance.metrics(pd.DataFrame({"prediction": p}), pd.Series(y), MonitorConfig())
    assert "regression" == task
    assert pytest.approx(np.sqrt(m.mean_squared_error(y, p))) == values["rmse"]
    assert pytest.approx(m.mean_absolute_percentage_error(y, p)) == values["mape"]
    assert pytest.approx(m.r2_score(y, p)) == values["r2"]
    config = MonitorConfig(performance=Performance(task="regression", metrics=("mae",)))
    assert ["mae"] == list(performance.metrics(pd.DataFrame({"p": p}), pd.Series(y), config)[1])


def test_a_drop_beyond_the_tolerance_is_a_degradation() -> None:
    compared = performance.compare(
        {"accuracy": 0.80, "roc_auc": 0.90, "rmse": 11.0},
        {"acc": 0.86, "auc": 0.91},
        [{"rmse": 10.0}, {"rmse": 10.2}],
        0.05,
    )
    assert compared["accuracy"] == {"value": 0.80, "registered": 0.86, "previous": None, "degraded": True}
    assert not compared["roc_auc"]["degraded"]  # 0.90 against 0.91: within 5%
    assert compared["rmse"]["degraded"] and pytest.approx(10.1) == compared["rmse"]["previous"]  # higher is worse


def test_classes_and_keys_match_across_types() -> None:
    y = pd.Series([True, False, True, True])
    floats = pd.DataFrame({"prediction": [1.0, 0.0, 1.0, 0.0]})
    _, values, _ = performance.metrics(floats, y, MonitorConfig())
    assert 0.75 == values["accuracy"] and 1.0 == values["precision"]
    config = MonitorConfig(performance=Performance(positive="1"))
    assert 1.0 == performance.metrics(floats, pd.Series([1, 0, 1, 0]), config)[1]["precision"]
    keys = pd.DataFrame({"id": [1.0, 2.0]})
    chunk = Chunk(pd.DataFrame({"x": [0, 0]}), pd.DataFrame({"prediction": [5, 6]}), pd.DataFrame({"id": [1, 2]}))
    labels = performance.check_labels(keys.assign(y=[1, 2]), ["id"], "y")
    ((_, (predictions, outcomes)),) = performance.joined(iter([chunk]), [(labels, ["id"])])
    assert ([5, 6], [1, 2]) == (predictions["prediction"].tolist(), outcomes.tolist())


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        (pd.DataFrame({"id": pd.Series([], dtype=int), "y": pd.Series([], dtype=int)}), "has no rows"),
        (pd.DataFrame({"id": ["a", " "], "y": [0, 1]}), "key column 'id' is empty in record 2"),
        (pd.DataFrame({"id": ["a", "b"], "y": [[1], [2]]}), "holds a list in record 1"),
    ],
)
def test_labels_that_cannot_be_judged_are_refused(frame: pd.DataFrame, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        performance.check_labels(frame, ["id"], "y")


def test_text_keys_stay_as_written_and_numeric_ones_lose_their_point_zero() -> None:
    text = performance.key_text(pd.DataFrame({"id": ["0007", "7", "1e1"]}))
    numbers = performance.key_text(pd.DataFrame({"id": [7.0, 10.0]}))
    assert (["0007", "7", "1e1"], ["7", "10"]) == (text["id"].tolist(), numbers["id"].tolist())
    labels = pd.DataFrame({"id": ["1", "0001"], "y": [0, 1]})
    assert 2 == len(performance.check_labels(labels, ["id"], "y"))  # two customers, not a duplicate


def test_a_labels_file_with_no_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("id,y\n")
    with pytest.raises(InvalidInput, match="has no rows"):
        performance.read_labels(str(path), ["id"], "y")
