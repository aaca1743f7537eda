"""``covex compare`` and ``covex evaluations`` from the command line, embedded and over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.evaluation.conftest import Registered


@pytest.mark.parametrize("backend", ["embedded", "http"])
def test_compare_prints_tables_and_stores_what_versions_show(
    registered: Registered, holdout: Path, backend: str
) -> None:
    args = ["compare", "models:/churn@champion", "models:/churn/2", "--data", str(holdout), "--target", "churned"]
    r = registered.cli(*args, "--by", "region", "--metrics", "auc,accuracy", "--resamples", "100", backend=backend)
    assert r.exit_code == 0, r.stderr
    assert "models:/churn/2 - models:/churn/1" in r.stdout and "DeLong" in r.stdout and "worse" in r.stdout
    assert "region=north" in r.stdout and "same label" in r.stdout
    again = registered.cli(*args, "--by", "region", "--metrics", "auc,accuracy", "--resamples", "100", backend=backend)
    assert "stored evaluations reused" in again.stdout
    shown = registered.cli("versions", "show", "models:/churn/2", backend=backend)
    assert "evaluation" in shown.stdout and "vs models:/churn/1: accuracy" in shown.stdout
    listed = registered.cli("evaluations", "list", "models:/churn/2", "--json", backend=backend)
    found = json.loads(listed.stdout)
    assert found and found[0]["kind"] == "offline" and found[0]["data_digest"].startswith("sha256:")
    one = json.loads(registered.cli("evaluations", "show", str(found[0]["id"]), backend=backend).stdout)
    assert one["body"]["against_baseline"]["roc_auc"]["test"] == "DeLong"


def test_compare_json_and_the_card(registered: Registered, holdout: Path) -> None:
    r = registered.cli(
        "compare", "models:/churn/1", "models:/churn/3", "--data", str(holdout), "--target", "churned",
        "--resamples", "50", "--data-tag", "holdout", "--json",
    )  # fmt: skip
    doc = json.loads(r.stdout)
    assert [v["uri"] for v in doc["versions"]] == ["models:/churn/1", "models:/churn/3"]
    assert doc["versions"][1]["against_baseline"]["accuracy"]["verdict"] == "no significant difference"
    with registered.client() as c:
        card = c.render_card("models:/churn/3")
    assert "## Evaluations" in card and "holdout" in card and "vs models:/churn/1" in card


def test_bad_input_exits_2_with_one_line(registered: Registered, holdout: Path) -> None:
    r = registered.cli("compare", "models:/churn/1", "--data", str(holdout), "--target", "nope")
    assert r.exit_code == 2 and "column 'nope' is not in" in r.stderr and "Traceback" not in r.stderr
    r = registered.cli("compare", "models:/churn/1", "--data", str(holdout), "--target", "churned", "--task", "x")
    assert r.exit_code == 2 and "'--task'" in r.stderr


def test_report_files_and_a_bad_path_refused_before_any_work(
    registered: Registered, holdout: Path, tmp_path: Path
) -> None:
    args = ["compare", "models:/churn/1", "models:/churn/2", "--data", str(holdout), "--target", "churned"]
    with registered.client() as c:
        before = len(c.evaluations("churn", max_results=1000))
    bad = registered.cli(*args, "--resamples", "20", "--seed", "99", "--out", str(tmp_path))
    assert bad.exit_code == 2 and "'--out'" in bad.stderr
    with registered.client() as c:
        assert len(c.evaluations("churn", max_results=1000)) == before  # nothing compared, nothing stored
    r = registered.cli(
        *args, "--resamples", "20", "--seed", "99", "--out", str(tmp_path / "r.html"), "--png", str(tmp_path / "plots")
    )
    assert r.exit_code == 0, r.stderr
    assert (
        "<html" in (tmp_path / "r.html").read_text() and (tmp_path / "plots" / "roc.png").read_bytes()[:4] == b"\x89PNG"
    )
