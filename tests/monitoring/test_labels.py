"""Labels stored beside the inference log: each file joins on its own key, and too few are never a baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import covex
from covex.monitoring import add_labels, check, reference_of
from tests.monitoring.test_sources import write_log
from tests.support import make_tree


def test_labels_of_single_and_multi_row_requests_join_together(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=400)})
    log = tmp_path / "log"
    singles = [frame.iloc[[i]].reset_index(drop=True) for i in range(150)]
    pairs = [frame.iloc[150 + 2 * i : 152 + 2 * i].reset_index(drop=True) for i in range(10)]
    write_log(log, "churn", 1, singles + pairs)  # predictions: each request's row positions (0, or 0 and 1)
    with covex.Client(tmp_path / "registry") as c:
        c.create_model("churn")
        c.create_version("churn", make_tree(tmp_path / "files", {"model.pkl": b"w"}), metrics={"accuracy": 0.9})
        c.monitoring.set_reference("churn", 1, reference_of(frame, lambda f: pd.Series(np.zeros(len(f), int))))
        c.start_deployment("models:/churn/1", "serving", "http://127.0.0.1:1", log_location=str(log))

        few = pd.DataFrame({"request_id": [f"r{i}" for i in range(20)], "y": [0] * 20})
        assert 20 == add_labels(c, "models:/churn/1", few, target="y")
        first = check(c, "models:/churn/1", since="1h")
        assert (20, {"accuracy": 1.0}) == (first.body["performance"]["labelled"], {
            k: v for k, v in first.body["performance"]["preliminary"].items() if k == "accuracy"
        })  # fmt: skip
        assert "metrics" not in first.body["performance"]

        rest = pd.DataFrame({"request_id": [f"r{i}" for i in range(20, 150)], "y": [1] * 130})
        add_labels(c, "models:/churn/1", rest, target="y")
        by_row = pd.DataFrame(
            {"request_id": [f"r{150 + i // 2}" for i in range(20)], "row": [i % 2 for i in range(20)], "y": [1] * 20}
        )
        add_labels(c, "models:/churn/1", by_row, key=["request_id", "row"], target="y")
        second = check(c, "models:/churn/1", since="1h")
    performance = second.body["performance"]
    assert 170 == performance["labelled"]
    accuracy = performance["metrics"]["accuracy"]
    # Right on the first 20 (label 0, predicted 0) and on each pair's second row (label 1, predicted 1).
    assert (20 + 10) / 170 == accuracy["value"]
    assert (None, 0.9, True) == (accuracy["previous"], accuracy["registered"], accuracy["degraded"])
    assert "DEGRADED" == second.status


def test_id_columns_are_neither_features_nor_new_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(200.0), "customer_id": np.arange(200)})
    with covex.Client(tmp_path / "registry") as c:
        c.create_model("churn")
        c.create_version("churn", source="s3://b/m")
        c.monitoring.set_reference("churn", 1, reference_of(frame[["x"]]))
        plain = check(c, "models:/churn/1", data=frame, record=False)
        with_ids = check(c, "models:/churn/1", data=frame, id_columns=["customer_id"], record=False)
    assert ["new_column"] == [f["kind"] for f in plain.body["findings"]]
    assert [] == with_ids.body["findings"]
