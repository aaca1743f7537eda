"""Pictures of an explanation: global importance, a beeswarm of every row, a waterfall per row; PNG files or HTML.

    from covex.explain.plots import write_plots, write_report

    write_plots(e, "out/", rows=[0, 5])      # importance.png, beeswarm.png, waterfall-0.png, waterfall-5.png
    write_report(e, "explanation.html", rows=[0])

Figures are matplotlib ``Figure`` objects of their own (pyplot's global state is never touched, so
any backend, or none, will do). Files are written under a temporary name beside the final one and
renamed once complete; the HTML embeds its pictures, so it opens offline as one file.
"""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covex.domain.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from covex.explain.result import Explanation

TOP = 20
WATERFALL_TOP = 10
POSITIVE, NEGATIVE = "#d62728", "#1f77b4"  # pushes the output up / down
MISSING_COLOUR = "#9e9e9e"
LABEL_CHARS = 40

OUTPUT_WORDS = {
    "probability": "probability",
    "log_odds": "log-odds",
    "raw": "raw score",
    "prediction": "prediction",
}


def _plain(text: str, limit: int = LABEL_CHARS) -> str:
    """Text matplotlib shows as written (a ``$`` would start mathematics), cut to ``limit`` characters."""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _unit(explanation: Explanation) -> str:
    return f"SHAP value (contribution to the {OUTPUT_WORDS.get(explanation.output, explanation.output)})"


def _top(explanation: Explanation, top: int) -> list[tuple[int, str, float]]:
    """The ``top`` most important features as (column position, name, mean |SHAP|), the largest first."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise InvalidInput(f"'top' must be a positive whole number, got {top!r}")
    position = {name: i for i, name in enumerate(explanation.features)}
    return [(position[name], name, value) for name, value in explanation.global_importance()[:top]]


def importance_figure(explanation: Explanation, top: int = TOP) -> Figure:
    """A bar per feature: its mean absolute contribution over the rows, the ``top`` largest, the largest on top."""
    ranked = _top(explanation, top)
    fig = _figure(6.4, 1.2 + 0.3 * len(ranked))
    ax = fig.subplots()
    y = list(range(len(ranked)))[::-1]
    ax.barh(y, [value for _, _, value in ranked], color=POSITIVE)
    ax.set_yticks(y, [_plain(name) for _, name, _ in ranked])
    ax.set_xlabel(f"mean |{_unit(explanation)}|")
    left = len(explanation.features) - len(ranked)
    more = f", {left} more not shown" if left else ""
    ax.set_title(_plain(f"feature importance over {explanation.rows} rows{more}", 80), loc="left")
    return fig


def beeswarm_figure(explanation: Explanation, top: int = TOP) -> Figure:
    """A point per row and feature at its contribution, coloured by the feature's value (grey: not a number)."""
    import numpy as np
    from matplotlib import cm, colors

    ranked = _top(explanation, top)
    fig = _figure(7.2, 1.4 + 0.4 * len(ranked))
    ax = fig.subplots()
    cmap = colors.LinearSegmentedColormap.from_list("covex", [NEGATIVE, "#9467bd", POSITIVE])
    for level, (column, _, _) in zip(range(len(ranked) - 1, -1, -1), ranked, strict=True):
        values = explanation.contributions[:, column]
        shade = _shade(explanation.data.iloc[:, column])
        y = level + _swarm(values)
        known = ~np.isnan(shade)
        ax.scatter(values[~known], y[~known], s=10, color=MISSING_COLOUR, linewidths=0, rasterized=True)
        ax.scatter(values[known], y[known], s=10, c=shade[known], cmap=cmap, vmin=0, vmax=1, linewidths=0,
                   rasterized=True)  # fmt: skip
    ax.axvline(0, color="#555555", linewidth=0.8)
    ax.set_yticks(range(len(ranked) - 1, -1, -1), [_plain(name) for _, name, _ in ranked])
    ax.set_ylim(-0.6, len(ranked) - 0.4)
    ax.set_xlabel(_unit(explanation))
    ax.set_title(_plain(f"contributions of {explanation.rows} rows", 80), loc="left")
    bar = fig.colorbar(cm.ScalarMappable(colors.Normalize(0, 1), cmap), ax=ax, ticks=[0, 1], aspect=40)
    bar.ax.set_yticklabels(["low", "high"])
    bar.set_label("feature value")
    return fig


