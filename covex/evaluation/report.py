"""Pictures of a comparison: one self-contained HTML page, or the same plots as PNG files.

The PNG folder holds at most these files (``FILES``): ``metrics.png`` (each metric of each version with
its interval), ``differences.png`` (each challenger minus the baseline, coloured by verdict),
``segments.png`` (the first metric per segment), ``roc.png`` and ``pr.png`` (two-class classifiers with
probabilities), ``residuals.png`` and ``predicted_vs_actual.png`` (regressors).

Curves and scatter plots need each version's answers (``Curves``), which only a run that scored the
versions has: a comparison found stored keeps its numbers only, and its page says so. Curves are
thinned to ``MAX_CURVE_POINTS`` points and scatter plots sampled to ``MAX_SCATTER_POINTS`` rows, so a
million rows draw as fast as a thousand. The page embeds every plot as a PNG data URI and names
nothing outside itself: it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import html
import io
import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covex.domain.errors import InvalidInput
from covex.evaluation.metrics import HIGHER_IS_BETTER

if TYPE_CHECKING:
    from covex.evaluation.compare import Comparison
    from covex.evaluation.scoring import Scored

MAX_CURVE_POINTS = 2000
MAX_SCATTER_POINTS = 5000
PLOTS = ("metrics", "differences", "roc", "pr", "residuals", "predicted_vs_actual", "segments")  # FILES' order
FILES = {plot: f"{plot}.png" for plot in PLOTS}
VERDICT_COLOURS = {"better": "#2a9d4b", "worse": "#d1495b", "no significant difference": "#8c8c8c"}
UNTESTED_COLOUR = "#444444"


@dataclass(frozen=True)
class Curves:
    """Each version's answers on the compared rows, for the plots the stored numbers cannot draw.

    ``values``: each version's URI (baseline first) with its probabilities of ``positive`` (two-class
    classifiers) or predictions (regressors); ``y_true``: whether each row is of ``positive``, or the
    target's values; ``left_out``: classifiers without two-class probabilities (no curve).
    """

    task: str
    y_true: Any
    values: dict[str, Any]
    positive: str | None = None
    left_out: tuple[str, ...] = ()


def curves_from(scored: Sequence[Scored], y: Any, task: str, positive: Any = None) -> Curves:
    """The ``Curves`` of versions scored on the rows whose target is ``y`` (``positive``: the last class)."""
    import numpy as np

    from covex.monitoring.performance import class_text

    if task != "classification":
        truth = np.asarray(y, dtype=float)
        return Curves(task, truth, {s.version.uri: np.asarray(s.hard, dtype=float) for s in scored})
    labels = np.asarray(class_text(y), dtype=object)
    chosen = str(class_text([positive])[0]) if positive not in (None, "") else str(sorted(set(labels))[-1])
    values, left_out = {}, []
    for s in scored:
        if s.scores is not None and np.ndim(s.scores) == 1:
            values[s.version.uri] = np.asarray(s.scores, dtype=float)
        else:
            left_out.append(s.version.uri)
    return Curves(task, labels == chosen, values, chosen, tuple(left_out))


# --- plots -----------------------------------------------------------------------------------------


def _plain(text: str) -> str:
    """Text matplotlib shows as written: a ``$`` would start mathematics (and a bad formula, an error)."""
    return text.replace("$", r"\$")


def _short(uri: str) -> str:
    return _plain(uri.removeprefix("models:/"))


def _colour(at: int | str, order: Sequence[str] = ()) -> str:
    """The colour of the version at ``at`` (or of URI ``at`` among ``order``), the same in every plot."""
    i = at if isinstance(at, int) else order.index(at) if at in order else len(order)
    return f"C{i % 10}"


def _figure(width: float = 6.4, height: float = 3.6) -> Any:
    from matplotlib.figure import Figure  # a Figure of its own: pyplot's global state is never touched

    return Figure(figsize=(width, height), layout="constrained")


def _grid(count: int, width: float = 3.2, height: float = 2.6) -> tuple[Any, list[Any]]:
    """A figure of ``count`` small plots, up to three a row."""
    cols = min(count, 3)
    rows = math.ceil(count / cols)
    fig = _figure(width * cols, height * rows + 0.4)
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def _error(value: float | None, low: float | None, high: float | None) -> tuple[float, float]:
    """An error bar (below, above) from an interval, none when it is missing; never negative, as matplotlib asks."""
    if value is None or low is None or high is None:
        return 0.0, 0.0
    return max(value - low, 0.0), max(high - value, 0.0)


def _metric_names(doc: dict[str, Any]) -> list[str]:
    present = {n for v in doc["versions"] for n in v.get("metrics", {})}
    return [n for n in doc["settings"].get("metrics", []) if n in present] or sorted(present)


def _direction(name: str) -> str:
    return "higher is better" if name in HIGHER_IS_BETTER else "lower is better"


def metrics_figure(doc: dict[str, Any]) -> Any | None:
    """One small plot per metric, one bar per version, with its interval."""
    names = _metric_names(doc)
    if not names:
        return None
    versions = doc["versions"]
    fig, axes = _grid(len(names))
    labels = [_short(v["uri"]) for v in versions]
    for ax, name in zip(axes, names, strict=True):
        for i, v in enumerate(versions):
            m = v.get("metrics", {}).get(name) or {}
            if (value := m.get("value")) is not None:
                below, above = _error(value, m.get("low"), m.get("high"))
                ax.bar(i, value, color=_colour(i), yerr=[[below], [above]], capsize=3)
        turn = len(versions) > 2
        ax.set_xticks(range(len(versions)), labels, rotation=30 if turn else 0, ha="right" if turn else "center")
        ax.set_title(f"{name} ({_direction(name)})", loc="left", fontsize="medium")
    fig.suptitle(f"metrics with {doc['settings'].get('level', 0.95):.0%} intervals", x=0.01, ha="left")
    return fig


def differences_figure(doc: dict[str, Any]) -> Any | None:
    """Each challenger minus the baseline, per metric, with its interval, coloured by verdict."""
    from matplotlib.lines import Line2D

    challengers = doc["versions"][1:]
    names = [n for n in _metric_names(doc) if any(n in (v.get("against_baseline") or {}) for v in challengers)]
    if not challengers or not names:
        return None
    fig, axes = _grid(len(names), height=0.6 + 0.35 * len(challengers) + 1.2)
    labels = [_short(v["uri"]) for v in challengers]
    for ax, name in zip(axes, names, strict=True):
        for j, v in enumerate(challengers):
            t = (v.get("against_baseline") or {}).get(name) or {}
            if t.get("difference") is None:
                continue
            below, above = _error(t["difference"], t.get("low"), t.get("high"))
            colour = VERDICT_COLOURS.get(t.get("verdict") or "", UNTESTED_COLOUR)
            ax.errorbar(t["difference"], j, xerr=[[below], [above]], fmt="o", color=colour, capsize=3)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(challengers)), labels)
        ax.set_ylim(len(challengers) - 0.5, -0.5)
        ax.set_title(f"{name} ({_direction(name)})", loc="left", fontsize="medium")
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=k) for k, c in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False, fontsize="small")
    fig.suptitle("challenger - baseline, with interval", x=0.01, ha="left")
    return fig


def _segment_text(segment: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in segment.items())


_segment_key = functools.partial(json.dumps, sort_keys=True, default=str)  # a segment's label as one text


def segments_figure(doc: dict[str, Any]) -> Any | None:
    """Each version's first metric in each segment, with its interval; segments that reverse the
    overall result are labelled in bold with (!)."""
    import numpy as np

    versions = doc["versions"]
    groups = (versions[0].get("segments") or {}).get("groups") or []
    names = _metric_names(doc)
    if not groups or not names:
        return None
    name, keys = names[0], [_segment_key(g["segment"]) for g in groups]
    reversed_ = {_segment_key(r["segment"]) for v in versions for r in v.get("reversals") or []}
    width = 0.8 / len(versions)
    fig = _figure(min(max(6.4, 0.25 * len(groups) * len(versions) + 2), 24), 4.0)
    ax = fig.subplots()
    x = np.arange(len(groups))
    for i, v in enumerate(versions):
        found = {_segment_key(g["segment"]): g for g in (v.get("segments") or {}).get("groups") or []}
        shown = [(found.get(key) or {}).get("metrics", {}).get(name) or {} for key in keys]
        values = [float("nan") if m.get("value") is None else m["value"] for m in shown]
        errors = np.array([_error(m.get("value"), m.get("low"), m.get("high")) for m in shown]).T
        offset = (i - (len(versions) - 1) / 2) * width
        ax.bar(x + offset, values, width, yerr=errors, capsize=2, color=_colour(i), label=_short(v["uri"]))
    labels = [_plain(_segment_text(g["segment"])[:40]) for g in groups]
    rotate = len(groups) > 4 or max(map(len, labels)) > 12
    ax.set_xticks(x, labels, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    for tick, key in zip(ax.get_xticklabels(), keys, strict=True):
        if key in reversed_:
            tick.set_fontweight("bold")
            tick.set_text(f"{tick.get_text()} (!)")
    ax.set_xticks(x, [t.get_text() for t in ax.get_xticklabels()], rotation=45 if rotate else 0,
                  ha="right" if rotate else "center")  # fmt: skip
    for tick, key in zip(ax.get_xticklabels(), keys, strict=True):
        if key in reversed_:
            tick.set_fontweight("bold")
    ax.set_title(f"{name} per segment ({_direction(name)}; (!): a reversal)", loc="left", fontsize="medium")
    ax.legend(frameon=False, fontsize="small")
    return fig


def _thin(count: int, limit: int = MAX_CURVE_POINTS) -> Any:
    """Indexes of at most ``limit`` points spread evenly along a curve of ``count``, both ends kept."""
    import numpy as np

    return np.arange(count) if count <= limit else np.unique(np.linspace(0, count - 1, limit).round().astype(int))


def curve_figure(curves: Curves, order: Sequence[str], kind: str) -> Any | None:
    """One ROC (``kind`` "roc", AUC in the legend) or precision-recall ("pr", average precision) curve
    per version with probabilities, thinned to ``MAX_CURVE_POINTS`` points."""
    import numpy as np
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    fig = _figure(5.2, 4.4)
    ax = fig.subplots()
    for uri, values in curves.values.items():
        ok = np.isfinite(values)
        rows = curves.y_true[ok], values[ok]
        if rows[0].all() or not rows[0].any():  # a curve needs both classes
            continue
        if kind == "roc":
            x, y, _ = roc_curve(*rows, drop_intermediate=True)  # the points dropped lie on a line: same area
            label = f"AUC {auc(x, y):.3f}"
        else:
            y, x, _ = precision_recall_curve(*rows)
            label = f"AP {-np.sum(np.diff(x) * y[:-1]):.3f}"  # as average_precision_score, one sort fewer
        keep = _thin(len(x))
        ax.step(x[keep], y[keep], where="post", color=_colour(uri, order), label=f"{_short(uri)} ({label})")
    if not ax.lines:
        return None
    if kind == "roc":
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    else:
        ax.axhline(float(np.mean(curves.y_true)), linestyle="--", color="grey", linewidth=0.8)
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
    title = "ROC" if kind == "roc" else "precision-recall"
    ax.set_title(_plain(f"{title} ({curves.positive} is positive)"), loc="left", fontsize="medium")
    ax.legend(frameon=False, fontsize="small", loc="lower right" if kind == "roc" else "lower left")
    return fig


def _scatter(curves: Curves, order: Sequence[str], residuals: bool) -> Any | None:
    import numpy as np

    rows = np.arange(len(curves.y_true))
    if len(rows) > MAX_SCATTER_POINTS:  # the same rows every time
        rows = np.sort(np.random.default_rng(0).choice(len(rows), MAX_SCATTER_POINTS, replace=False))
    truth = curves.y_true[rows]
    fig = _figure(5.6, 4.4)
    ax = fig.subplots()
    for uri, values in curves.values.items():
        predicted = values[rows]
        ok = np.isfinite(predicted) & np.isfinite(truth)
        x, y = (predicted[ok], (truth - predicted)[ok]) if residuals else (truth[ok], predicted[ok])
        ax.scatter(x, y, s=5, alpha=0.35, color=_colour(uri, order), linewidths=0, label=_short(uri))
    if not ax.collections:
        return None
    shown = f"{len(rows):,} of {len(curves.y_true):,} rows" if len(rows) < len(curves.y_true) else "every row"
    if residuals:
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set(xlabel="predicted", ylabel="actual - predicted")
        ax.set_title(f"residuals ({shown})", loc="left", fontsize="medium")
    else:
        finite = truth[np.isfinite(truth)]
        if len(finite):
            ax.plot([finite.min(), finite.max()], [finite.min(), finite.max()], "--", color="grey", linewidth=0.8)
        ax.set(xlabel="actual", ylabel="predicted")
        ax.set_title(f"predicted against actual ({shown})", loc="left", fontsize="medium")
    ax.legend(frameon=False, fontsize="small", markerscale=3)
    return fig


def figures(comparison: Comparison | dict[str, Any], curves: Curves | None) -> list[tuple[str, str, Any]]:
    """(plot, caption, figure) of every plot the comparison (and ``curves``, if given) can draw."""
    doc = _document(comparison)
    order = [v["uri"] for v in doc["versions"]]
    drawn = [("metrics", "Metrics with their intervals", metrics_figure(doc))]
    drawn.append(("differences", "Each challenger against the baseline", differences_figure(doc)))
    if curves is not None and curves.values and curves.task == "classification":
        drawn.append(("roc", "ROC curves", curve_figure(curves, order, "roc")))
        drawn.append(("pr", "Precision-recall curves", curve_figure(curves, order, "pr")))
    elif curves is not None and curves.values:
        drawn.append(("residuals", "Residuals against predictions", _scatter(curves, order, residuals=True)))
        drawn.append(("predicted_vs_actual", "Predicted against actual", _scatter(curves, order, residuals=False)))
    drawn.append(("segments", "The first metric per segment", segments_figure(doc)))
    return [(stem, caption, fig) for stem, caption, fig in drawn if fig is not None]


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a glyph the font lacks is drawn as a box, not announced per character
        warnings.filterwarnings("ignore", message=".*[Gg]lyph .* missing from")
        fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


# --- files -----------------------------------------------------------------------------------------


def _document(comparison: Comparison | dict[str, Any]) -> dict[str, Any]:
    return comparison if isinstance(comparison, dict) else comparison.as_dict()


def _write(path: Path, data: bytes, option: str) -> None:
    """Write ``data`` under a temporary name, then move it to ``path``: never a half-written file there."""
    import tempfile

    partial: Path | None = None
    try:
        # A temporary file of this writer's own: two reports written to one path at once do not mix.
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        partial = Path(name)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except OSError as exc:
        if partial is not None:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
        raise InvalidInput(f"'{option}' {path}: {exc.strerror or exc}") from None


def check_out(path: str | Path) -> Path:
    """The HTML file to write (``InvalidInput`` naming '--out' if it cannot be): check before comparing."""
    target = Path(path)
    if not str(path).strip() or target.name in ("", ".", ".."):
        raise InvalidInput(f"'--out' must name a file, got {str(path)!r}")
    if os.path.isdir(target):  # os.path, not Path: False (not an error) where a folder cannot be read
        raise InvalidInput(f"'--out' {path} is a folder: name the HTML file to write")
    if not os.path.isdir(target.parent):
        raise InvalidInput(f"'--out' {path}: there is no folder {target.parent}")
    return target


def check_png(folder: str | Path) -> Path:
    """The folder of the PNG files (``InvalidInput`` naming '--png' if it cannot be): check before comparing."""
    root = Path(folder)
    if not str(folder).strip() or not os.path.isdir(next(p for p in (root, *root.parents) if os.path.exists(p))):
        raise InvalidInput(f"'--png' must name a folder to write the PNG files into, got {str(folder)!r}")
    return root


def write_html(comparison: Comparison | dict[str, Any], curves: Curves | None, path: str | Path) -> Path:
    """Write the page of ``comparison`` (drawing ``curves`` too, if given) to ``path``; returns it."""
    target = check_out(path)
    _write(target, render_html(comparison, curves).encode("utf-8"), "--out")
    return target


def write_pngs(comparison: Comparison | dict[str, Any], curves: Curves | None, folder: str | Path) -> list[Path]:
    """Write each plot as ``folder/<plot>.png`` (the names in ``FILES``), making the folder if missing."""
    try:
        (root := check_png(folder)).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"'--png' {folder}: {exc.strerror or exc}") from None
    written = []
    for stem, _, fig in figures(comparison, curves):
        written.append(root / FILES[stem])
        _write(written[-1], _png(fig), "--png")
    return written


# --- the page --------------------------------------------------------------------------------------

_e = html.escape
_NONE = "—"
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 75rem; color: #222; padding: 0 1rem; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; } .note { background: #eef3fb; padding: .5rem .75rem; }
td, th { padding: .25rem .75rem; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
tr.better td { background: #e3f4e7; } tr.worse td { background: #fbe3e3; } tr.reversal td { background: #fdf3d8; }
figure { display: inline-block; margin: 1rem 1rem 0 0; } img { max-width: 100%; height: auto; }
"""


