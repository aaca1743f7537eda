"""A check on data whose drift is known: injected shifts are flagged, the rest are not, odd data is a finding."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from covex.domain.monitoring import MonitorConfig, Rule, parse_monitor_config
from covex.monitoring.check import Tally, judge, overall_status
from covex.monitoring.reference import build_reference
from covex.monitoring.sources import frame_chunks

ROWS = 20_000


def training(seed: int = 0, rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "tenure": rng.integers(0, 60, rows),
            "city": rng.choice(["Oslo", "Rome", "Lima"], rows, p=[0.5, 0.3, 0.2]),
            "plan": rng.choice(["basic", "plus"], rows),
        }
    )


def run(reference: dict[str, Any], current: pd.DataFrame, config: MonitorConfig | None = None, **kw: Any) -> dict:
    config = config or MonitorConfig()
    tally = Tally(reference, config.features)
    for chunk in frame_chunks(current, kw.get("prediction_columns", ()), chunk_rows=kw.get("chunk_rows", 3000)):
        tally.add(chunk)
    body = judge(tally, config)
    body["status"] = overall_status(tally.rows, config, body, False)
    return body


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return build_reference(training(0))


def test_the_same_distribution_is_ok(reference: dict[str, Any]) -> None:
    body = run(reference, training(1))
    assert ("OK", [], []) == (body["status"], body["drifted"], body["warned"])
    assert all(f["value"] < 0.01 for f in body["features"].values())
    assert [] == body["findings"]


def test_injected_shifts_are_flagged_and_only_they(reference: dict[str, Any]) -> None:
    current = training(2)
    current["age"] = current["age"] + 10  # one standard deviation
    current["city"] = np.random.default_rng(3).choice(["Oslo", "Rome", "Lima"], ROWS, p=[0.1, 0.3, 0.6])
    body = run(reference, current)
    assert ["age", "city"] == body["drifted"]
    assert [] == body["warned"]
    assert pytest.approx(2 / 5) == body["share_drifted"]
    assert "WARNING" == body["status"]  # 40% of the features: under the default 50% share
    assert "DRIFT" == run(reference, current, MonitorConfig(drift_share=0.4))["status"]


def test_every_method_judges_when_chosen(reference: dict[str, Any]) -> None:
    current = training(4)
    current["income"] = current["income"] * 1.5
    for method in ("psi", "js", "ks", "wasserstein"):
        config = parse_monitor_config(f"methods: {{numeric: {method}}}\n")
        body = run(reference, current, config)
        income = body["features"]["income"]
        assert (method, "drift") == (income["method"], income["verdict"]), income["statistics"]
        assert ["income"] == body["drifted"]
    chi2 = parse_monitor_config("methods: {categorical: chi2}\n")
    assert "drift" != run(reference, training(5), chi2)["features"]["city"]["verdict"]  # a p-value: 5% warn by chance
    shifted = training(5)
    shifted["city"] = np.random.default_rng(5).choice(["Oslo", "Rome", "Lima"], ROWS, p=[0.45, 0.3, 0.25])
    city = run(reference, shifted, chi2)["features"]["city"]
    assert ("chi2", "drift") == (city["method"], city["verdict"])
    assert city["statistics"]["psi"] < 0.1  # a shift PSI calls stable: the p-value fires on it at this size


def test_a_small_shift_moves_ks_p_value_but_not_the_statistic_judged(reference: dict[str, Any]) -> None:
    current = training(6, rows=200_000)
    current["age"] = current["age"] + 0.3  # 3% of a standard deviation
    age = run(reference, current, parse_monitor_config("methods: {numeric: ks}\n"))["features"]["age"]
    assert age["statistics"]["ks_p_value"] < 0.01
    assert "ok" == age["verdict"]


def test_odd_data_is_reported_as_findings_never_a_crash(reference: dict[str, Any]) -> None:
    current = training(7, rows=2000).drop(columns=["tenure"])
    current["age"] = current["age"].astype(object)
    current.loc[:99, "age"] = "unknown"  # text where the reference had numbers
    current["income"] = np.nan  # a window of nulls
    current["plan"] = np.where(np.arange(2000) % 2, "premium", "basic")  # a category never seen
    current["extra"] = 1
    body = run(reference, current)
    kinds = {(f["kind"], f["column"]) for f in body["findings"]}
    assert {
        ("type_changed", "age"),
        ("no_values", "income"),
        ("missing_column", "tenure"),
        ("new_categories", "plan"),
        ("new_column", "extra"),
    } <= kinds
    assert "no_data" == body["features"]["income"]["verdict"]
    assert "missing" == body["features"]["tenure"]["verdict"]
    assert "drift" == body["features"]["plan"]["verdict"]
    assert 1 == body["features"]["plan"]["new_categories"]
    assert 1.0 == body["features"]["income"]["missing_share"]


def test_too_few_rows_is_not_enough_data(reference: dict[str, Any]) -> None:
    current = training(8, rows=50)
    current["age"] = current["age"] + 100
    few = run(reference, current)
    assert ("NOT_ENOUGH_DATA", [], [], False) == (few["status"], few["drifted"], few["warned"], few["dataset_drift"])
    assert {"not_judged"} == {f["verdict"] for f in few["features"].values()}
    assert few["features"]["age"]["statistics"]["psi"] > 1  # what little was seen is still shown
    assert "DRIFT" == run(reference, current, MonitorConfig(min_rows=10, drift_share=0.2))["status"]


def test_an_empty_window_is_not_enough_data(reference: dict[str, Any]) -> None:
    body = run(reference, training(9).iloc[:0])
    assert "NOT_ENOUGH_DATA" == body["status"]


def test_chunks_add_up_to_the_whole(reference: dict[str, Any]) -> None:
    current = training(10)
    current["age"] = current["age"] * 1.2
    whole = run(reference, current, chunk_rows=ROWS)
    pieces = run(reference, current, chunk_rows=777)
    assert whole["features"] == pieces["features"]


def test_prediction_drift_drifts_the_version(reference: dict[str, Any]) -> None:
    frame = training(11)
    with_predictions = build_reference(frame, pd.Series((frame["age"] > 40).astype(int)))
    current = training(12)
    current["prediction"] = (current["age"] > 30).astype(int)  # a model now says yes far more often
    body = run(with_predictions, current, prediction_columns=["prediction"])
    assert body["prediction_drift"] and "DRIFT" == body["status"]
    assert [] == body["drifted"]


def test_a_column_rule_overrides_the_method_and_thresholds(reference: dict[str, Any]) -> None:
    current = training(13)
    current["age"] = current["age"] + 2
    config = MonitorConfig(columns={"age": Rule(method="ks", warn=0.01, drift=0.05)})
    assert ("ks", "drift") == tuple(
        run(reference, current, config)["features"]["age"][k] for k in ("method", "verdict")
    )
    assert "ok" == run(reference, current)["features"]["age"]["verdict"]


def test_features_limit_what_is_judged(reference: dict[str, Any]) -> None:
    config = MonitorConfig(features=("age", "ghost"))
    body = run(reference, training(14), config)
    assert ["age"] == list(body["features"])
    assert ("not_in_reference", "ghost") in {(f["kind"], f["column"]) for f in body["findings"]}


def test_a_reference_of_many_wide_columns_keeps_fewer_categories_to_fit() -> None:
    import json

    rng = np.random.default_rng(0)
    wide = pd.DataFrame({f"c{i}": [f"v{j}-{i}" for j in rng.integers(0, 2000, 3000)] for i in range(150)})
    reference = build_reference(wide)
    column = reference["columns"]["c0"]
    assert len(json.dumps(reference)) <= 768 * 1024
    assert len(column["counts"]) < 500 and column["other"] > 0
    assert 3000 == sum(column["counts"].values()) + column["other"]
    body = run(reference, wide)  # the same rows: the rare categories fall in "other" on both sides
    assert [] == body["drifted"]


def test_date_columns_held_as_objects_are_not_features_and_twin_names_are_refused() -> None:
    import datetime

    frame = pd.DataFrame({"x": [1.0, 2.0], "day": [datetime.date(2026, 1, 1), datetime.date(2026, 1, 2)]})
    assert (["x"], ["day"]) == (list(build_reference(frame)["columns"]), build_reference(frame)["ignored"])
    from covex.domain.errors import InvalidInput

    with pytest.raises(InvalidInput, match="two columns named 'x'"):
        build_reference(pd.DataFrame([[1.0, 2.0]], columns=["x", "x"]))
