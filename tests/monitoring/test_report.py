"""The report: one self-contained HTML page that a browser draws offline, and the same plots as PNG files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import covex
from covex.cli.main import app
from covex.monitoring import check, reference_of
from covex.monitoring.report import history, write_html, write_png
from tests.server.test_docs import CHROMIUM, rendered
from tests.support import CliResult, make_tree

HOSTILE = "../spend <b>"  # a column name is data: it becomes neither a path nor markup


@pytest.fixture
def monitored(tmp_path: Path) -> covex.Client:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"age": rng.normal(40, 10, 3000), HOSTILE: rng.random(3000), "city": rng.choice(["a", "b"], 3000)}
    )
    c = covex.Client(tmp_path / "registry")
    c.create_model("churn")
    c.create_version("churn", make_tree(tmp_path / "files", {"model.pkl": b"weights"}))
    c.monitoring.set_reference("churn", 1, reference_of(frame))
    check(c, "models:/churn/1", data=frame)
    drifted = frame.assign(age=frame["age"] + 15)
    check(c, "models:/churn/1", data=drifted)
    return c


def test_the_html_report_names_nothing_outside_itself(monitored: covex.Client, tmp_path: Path) -> None:
    out = write_html(history(monitored, "models:/churn/1"), tmp_path / "report.html")
    page = out.read_text()
    assert [] == re.findall(r"""(?:src|href)\s*=\s*["'](?!#)""", page)  # no script, style sheet, image or font fetched
    assert [] == re.findall(r"url\((?!#)", page)
    assert "../spend &lt;b&gt;" in page and "<b>" not in page
    assert ["report.html"] == [p.name for p in tmp_path.iterdir() if p.name.endswith(("html", "partial"))]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/test installs it where apt-get works)")
def test_a_browser_draws_every_plot_offline(monitored: covex.Client, tmp_path: Path) -> None:
    out = write_html(history(monitored, "models:/churn/1"), tmp_path / "report.html")
    dom = rendered(out.as_uri(), tmp_path / "profile")
    figures = dict(re.findall(r'<figure id="([^"]+)"><svg[^>]*>(.*?)</svg>', dom, flags=re.S))
    assert {"drift-timeline", "feature-age", f"feature-{HOSTILE}".replace("<", "&lt;").replace(">", "&gt;"),
            "feature-city"} == set(figures)  # fmt: skip
    assert all(figure.count("<path") >= 4 for figure in figures.values())  # bars and lines were drawn
    assert '<span class="status" id="status">WARNING</span>' in dom
    assert "age: psi" in figures["feature-age"]  # the title names the statistic


def test_png_files_have_safe_names_one_per_plot(monitored: covex.Client, tmp_path: Path) -> None:
    files = write_png(history(monitored, "models:/churn/1"), tmp_path / "png")
    assert ["drift-timeline.png", "feature-_spend_b.png", "feature-age.png", "feature-city.png"] == sorted(
        f.name for f in files
    )
    assert all(f.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and f.parent == tmp_path / "png" for f in files)


def run_cli(*args: str) -> CliResult:
    r = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return CliResult(r.exit_code, r.stdout, r.stderr)


def test_the_cli_writes_both_and_refuses_a_version_never_checked(monitored: covex.Client, tmp_path: Path) -> None:
    registry = str(tmp_path / "registry")
    r = run_cli("--uri", registry, "monitor", "report", "models:/churn/1", "--out", str(tmp_path / "r.html"),
                "--png", str(tmp_path / "p"))  # fmt: skip
    assert 0 == r.exit_code, r.stderr
    assert (tmp_path / "r.html").is_file() and 4 == len(list((tmp_path / "p").glob("*.png")))
    monitored.create_version("churn", source="s3://b/m")
    r = run_cli("--uri", registry, "monitor", "report", "models:/churn/2", "--out", str(tmp_path / "two.html"))
    assert 3 == r.exit_code and "models:/churn/2 has no monitoring result yet" in r.stderr
    assert not (tmp_path / "two.html").exists()


def test_dollars_in_names_are_drawn_as_written(tmp_path: Path) -> None:
    from covex.monitoring.report import distribution_figure

    plot = {"categories": ["$5 - $10", r"$\nosuch$"], "reference": [0.5, 0.5], "current": [0.9, 0.1]}
    feature = {"method": "psi", "value": 0.3, "verdict": "drift", "plot": plot}
    distribution_figure("$price$", feature).savefig(tmp_path / "p.png")  # a bad formula would raise here
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_time_columns_are_not_features(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(300.0), "at": pd.date_range("2026-01-01", periods=300, freq="h")})
    reference = reference_of(frame)
    assert (["x"], ["at"]) == (list(reference["columns"]), reference["ignored"])
    with covex.Client(tmp_path / "registry") as c:
        c.create_model("m")
        c.create_version("m", source="s3://b/m")
        c.monitoring.set_reference("m", 1, reference)
        later = frame.assign(at=frame["at"] + pd.Timedelta(days=30))
        result = check(c, "models:/m/1", data=later, record=False)
    assert ("OK", []) == (result.status, result.body["findings"])