def _number(value: Any, spec: str = ".4g") -> str:
    return format(value, spec) if isinstance(value, int | float) and not isinstance(value, bool) else _NONE


def _interval(m: dict[str, Any] | None, spec: str = ".4g") -> str:
    m = m or {}
    shown = _number(m.get("value", m.get("difference")), spec)
    if m.get("low") is None or m.get("high") is None:
        return shown
    return f"{shown} [{_number(m['low'], spec)}, {_number(m['high'], spec)}]"


def _p(test: dict[str, Any], resamples: Any) -> str:
    """A p-value; a paired bootstrap's 0 means below one in the resamples drawn, not impossible."""
    if test.get("p_value") == 0 and test.get("test") == "paired bootstrap" and resamples:
        return f"< {1 / resamples:.2g}"
    return _number(test.get("p_value"), ".3g")


def _text(value: Any) -> str:
    return _NONE if value is None else value if isinstance(value, str) else json.dumps(value, default=str)


def _size(count: Any) -> str:
    if not isinstance(count, int) or count < 0:
        return _NONE
    power = min(int(math.log(max(count, 1), 1024)), 3)
    return f"{count / 1024**power:.{1 if power else 0}f} {('B', 'KB', 'MB', 'GB')[power]}"


def _table(head: Sequence[str], rows: Sequence[tuple[Sequence[str], str]]) -> str:
    """A table of ``head`` and rows of (cells, CSS class); every cell is escaped here."""
    top = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        f"<tr class='{css}'>" + "".join(f"<td>{_e(str(c))}</td>" for c in cells) + "</tr>" for cells, css in rows
    )
    return f"<table><thead><tr>{top}</tr></thead><tbody>{body}</tbody></table>"