def _shade(column: Any) -> np.ndarray:
    """A column's values scaled to 0..1 between its 5th and 95th percentiles; NaN where not a number."""
    import numpy as np
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if not is_numeric_dtype(column.dtype) and not is_bool_dtype(column.dtype):
        return np.full(len(column), np.nan)
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return np.full(len(values), np.nan)
    low, high = np.percentile(finite, [5, 95])
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.where(np.isfinite(values), 0.5, np.nan)
    return np.asarray(np.clip((values - low) / (high - low), 0, 1), dtype=np.float64)


def _swarm(values: np.ndarray, bins: int = 100, height: float = 0.4) -> np.ndarray:
    """Vertical offsets that stack points with nearly equal values side by side, alternating up and down."""
    import numpy as np

    if len(values) == 0:
        return np.zeros(0)
    span = float(np.ptp(values)) or 1.0
    bucket = np.round(bins * (values - values.min()) / span).astype(np.int64)
    order = np.argsort(bucket, kind="stable")
    sorted_buckets = bucket[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_buckets)) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(values)]))
    layer = np.arange(len(values)) - first
    offset = np.ceil(layer / 2) * np.where(layer % 2 == 0, 1.0, -1.0)
    out = np.empty(len(values))
    out[order] = offset
    widest = float(np.abs(out).max())
    return out * (height / widest) if widest else out


def waterfall_figure(explanation: Explanation, row: int, top: int = WATERFALL_TOP) -> Figure:
    """How one row's output is reached from its base value: the ``top`` largest contributions, then the rest."""
    import numpy as np

    contributions = explanation.row(row)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise InvalidInput(f"'top' must be a positive whole number, got {top!r}")
    shown = contributions[:top]
    rest = contributions[top:]
    steps = [(f"{name} = {_value(explanation.data.iloc[row][name])}", value) for name, value in shown]
    if rest:
        steps.append((f"{len(rest)} other features", sum(value for _, value in rest)))
    base = float(explanation.base_values[row])
    output = float(explanation.outputs[row])
    fig = _figure(7.2, 1.6 + 0.35 * len(steps))
    ax = fig.subplots()
    start = base
    for level, (_, value) in zip(range(len(steps) - 1, -1, -1), steps, strict=True):
        ax.barh(level, value, left=start, color=POSITIVE if value >= 0 else NEGATIVE, height=0.7)
        side = 1 if value >= 0 else -1
        ax.annotate(f"{value:+.3g}", (start + value, level), xytext=(3 * side, 0), textcoords="offset points",
                    va="center", ha="left" if side > 0 else "right", fontsize=8)  # fmt: skip
        start += value
    ax.axvline(base, color="#555555", linewidth=0.8, linestyle="--")
    ax.axvline(output, color="#000000", linewidth=0.8)
    ends = np.cumsum([base] + [value for _, value in steps])
    pad = 0.2 * float(np.ptp(ends)) or 0.05 * max(abs(base), 1.0)  # room for the labels beside the bars
    ax.set_xlim(float(ends.min()) - pad, float(ends.max()) + pad)
    ax.set_yticks(range(len(steps) - 1, -1, -1), [_plain(label) for label, _ in steps])
    ax.set_xlabel(OUTPUT_WORDS.get(explanation.output, explanation.output))
    label = explanation.data.index[row]
    about = "" if explanation.classes is None else f" of class {explanation.classes[row]}"
    title = f"row {row} (index {label}): {_words(explanation)}{about} {output:.4g}, base {base:.4g}"
    ax.set_title(_plain(title, 100), loc="left")
    return fig


def _words(explanation: Explanation) -> str:
    return OUTPUT_WORDS.get(explanation.output, explanation.output)


def _value(value: Any) -> str:
    """A feature's value, short: numbers to 4 significant digits, text cut."""
    import numpy as np

    if isinstance(value, float | np.floating):
        return "missing" if np.isnan(value) else f"{value:.4g}"
    if value is None:
        return "missing"
    return _plain(str(value), 24)


