"""Hostile and degenerate input to comparisons, their statistics, tables and reports.

Each test marked ``xfail(strict=True)`` pins a known defect: it starts passing (and so fails the
suite) once the defect is fixed, and the mark should then be removed.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from covex.domain.errors import InvalidInput
from covex.evaluation import compare
from covex.evaluation.paired import _segments
from covex.evaluation.statistics import delong
from tests.evaluation.conftest import Registered, churn_frame


def test_a_missing_value_in_a_segment_column_is_a_segment_of_its_own() -> None:
    """``--by`` on a column holding NaN raised ``ValueError: 'list' argument must have no negative elements``."""
    frame = pd.DataFrame({"f": [1.0, 1.0, np.nan, np.nan]})
    segments, _ = _segments(frame, ["f"])
    assert sorted(len(rows) for _, rows in segments) == [2, 2]


def test_segment_values_holding_the_join_character_keep_their_columns() -> None:
    """Two ``--by`` columns whose values hold ``\\x1f`` raised ``ValueError`` from ``zip(strict=True)``."""
    frame = pd.DataFrame({"x": ["a\x1fb", "a\x1fb", "c", "c"], "y": ["p", "p", "q", "q"]})
    segments, _ = _segments(frame, ["x", "y"])
    assert {tuple(label.items()) for label, _ in segments} == {(("x", "a\x1fb"), ("y", "p")), (("x", "c"), ("y", "q"))}


def test_delong_on_four_rows_is_not_certain() -> None:
    """A constant-score baseline against a perfect ranking on 4 rows gave p = 0.0 (zero variance), which
    passes any evaluation gate; McNemar on the same rows says p = 0.125."""
    with pytest.raises(ValueError, match="variance is zero"):  # the comparison falls back to the bootstrap
        delong(np.array([0, 0, 1, 1]), np.full(4, 0.5), np.array([0.1, 0.2, 0.8, 0.9]))


def test_paired_test_intervals_follow_the_level(registered: Registered, holdout: Path) -> None:
    """McNemar's and DeLong's intervals were always 95%, whatever ``--level`` asked for."""
    uris = ["models:/churn/1", "models:/churn/2"]
    with registered.client() as c:
        narrow = compare(c, uris, str(holdout), "churned", metrics=["accuracy", "auc"], resamples=20, level=0.8)
        wide = compare(c, uris, str(holdout), "churned", metrics=["accuracy", "auc"], resamples=20, level=0.99)
    for metric in ("accuracy", "roc_auc"):
        n = narrow.evaluations[1].body["against_baseline"][metric]
        w = wide.evaluations[1].body["against_baseline"][metric]
        assert w["high"] - w["low"] > n["high"] - n["low"]


def test_an_infinite_target_is_refused(registered: Registered) -> None:
    """A target holding ``inf`` was compared as a regression whose every metric is empty, stored, exit 0."""
    frame = churn_frame(200, seed=3).astype({"churned": float})
    frame.loc[:3, "churned"] = np.inf
    with registered.client() as c, pytest.raises(InvalidInput, match="churned"):
        compare(c, ["models:/churn/1", "models:/churn/2"], "frame", "churned", frame=frame, resamples=0)


def _document(segment: str) -> dict[str, Any]:
    metric = {"value": 0.5, "low": 0.4, "high": 0.6}
    test = {"difference": 0.1, "low": 0.0, "high": 0.2, "test": "paired bootstrap", "p_value": 0.5, "verdict": "-"}
    group = {"segment": {"region": segment}, "rows": 2, "metrics": {"f1": metric}}
    version = {
        "uri": "models:/m/1",
        "metrics": {"f1": metric},
        "segments": {"groups": [group]},
        "size_bytes": 1,
    }
    challenger = version | {
        "uri": "models:/m/2",
        "against_baseline": {"f1": test},
        "segments": {"groups": [group | {"against_baseline": {"f1": test}}]},
    }
    settings = {"target": "y", "task": "classification", "resamples": 10, "level": 0.95, "metrics": ["f1"]}
    return {
        "rows": 2,
        "source": "d",
        "data_digest": "sha256:" + "0" * 64,
        "reused": False,
        "settings": settings | {"by": ["region"]},
        "versions": [version, challenger],
    }


@pytest.mark.parametrize("segment", ["[/]", "north[eu]"])
def test_segment_values_are_printed_as_text(segment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Segment values went through rich markup: ``[/]`` raised ``MarkupError`` after the evaluations were
    stored, and ``north[eu]`` was printed as ``north``."""
    from covex.cli import compare as cli

    console = Console(width=300, record=True)
    monkeypatch.setattr(cli.output, "console", console)
    cli.show(SimpleNamespace(as_dict=lambda: _document(segment)))
    assert f"region={segment}" in console.export_text()


def test_evaluations_list_shows_the_data_tags(registered: Registered) -> None:
    """``covex evaluations list`` printed ``source [holdout]`` through rich markup, which ate the tags."""
    with registered.client() as c:
        c.record_evaluation(
            "models:/sales/1",
            kind="offline",
            key="tags-shown",
            data_digest="sha256:" + "1" * 64,
            source="holdout.parquet",
            rows=2,
            body={},
            data_tags=["holdout"],
        )
    r = registered.cli("evaluations", "list", "models:/sales/1", "--kind", "offline")
    assert r.exit_code == 0 and "[holdout]" in r.stdout


def test_a_report_does_not_write_into_another_writers_partial_file(tmp_path: Path) -> None:
    """Every writer of ``--out r.html`` used the same ``.r.html.partial``: two compares writing one report
    at once truncated each other's bytes, and the slower failed with 'No such file or directory' after
    all its work. A writer's temporary file should be its own (as ``covex.explain.plots.write_file``)."""
    from covex.evaluation import report

    target = tmp_path / "r.html"
    other = tmp_path / ".r.html.partial"
    other.write_bytes(b"another writer's bytes")
    report._write(target, b"mine", "--out")
    assert target.read_bytes() == b"mine"
    assert other.read_bytes() == b"another writer's bytes"


def test_a_target_with_too_many_classes_is_refused_before_scoring(registered: Registered) -> None:
    frame = churn_frame(1200, seed=4).assign(churned=[f"c{i}" for i in range(1200)])
    with registered.client() as c, pytest.raises(InvalidInput, match="1200 classes"):
        compare(c, ["models:/churn/1"], "frame", "churned", frame=frame, resamples=0)