def _label(v: dict[str, Any], i: int) -> str:
    return f"{v['uri']} (baseline)" if i == 0 else str(v["uri"])


def _tables(doc: dict[str, Any], names: list[str]) -> str:
    """Metrics; against the baseline; reversals; segments; agreement, latency and size."""
    versions, settings = doc["versions"], doc["settings"]
    resamples = settings.get("resamples")
    rows = [([_label(v, i), *(_interval(v.get("metrics", {}).get(n)) for n in names)], "")
            for i, v in enumerate(versions)]  # fmt: skip
    out = [f"<h2 id='metrics'>Metrics ({_number(settings.get('level'), '.0%')} intervals)</h2>"]
    out.append(_table(["version", *names], rows))
    rows = [
        ([v["uri"], n, _interval(t, "+.4g"), _text(t.get("test")), _p(t, resamples), t.get("verdict") or "not tested"],
         {"better": "better", "worse": "worse"}.get(t.get("verdict"), ""))
        for v in versions[1:]
        for n in names
        if (t := (v.get("against_baseline") or {}).get(n))
    ]  # fmt: skip
    if rows:
        out.append("<h2 id='against-baseline'>Against the baseline</h2>")
        out.append(_table(["version", "metric", "difference [interval]", "test", "p", "verdict"], rows))
    rows = [
        ([v["uri"], _segment_text(r["segment"]), r["metric"], _number(r.get("overall"), "+.4g"),
          _number(r.get("difference"), "+.4g"), _number(r.get("p_value"), ".3g")], "reversal")
        for v in versions[1:]
        for r in v.get("reversals") or []
    ]  # fmt: skip
    if rows:
        out.append("<h2 id='reversals'>Reversals: significant, and the other way round than overall</h2>")
        out.append(_table(["version", "segment", "metric", "overall difference", "in the segment", "p"], rows))
    out.append(_segments_html(doc, names))
    rows = [
        ([_label(v, i), _number(v.get("latency_ms_per_row"), ".3g"), _size(v.get("size_bytes")),
          _agreement(v.get("agreement")) if i else _NONE], "")
        for i, v in enumerate(versions)
    ]  # fmt: skip
    out.append("<h2 id='agreement'>Agreement, latency and size</h2>")
    out.append(_table(["version", "latency (ms per row)", "size", "agreement with the baseline"], rows))
    return "\n".join(out)


