"""Plots of an explanation: valid PNG files written whole, and an HTML report that escapes every name."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from covex.domain.errors import InvalidInput
from covex.explain import Explanation, plots

PNG = b"\x89PNG\r\n\x1a\n"
NAMES = ["tenure", "<b>spend</b>", "plan $x$", 'region & "zone"', "empty"]


@pytest.fixture
def explanation() -> Explanation:
    """Five features of every kind: numbers, numbers with gaps, text, a column with nothing but gaps."""
    rng = np.random.default_rng(0)
    rows = 40
    data = pd.DataFrame(
        {
            NAMES[0]: rng.random(rows),
            NAMES[1]: np.where(rng.random(rows) < 0.2, np.nan, rng.random(rows)),
            NAMES[2]: rng.choice(["basic", "<script>alert(1)</script>"], rows),
            NAMES[3]: rng.integers(0, 3, rows),
            NAMES[4]: np.full(rows, np.nan),
        },
        index=pd.RangeIndex(100, 100 + rows),
    )
    contributions = rng.normal(size=(rows, 5)) * [3, 1, 0.5, 0.2, 0]
    base = np.full(rows, 0.25)
    return Explanation(
        model="models:/churn/3",
        features=NAMES,
        contributions=contributions,
        base_values=base,
        outputs=contributions.sum(axis=1) + base,
        explainer="tree",
        output="log_odds",
        data=data,
        classes=np.full(rows, "yes", dtype=object),
    )


def assert_png(content: bytes) -> tuple[int, int]:
    import matplotlib.image

    assert content.startswith(PNG)
    pixels = matplotlib.image.imread(io.BytesIO(content), format="png")
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    return pixels.shape[0], pixels.shape[1]


def test_plots_are_written_as_png_files(explanation: Explanation, tmp_path: Path) -> None:
    written = plots.write_plots(explanation, tmp_path, rows=[0, 7])
    assert ["importance.png", "beeswarm.png", "waterfall-0.png", "waterfall-7.png"] == [p.name for p in written]
    for path in written:
        assert_png(path.read_bytes())
    assert sorted(p.name for p in written) == sorted(p.name for p in tmp_path.iterdir())  # nothing else left behind


def test_the_importance_chart_shows_at_most_top_features(explanation: Explanation) -> None:
    ax = plots.importance_figure(explanation, top=2).axes[0]
    top_down = sorted(zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()], strict=True), reverse=True)
    assert ["tenure", "<b>spend</b>"] == [label for _, label in top_down]  # the largest on top
    assert "3 more not shown" in ax.get_title(loc="left")


def test_a_waterfall_goes_from_the_base_value_to_the_output(explanation: Explanation) -> None:
    fig = plots.waterfall_figure(explanation, 3, top=2)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert 3 == len(labels) and "3 other features" == labels[-1]
    bars = ax.patches
    end = bars[-1].get_x() + bars[-1].get_width()
    assert pytest.approx(explanation.outputs[3]) == end
    assert pytest.approx(explanation.base_values[3]) == bars[0].get_x()
    assert "index 103" in ax.get_title(loc="left")


def test_the_same_figure_gives_the_same_bytes(explanation: Explanation) -> None:
    assert plots.png_bytes(plots.beeswarm_figure(explanation)) == plots.png_bytes(plots.beeswarm_figure(explanation))


def test_the_report_embeds_the_pictures_and_escapes_every_name(explanation: Explanation, tmp_path: Path) -> None:
    path = plots.write_report(explanation, tmp_path / "report.html", rows=[1])
    page = path.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert 3 == len(images)
    for image in images:
        assert_png(base64.b64decode(image))
    assert "<b>spend</b>" not in page and "&lt;b&gt;spend&lt;/b&gt;" in page
    assert "region &amp; &quot;zone&quot;" in page
    assert "<script>" not in page
    assert page.index("&lt;b&gt;spend") < page.index("plan $x$")  # the table is in order of importance


def test_a_fragment_is_one_section(explanation: Explanation) -> None:
    fragment = plots.html_fragment(explanation)
    assert fragment.startswith('<section class="covex-explanation">') and fragment.endswith("</section>")
    assert "<html" not in fragment


def test_a_row_that_is_not_there_is_refused_before_anything_is_written(
    explanation: Explanation, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="row 40 is not among the 40 explained rows"):
        plots.write_plots(explanation, tmp_path, rows=[0, 40])
    assert [] == list(tmp_path.iterdir())


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")

    def broken(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(plots.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        plots.write_file(target, b"new")
    assert ["report.html"] == [p.name for p in tmp_path.iterdir()]
    assert "old" == target.read_text()


def test_a_missing_folder_is_named(explanation: Explanation, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is not a folder"):
        plots.write_plots(explanation, tmp_path / "nowhere")
    with pytest.raises(InvalidInput, match="does not exist"):
        plots.write_report(explanation, tmp_path / "nowhere" / "r.html")
