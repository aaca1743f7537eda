"""``covex.evaluation.report``: the page and the PNG files of a comparison."""

from __future__ import annotations

import base64
import copy
import io
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from covex.domain.errors import InvalidInput
from covex.evaluation import compare
from covex.evaluation.compare import Comparison
from covex.evaluation.report import (
    MAX_CURVE_POINTS,
    MAX_SCATTER_POINTS,
    Curves,
    check_out,
    check_png,
    curves_from,
    figures,
    render_html,
    write_html,
    write_pngs,
)
from covex.evaluation.scoring import load, score
from covex.monitoring.performance import class_text
from tests.evaluation.conftest import Registered, churn_frame, sales_frame

PNG = b"\x89PNG\r\n\x1a\n"
CHURN, SALES = ["models:/churn/1", "models:/churn/2"], ["models:/sales/1", "models:/sales/2"]
HOSTILE = "<script>alert(1)</script>"
TARGET = "churned & <b>left</b>"


def _curves(registered: Registered, uris: list[str], frame: pd.DataFrame, target: str, task: str) -> Curves:
    """What the caller of ``compare`` holds after a fresh run: each version's answers on the rows."""
    with registered.client() as c:
        scored = [score(load(c, u), frame, task, ["0", "1"], "1") for u in uris]
    y = class_text(frame[target]) if task == "classification" else frame[target].to_numpy(dtype=float)
    return curves_from(scored, y, task, 1 if task == "classification" else None)


@pytest.fixture(scope="module")
def churn(registered: Registered, tmp_path_factory: pytest.TempPathFactory) -> tuple[Comparison, Curves, str]:
    """Two classifiers compared by segment, where the segments' values and the target's name are markup."""
    frame = churn_frame(1500, seed=7).rename(columns={"churned": TARGET})
    frame["region"] = frame["region"].map({"north": HOSTILE, "south": "south & $x$"})
    path = tmp_path_factory.mktemp("report") / "holdout.parquet"
    frame.to_parquet(path, index=False)
    with registered.client() as c:
        result = compare(c, CHURN, str(path), TARGET, by=["region"], resamples=20)
    return result, _curves(registered, CHURN, frame, TARGET, "classification"), str(path)


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)]


def _plots(page: str) -> set[str]:
    return set(re.findall(r"<figure id='plot-([a-z_]+)'>", page))


def test_the_page_of_a_classifier_comparison(churn: tuple[Comparison, Curves, str], tmp_path: Path) -> None:
    result, curves, _ = churn
    page = write_html(result, curves, tmp_path / "report.html").read_text(encoding="utf-8")
    for section in ("summary", "metrics", "against-baseline", "segments", "agreement", "disagreements"):
        assert f"id='{section}'" in page or f'id="{section}"' in page, section
    assert "id='differences'" in page and 'id="plots"' in page
    assert _plots(page) == {"metrics", "differences", "roc", "pr", "segments"}
    images = _images(page)
    assert len(images) == 5 and all(i.startswith(PNG) for i in images)
    assert "McNemar" in page and "DeLong" in page and "models:/churn/2" in page and result.data_digest in page
    assert "0.95" not in page.split("<h2 id='metrics'>")[1][:30]  # the level is shown as 95%
    assert "--force" not in page
    assert not re.search(r"<(script|link)\b|src=['\"]?https?:|url\(", page)  # nothing fetched from outside
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left


def test_the_png_folder_of_a_classifier_comparison(churn: tuple[Comparison, Curves, str], tmp_path: Path) -> None:
    result, curves, _ = churn
    folder = tmp_path / "new" / "plots"
    written = write_pngs(result, curves, folder)
    assert [p.name for p in written] == ["metrics.png", "differences.png", "roc.png", "pr.png", "segments.png"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in written)
    assert all(p.read_bytes().startswith(PNG) for p in written)


def test_a_regressor_gets_residual_plots_not_curves(registered: Registered, tmp_path: Path) -> None:
    frame = sales_frame(800, seed=5)
    frame.to_parquet(tmp_path / "sales.parquet")
    with registered.client() as c:
        result = compare(c, SALES, str(tmp_path / "sales.parquet"), "sales", resamples=20)
    curves = _curves(registered, SALES, frame, "sales", "regression")
    written = write_pngs(result, curves, tmp_path / "png")
    assert [p.name for p in written] == ["metrics.png", "differences.png", "residuals.png", "predicted_vs_actual.png"]
    assert all(p.read_bytes().startswith(PNG) for p in written)