def _segments_html(doc: dict[str, Any], names: list[str]) -> str:
    """Each segment's rows, one per version, each metric with its interval and what differs significantly."""
    versions, resamples = doc["versions"], doc["settings"].get("resamples")
    segments = versions[0].get("segments") or {}
    if not segments.get("by"):
        return ""
    found = [{_segment_key(g["segment"]): g for g in (v.get("segments") or {}).get("groups") or []} for v in versions]
    reversed_ = {(i, _segment_key(r["segment"]), r["metric"])
                 for i, v in enumerate(versions) for r in v.get("reversals") or []}  # fmt: skip
    rows = []
    for key in (_segment_key(g["segment"]) for g in segments.get("groups") or []):
        for i, v in enumerate(versions):
            if (g := found[i].get(key)) is None:
                continue
            tests = g.get("against_baseline") or {}
            said = [
                f"{n} {t['verdict']} ({_number(t.get('difference'), '+.3g')}, p {_p(t, resamples)})"
                + (", a reversal" if (i, key, n) in reversed_ else "")
                for n in names
                if (t := tests.get(n) or {}).get("verdict") in ("better", "worse")
            ]
            cells = [_segment_text(g["segment"]), g.get("rows", ""), _label(v, i)]
            cells += [_interval(g.get("metrics", {}).get(n)) for n in names] + ["; ".join(said) or (_NONE if i else "")]
            rows.append((cells, "reversal" if any(r[:2] == (i, key) for r in reversed_) else ""))
    by = ", ".join(map(str, segments["by"]))
    head = ["segment", "rows", "version", *names, "significant differences from the baseline"]
    return f"<h2 id='segments'>Segments by {_e(by)}</h2>" + _table(head, rows)


