"""Explanations stored on versions: ``explain_version``, ``covex explain``, the card and versions show."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from covex.explain.stored import background_from_reference, explain_version
from covex.monitoring.reference import build_reference
from tests.evaluation.conftest import Registered, churn_frame


def test_a_stored_explanation_ranks_the_informative_feature_and_is_reused(registered: Registered) -> None:
    frame = churn_frame(400, seed=3)
    with registered.client("http") as c:
        done = explain_version(c, "models:/churn/1", frame, source="sample", rows=200)
        again = explain_version(c, "models:/churn/1", frame, source="sample", rows=200)
        card = c.render_card("models:/churn/1")
    body = done.evaluation.body
    assert done.evaluation.kind == "explanation" and body["explainer"] == "linear"
    assert [i["feature"] for i in body["importances"]][:2] == ["a", "b"]
    assert abs(body["additivity_max_error"]) < 1e-3 and done.evaluation.rows == 200
    assert again.reused and again.evaluation.id == done.evaluation.id and again.explanation is None
    assert "## Explanation" in card and "| a |" in card


def test_the_agnostic_explainer_draws_its_background_from_the_reference(registered: Registered) -> None:
    with registered.client() as c:
        done = explain_version(c, "models:/churn@challenger", churn_frame(300, seed=4), rows=30, force=True)
    body = done.evaluation.body
    assert body["background"] == "registered" and body["explainer"] in ("exact", "permutation")
    assert body["importances"][0]["feature"] == "noise"  # the challenger sees only noise


def test_background_from_reference_stays_within_the_reference() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(5, 1, 1000), "kind": rng.choice(["a", "b"], 1000, p=[0.9, 0.1])})
    reference = build_reference(frame)
    drawn = background_from_reference(reference, ["x", "kind"], 500, seed=1)
    assert drawn["x"].between(frame["x"].min(), frame["x"].max()).all()
    assert abs(drawn["x"].mean() - 5) < 0.3 and 0.8 < (drawn["kind"] == "a").mean() < 0.97
    assert background_from_reference(reference, ["x", "missing"], 10, seed=1) is None


def test_covex_explain_prints_stores_and_draws(registered: Registered, tmp_path: Path) -> None:
    path = tmp_path / "sample.parquet"
    churn_frame(300, seed=5).to_parquet(path)
    r = registered.cli(
        "explain", "models:/churn/3", "--data", str(path), "--rows", "100", "--row", "0", "--row", "5",
        "--out", str(tmp_path / "x.html"), "--png", str(tmp_path / "plots"),
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "linear explainer" in r.stdout and "Global importance" in r.stdout
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {
        "importance.png", "beeswarm.png", "waterfall-0.png", "waterfall-5.png"
    }  # fmt: skip
    assert "<html" in (tmp_path / "x.html").read_text()
    shown = registered.cli("versions", "show", "models:/churn/3")
    assert "explanation" in shown.stdout and "top features" in shown.stdout
    listed = json.loads(
        registered.cli("evaluations", "list", "models:/churn/3", "--kind", "explanation", "--json").stdout
    )
    assert listed and listed[0]["body"]["importances"][0]["feature"] == "a"
    bad = registered.cli("explain", "models:/churn/3", "--data", str(path), "--rows", "0")
    assert bad.exit_code == 2 and "'--rows'" in bad.stderr
    missing = tmp_path / "short.parquet"
    churn_frame(50).drop(columns=["b"]).to_parquet(missing)
    bad = registered.cli("explain", "models:/churn/3", "--data", str(missing))
    assert bad.exit_code == 2 and "'b'" in bad.stderr


def test_a_background_from_skewed_data_keeps_its_mean() -> None:
    from covex.explain.stored import background_from_profile
    from covex.ml.profile import profile_frame

    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"visits": rng.poisson(3, 5000), "spend": rng.lognormal(3, 1, 5000)})
    for drawn in (
        background_from_reference(build_reference(frame), ["visits", "spend"], 2000, seed=0),
        background_from_profile(profile_frame(frame), ["visits", "spend"], 2000, seed=0),
    ):
        for column in ("visits", "spend"):
            assert abs(drawn[column].mean() - frame[column].mean()) < 0.12 * frame[column].std()