def test_a_stored_comparison_draws_what_its_numbers_allow(
    registered: Registered, churn: tuple[Comparison, Curves, str], tmp_path: Path
) -> None:
    with registered.client() as c:
        again = compare(c, CHURN, churn[2], TARGET, by=["region"], resamples=20)
    assert again.reused
    page = write_html(again, None, tmp_path / "stored.html").read_text(encoding="utf-8")
    assert _plots(page) == {"metrics", "differences", "segments"}
    assert "ROC and precision-recall curves need" in page and "--force" in page
    assert "Found stored" in page
    written = write_pngs(again.as_dict(), None, tmp_path / "png")
    assert [p.name for p in written] == ["metrics.png", "differences.png", "segments.png"]
    alone = again.as_dict() | {"versions": again.as_dict()["versions"][:1]}  # one version: nothing to test against
    page = render_html(alone)
    assert "churn/1 evaluated" in page and _plots(page) == {"metrics", "segments"} and "against-baseline" not in page


def test_user_text_is_escaped(churn: tuple[Comparison, Curves, str]) -> None:
    result, curves, _ = churn
    doc = copy.deepcopy(result.as_dict())  # as_dict shares the stored bodies: change a copy
    doc["versions"][1]["differences"]["params"] = {HOSTILE: {"baseline": "<img src=x onerror=alert(1)>", "this": None}}
    doc["versions"][1]["reversals"] = [
        {"segment": {"region": HOSTILE}, "metric": "f1", "overall": -0.5, "difference": 0.1, "p_value": 0.01}
    ]
    page = render_html(doc, curves)
    assert "<h2 id='reversals'>" in page and "<tr class='reversal'><td>region=&lt;script&gt;" in page
    assert "<script" not in page and "<img src=x" not in page and "<b>left" not in page
    assert "region=&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the segment value
    assert "&lt;script&gt;alert(1)&lt;/script&gt;</td><td>&lt;img src=x" in page  # the param and its value
    assert "churned &amp; &lt;b&gt;left&lt;/b&gt;" in page  # the target's name


@pytest.mark.parametrize(
    ("where", "option"),
    [("a-folder", "--out"), ("a-file/report.html", "--out"), ("", "--out"), ("a-file", "--png"),
     ("a-file/plots", "--png")],
)  # fmt: skip
def test_a_path_that_cannot_be_written_is_named(
    churn: tuple[Comparison, Curves, str], tmp_path: Path, where: str, option: str
) -> None:
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    target = str(tmp_path / where) if where else ""
    write, check = (write_html, check_out) if option == "--out" else (write_pngs, check_png)
    with pytest.raises(InvalidInput, match=f"'{option}'"):
        check(target)  # before comparing
    with pytest.raises(InvalidInput, match=f"'{option}'"):
        write(churn[0].as_dict(), None, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder"]
    assert list((tmp_path / "a-folder").iterdir()) == []


def _points(fig: Any) -> list[int]:
    ax = fig.axes[0]
    return [len(line.get_xdata()) for line in ax.lines] + [len(c.get_offsets()) for c in ax.collections]


def test_a_million_rows_draw_thinned_curves_and_sampled_scatters(churn: tuple[Comparison, Curves, str]) -> None:
    rng = np.random.default_rng(0)
    rows = 1_000_000
    truth = rng.random(rows) < 0.3
    scores = {u: np.clip(truth * 0.3 + rng.random(rows) * (0.7 + i), 0, 1) for i, u in enumerate(CHURN)}
    curves = Curves("classification", truth, scores, "1")
    drawn = {stem: fig for stem, _, fig in figures(churn[0], curves)}
    assert max(_points(drawn["roc"])) <= MAX_CURVE_POINTS + 2 and max(_points(drawn["pr"])) <= MAX_CURVE_POINTS + 2
    for fig in (drawn["roc"], drawn["pr"]):  # what the page embeds
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        assert len(buffer.getvalue()) < 200_000
    values = rng.normal(size=rows)
    regression = Curves("regression", values, {u: values + rng.normal(size=rows) for u in CHURN})
    scatter = {stem: fig for stem, _, fig in figures(churn[0].as_dict(), regression)}["residuals"]
    assert _points(scatter)[-2:] == [MAX_SCATTER_POINTS, MAX_SCATTER_POINTS]
    again = {stem: fig for stem, _, fig in figures(churn[0].as_dict(), regression)}["residuals"]
    assert np.array_equal(scatter.axes[0].collections[0].get_offsets(), again.axes[0].collections[0].get_offsets())


def test_a_classifier_without_probabilities_has_no_curve(churn: tuple[Comparison, Curves, str]) -> None:
    y = np.array(["0", "1"] * 50, dtype=object)
    with_scores = SimpleNamespace(version=SimpleNamespace(uri=CHURN[0]), hard=y, scores=np.linspace(0, 1, 100))
    labels_only = SimpleNamespace(version=SimpleNamespace(uri=CHURN[1]), hard=y, scores=None)
    curves = curves_from([with_scores, labels_only], y, "classification")  # type: ignore[list-item]
    assert curves.positive == "1" and list(curves.values) == [CHURN[0]] and curves.left_out == (CHURN[1],)
    page = render_html(churn[0], curves)
    assert {"roc", "pr"} <= _plots(page) and f"for {CHURN[1]}: they need two-class probabilities" in page