def _agreement(agreement: dict[str, Any] | None) -> str:
    if not agreement:
        return _NONE
    if "share" in agreement:
        return f"{_number(agreement['share'], '.1%')} same labels"
    mean, correlation = _number(agreement.get("mean_abs_difference")), _number(agreement.get("correlation"), ".3f")
    return f"mean |difference| {mean}, correlation {correlation}"


def _challengers(doc: dict[str, Any]) -> str:
    """The rows each challenger disagrees with the baseline on most, and what else differs."""
    disagreements, differences = ["<h2 id='disagreements'>Top disagreements</h2>"], []
    for v in doc["versions"][1:]:
        if found := v.get("disagreements") or []:
            scores = any("baseline_score" in d for d in found)
            head = ["row", "target", "baseline", "this", *(["baseline score", "this score"] if scores else [])]
            rows = [
                ([d.get("row"), *(_text(d.get(k)) for k in ("target", "baseline", "this")),
                  *((_number(d.get(k), ".3f") for k in ("baseline_score", "this_score")) if scores else ())], "")
                for d in found
            ]  # fmt: skip
            disagreements.append(f"<h3>{_e(v['uri'])}</h3>" + _table(head, rows))
        changed = v.get("differences") or {}
        rows = [
            ([part, key, _text(change.get("baseline")), _text(change.get("this"))], "")
            for part in ("params", "signature", "datasets", "lineage")
            for key, change in (changed.get(part) or {}).items()
            if isinstance(change, dict)
        ]
        table = _table(["what", "name", "baseline", "this"], rows) if rows else "<p>No difference found.</p>"
        differences.append(f"<h3>{_e(v['uri'])}</h3>" + table)
    if differences:
        differences.insert(0, "<h2 id='differences'>Differences from the baseline</h2>")
    return "\n".join((disagreements if len(disagreements) > 1 else []) + differences)


