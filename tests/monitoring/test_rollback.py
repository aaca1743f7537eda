"""A version that turns DEGRADED can roll its places back, when its model's monitor config says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import covex
from covex.monitoring import check, reference_of


def test_a_degraded_champion_is_rolled_back_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=500), "id": np.arange(500)})
    labels = pd.DataFrame({"id": np.arange(500), "y": (frame["x"] > 0).astype(int)})
    right = frame.assign(prediction=(frame["x"] > 0).astype(int))
    wrong = frame.assign(prediction=(frame["x"] < 0).astype(int))
    with covex.Client(tmp_path / "registry") as c:
        c.create_model("churn")
        for _ in range(2):
            c.create_version("churn", source="s3://b/m", metrics={"accuracy": 0.95})
        c.monitoring.set_reference("churn", 2, reference_of(frame[["x"]]))
        c.set_alias("churn", "champion", 1)
        c.set_alias("churn", "champion", 2)
        c.transition_stage("churn", 2, "Production")
        c.monitoring.set_monitor_config("churn", "rollback_when_degraded: true\n")

        def run(data: pd.DataFrame) -> covex.MonitorResult:
            return check(c, "models:/churn/2", data=data, prediction_columns=["prediction"], labels=labels,
                         key=["id"], target="y")  # fmt: skip

        assert "OK" == run(right).status
        degraded = run(wrong)
        assert "DEGRADED" == degraded.status
        champion, stage = degraded.body["actions"]
        assert "alias 'champion' rolled back to version 1" == champion
        assert stage.startswith("stage 'Production' not rolled back: no earlier version of 'churn' held stage")
        assert 1 == c.get_version("models:/churn@champion").version
        c.set_alias("churn", "champion", 2)
        assert "actions" not in run(wrong).body  # still DEGRADED: no new rollback
        assert 2 == c.get_version("models:/churn@champion").version