@contextmanager
def _quiet() -> Iterator[None]:
    """A glyph the font lacks is drawn as a box, not announced once per character."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Gg]lyph .* missing from")
        yield


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """``fig`` as a PNG (no creation date in it: the same figure gives the same bytes)."""
    buffer = io.BytesIO()
    with _quiet():
        fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def write_file(path: str | os.PathLike[str], content: bytes) -> Path:
    """Write ``content`` under a temporary name beside ``path``, then rename it: ``path`` is whole or untouched."""
    target = Path(path)
    if not target.parent.is_dir():
        raise InvalidInput(f"cannot write {str(target)!r}: folder {str(target.parent)!r} does not exist")
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.covex-partial-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target


def write_png(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Save ``fig`` as a PNG file at ``path`` (written whole, or not at all)."""
    return write_file(path, png_bytes(fig))


def write_plots(
    explanation: Explanation, folder: str | os.PathLike[str], *, rows: Sequence[int] = (), top: int = TOP
) -> list[Path]:
    """Write ``importance.png``, ``beeswarm.png`` and ``waterfall-<row>.png`` for each of ``rows`` into ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInput(f"cannot write plots into {str(root)!r}: it is not a folder")
    figures = _figures(explanation, rows, top)
    return [write_png(fig, root / f"{name}.png") for name, _, fig in figures]


def _figures(explanation: Explanation, rows: Sequence[int], top: int) -> list[tuple[str, str, Figure]]:
    """(file stem, caption, figure) for every picture of the explanation, rows checked before any is drawn."""
    for row in rows:
        explanation.row(row)  # refuses a row that is not there, before any drawing
    figures = [
        ("importance", "Mean absolute contribution of each feature", importance_figure(explanation, top)),
        ("beeswarm", "Each row's contribution per feature, coloured by its value", beeswarm_figure(explanation, top)),
    ]
    for row in rows:
        caption = f"How row {row} (index {explanation.data.index[row]}) reaches its output"
        figures.append((f"waterfall-{row}", caption, waterfall_figure(explanation, row)))
    return figures


def html_fragment(explanation: Explanation, *, rows: Sequence[int] = (), top: int = TOP) -> str:
    """An HTML ``<section>`` with the pictures (embedded PNGs) and a table of every feature's importance."""
    e = html.escape
    figures = _figures(explanation, rows, top)
    pictures = "".join(
        f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{base64.b64encode(png_bytes(fig)).decode()}">'
        f"<figcaption>{e(caption)}</figcaption></figure>"
        for _, caption, fig in figures
    )
    table = "".join(
        f"<tr><td>{rank}</td><td>{e(name)}</td><td>{value:.6g}</td></tr>"
        for rank, (name, value) in enumerate(explanation.global_importance(), start=1)
    )
    about = "" if explanation.classes is None else f" ({explanation.target})"
    summary = (
        f"{explanation.explainer} explainer, {_words(explanation)}{about} explained on {explanation.rows} rows"
        + (f" against {explanation.background_rows} background rows" if explanation.background_rows else "")
        + f"; contributions add up to the output within {explanation.additivity_error:.2g}"
    )
    return (
        f'<section class="covex-explanation"><h2>Explanation of {e(explanation.model)}</h2>'
        f"<p>{e(summary)}</p>{pictures}"
        f"<table><thead><tr><th>#</th><th>feature</th><th>mean |SHAP value|</th></tr></thead>"
        f"<tbody>{table}</tbody></table></section>"
    )


def html_report(explanation: Explanation, *, rows: Sequence[int] = (), top: int = TOP) -> str:
    """A whole HTML page holding ``html_fragment``: one file, no links outside itself."""
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}img{max-width:100%}"
        "table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.2em .6em;text-align:left}"
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Explanation of {html.escape(explanation.model)}</title><style>{style}</style></head>"
        f"<body>{html_fragment(explanation, rows=rows, top=top)}</body></html>"
    )


def write_report(
    explanation: Explanation, path: str | os.PathLike[str], *, rows: Sequence[int] = (), top: int = TOP
) -> Path:
    """Write ``html_report`` to ``path`` (written whole, or not at all)."""
    return write_file(path, html_report(explanation, rows=rows, top=top).encode("utf-8"))