def _missing_plots(doc: dict[str, Any], curves: Curves | None) -> list[str]:
    wanted = "ROC and precision-recall curves" if doc["settings"].get("task") == "classification" else "residual plots"
    if curves is None:
        return [f"The {wanted} need each version's answers, which a stored comparison does not keep: "
                "run the comparison again with --force to draw them."]  # fmt: skip
    return (
        [f"No {wanted} for {', '.join(curves.left_out)}: they need two-class probabilities."] if curves.left_out else []
    )


def render_html(comparison: Comparison | dict[str, Any], curves: Curves | None = None) -> str:
    """The page of ``comparison``: every table, and every plot it (and ``curves``) can draw."""
    doc = _document(comparison)
    settings, versions = doc["settings"], doc["versions"]
    names = _metric_names(doc)
    others = ", ".join(v["uri"] for v in versions[1:])
    title = f"{versions[0]['uri']} against {others}" if others else f"{versions[0]['uri']} evaluated"
    task = str(settings.get("task", ""))
    if task == "classification" and (positive := settings.get("positive") or versions[0].get("positive")):
        task += f" (positive class {positive})"
    summary = (
        f"{doc.get('rows')} rows of {doc.get('source')} ({doc.get('data_digest')}); target {settings.get('target')}, "
        f"{task}; {settings.get('resamples')} bootstrap resamples (seed {settings.get('seed')})."
        + (" Found stored from an earlier run on the same data and settings." if doc.get("reused") else "")
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in sorted({n for v in versions for n in v.get("notes") or []}))
    plots = "".join(
        f"<figure id='plot-{stem}'><img alt='{_e(caption)}' src='data:image/png;base64,"
        f"{base64.b64encode(_png(fig)).decode('ascii')}'><figcaption>{_e(caption)}</figcaption></figure>"
        for stem, caption, fig in figures(doc, curves)
    )
    missing = "".join(f"<p class='note'>{_e(n)}</p>" for n in _missing_plots(doc, curves))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{_e(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{_e(title)}</h1>
<p id="summary">{_e(summary)}</p>
{_tables(doc, names)}
{_challengers(doc)}
{f"<h2 id='notes'>Notes</h2><ul>{notes}</ul>" if notes else ""}
<h2 id="plots">Plots</h2>
{missing}
{plots}
</body></html>
"""
