"""Pictures of a version's monitoring: one self-contained HTML page, or the same plots as PNG files.

Per feature (and per prediction column) the reference and current distributions overlaid, with
the statistic that judged them; the drift timeline (each feature's statistic, and the share of
drifted features, check after check); the performance timeline (each metric against its
registered value). Plots are drawn by matplotlib; the page embeds them as SVG and names nothing
outside itself, so it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import html
import io
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from covex.client import Client
from covex.domain.errors import InvalidInput, NotFound
from covex.domain.monitoring import MonitorResult

HISTORY = 200
TIMELINE_FEATURES = 12
REFERENCE_COLOUR, CURRENT_COLOUR = "#4c72b0", "#dd8452"


def _plain(text: str) -> str:
    """Text matplotlib shows as written: a ``$`` would start mathematics (and a bad formula, an error)."""
    return text.replace("$", r"\$")


def _figure(width: float = 6.4, height: float = 3.2) -> Any:
    from matplotlib.figure import Figure  # a Figure of its own: pyplot's global state is never touched

    return Figure(figsize=(width, height), layout="constrained")


def distribution_figure(name: str, feature: dict[str, Any]) -> Any:
    """Reference and current shares of one column, bar beside bar, titled with its verdict."""
    import numpy as np

    fig = _figure()
    ax = fig.subplots()
    plot = feature["plot"]
    if "categories" in plot:
        labels = [_plain(str(c)) for c in plot["categories"]]
    else:
        edges = [f"{e:.3g}" for e in plot["edges"]]
        labels = [f"< {edges[0]}" if edges else "all"] + [f"≥ {e}" for e in edges]
    x = np.arange(len(labels))
    ax.bar(x - 0.2, plot["reference"], 0.4, label="reference", color=REFERENCE_COLOUR)
    ax.bar(x + 0.2, plot["current"], 0.4, label="current", color=CURRENT_COLOUR)
    ax.set_xticks(x, labels, rotation=45 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center")
    ax.set_ylabel("share of rows")
    value = feature.get("value")
    shown = "" if value is None else f"{feature['method']} {value:.3g}, "
    ax.set_title(_plain(f"{name}: {shown}{feature['verdict']}"), loc="left")
    ax.legend(frameon=False)
    return fig


def drift_timeline_figure(results: Sequence[MonitorResult]) -> Any:
    """Each feature's judged statistic over the checks, and the share of drifted features."""
    fig = _figure(height=3.6)
    ax = fig.subplots()
    share = ax.twinx()
    ordered = sorted(results, key=lambda r: r.created_at)
    times = [datetime.fromtimestamp(r.created_at / 1000, UTC) for r in ordered]
    latest = ordered[-1].body.get("features", {})
    names = sorted(latest, key=lambda n: -(latest[n].get("value") or 0.0))[:TIMELINE_FEATURES]
    for name in names:
        values = [r.body.get("features", {}).get(name, {}).get("value") for r in ordered]
        ax.plot(times, [float("nan") if v is None else v for v in values], marker="o", label=_plain(name))
    share.plot(times, [r.body.get("share_drifted", 0.0) for r in ordered], linestyle="--", color="black",
               label="share of features drifting (right)")  # fmt: skip
    share.set_ylim(0, 1.05)
    share.set_ylabel("share drifting")
    ax.set_ylabel("judged statistic")
    ax.set_title("drift per check", loc="left")
    lines = ax.get_legend_handles_labels()
    extra = share.get_legend_handles_labels()
    ax.legend(lines[0] + extra[0], lines[1] + extra[1], frameon=False, fontsize="small", ncols=2)
    _time_axis(ax, times)
    return fig


def _time_axis(ax: Any, times: list[datetime], ticks: int = 5) -> None:
    from matplotlib import dates

    if times[-1] - times[0] < timedelta(minutes=2):  # checks seconds apart: a few minutes around them
        ax.set_xlim(times[0] - timedelta(minutes=2), times[-1] + timedelta(minutes=2))
    locator: Any = dates.AutoDateLocator(minticks=2, maxticks=ticks)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def performance_timeline_figure(results: Sequence[MonitorResult]) -> Any | None:
    """Each metric over the checks that had labels, with its registered value dashed; None without any."""
    ordered = [
        r for r in sorted(results, key=lambda r: r.created_at) if (r.body.get("performance") or {}).get("metrics")
    ]
    if not ordered:
        return None
    fig = _figure(height=3.2)
    ax = fig.subplots()
    times = [datetime.fromtimestamp(r.created_at / 1000, UTC) for r in ordered]
    names = sorted({n for r in ordered for n in r.body["performance"]["metrics"]})
    for i, name in enumerate(names):
        colour = f"C{i % 10}"
        values = [r.body["performance"]["metrics"].get(name, {}).get("value") for r in ordered]
        ax.plot(times, [float("nan") if v is None else v for v in values], marker="o", label=_plain(name), color=colour)
        registered = ordered[-1].body["performance"]["metrics"].get(name, {}).get("registered")
        if registered is not None:
            ax.axhline(registered, linestyle="--", linewidth=1, color=colour, label=f"{name} registered")
    ax.set_title("performance per check (dashed: registered)", loc="left")
    ax.legend(frameon=False, fontsize="small")
    _time_axis(ax, times)
    return fig


@contextmanager
def _quiet() -> Iterator[None]:
    """A glyph the font lacks is drawn as a box, not announced once per character on stderr."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Gg]lyph .* missing from")
        yield


def _svg(fig: Any) -> str:
    import matplotlib

    buffer = io.StringIO()
    with _quiet(), matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text: smaller, searchable
        fig.savefig(buffer, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # the XML prolog and doctype do not belong inside HTML


def _figures(results: Sequence[MonitorResult]) -> list[tuple[str, str, Any]]:
    """(file stem, caption, figure) of every plot of the latest result and the history."""
    latest = results[0]
    out: list[tuple[str, str, Any]] = [("drift-timeline", "Drift over time", drift_timeline_figure(results))]
    performance = performance_timeline_figure(results)
    if performance is not None:
        out.append(("performance-timeline", "Performance over time", performance))
    for part, prefix in (("features", "feature"), ("predictions", "prediction")):
        for name, feature in latest.body.get(part, {}).items():
            if "plot" in feature:
                out.append((f"{prefix}-{name}", f"{prefix} {name}", distribution_figure(name, feature)))
    return out


def history(client: Client, uri: str) -> list[MonitorResult]:
    """The version's results, newest first (``NotFound`` when it has none)."""
    version = client.get_version(uri)
    results = client.monitoring.list_results(version.name, version.version, max_results=HISTORY)
    if not results:
        raise NotFound(f"{version.uri} has no monitoring result yet: run 'covex monitor check {version.uri}' first")
    return results


def write_html(results: Sequence[MonitorResult], out: str | Path) -> Path:
    """Write the report of ``results`` (newest first) to ``out``; nothing is left there if it fails."""
    if not str(out).strip() or Path(out).name in ("", ".", ".."):
        raise InvalidInput(f"'--out' must name a file, got {str(out)!r}")
    target = Path(out)
    page = render_html(results)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(page, encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InvalidInput(f"'--out' {out}: {exc.strerror or exc}") from None
    return target


def write_png(results: Sequence[MonitorResult], folder: str | Path) -> list[Path]:
    """Write every plot as ``folder/<plot>.png``; returns the files."""
    root = Path(folder)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"'--png' {folder}: {exc.strerror or exc}") from None
    written: list[Path] = []
    used: set[str] = set()
    for stem, _, fig in _figures(results):
        name = _file_name(stem, used)
        path = root / f"{name}.png"
        with _quiet():
            fig.savefig(path, format="png", dpi=110)
        written.append(path)
    return written


def _file_name(stem: str, used: set[str]) -> str:
    """A file name of a plot: a column's name may hold anything, the file's only safe characters."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:100] or "plot"
    name, n = base, 1
    while name.lower() in used:
        n += 1
        name = f"{base}-{n}"
    used.add(name.lower())
    return name


def _performance_html(part: dict[str, Any] | None) -> str:
    """The latest check's metrics against their baselines, or why there are none."""
    if not part:
        return ""
    e = html.escape

    def number(value: object) -> str:
        return "" if not isinstance(value, int | float) else f"{value:.4g}"

    rows = "".join(
        f"<tr class='{'drift' if m.get('degraded') else ''}'><td>{e(name)}</td><td>{number(m.get('value'))}</td>"
        f"<td>{number(m.get('registered'))}</td><td>{number(m.get('previous'))}</td>"
        f"<td>{'DEGRADED' if m.get('degraded') else 'ok'}</td></tr>"
        for name, m in (part.get("metrics") or {}).items()
    )
    table = (
        "<table><thead><tr><th>metric</th><th>value</th><th>registered</th><th>previous checks</th><th>verdict</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else ""
    )
    notes = "".join(f"<li>{e(n)}</li>" for n in [*part.get("notes", []), *([part["note"]] if part.get("note") else [])])
    return (
        f"<h2>Performance</h2><p>{int(part.get('labelled', 0))} labelled row(s) in this check.</p>{table}"
        f"{f'<ul>{notes}</ul>' if notes else ''}"
    )


def render_html(results: Sequence[MonitorResult]) -> str:
    latest = results[0]
    e = html.escape
    body = latest.body
    rows = []
    for part, prefix in (("features", ""), ("predictions", "prediction: ")):
        for name, f in body.get(part, {}).items():
            value = f.get("value")
            rows.append(
                f"<tr class='{e(f.get('verdict', ''))}'><td>{e(prefix + name)}</td><td>{e(f.get('kind', ''))}</td>"
                f"<td>{e(f.get('method', ''))}</td><td>{'' if value is None else f'{value:.4g}'}</td>"
                f"<td>{e(str(f.get('warn', '')))}</td><td>{e(str(f.get('drift', '')))}</td>"
                f"<td>{e(f.get('verdict', ''))}</td></tr>"
            )
    findings = "".join(f"<li>{e(f['message'])}</li>" for f in body.get("findings", []))
    performance = _performance_html(body.get("performance"))
    when = datetime.fromtimestamp(latest.created_at / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    plots = "".join(
        f"<figure id='{e(stem)}'>{_svg(fig)}<figcaption>{e(caption)}</figcaption></figure>"
        for stem, caption, fig in _figures(results)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(latest.uri)}: {e(latest.status)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td, th {{ padding: .25rem .75rem; border-bottom: 1px solid #ddd; }}
tr.drift td {{ background: #fbe3e3; }} tr.warn td {{ background: #fdf3d8; }}
.status {{ font-weight: bold; padding: .1rem .5rem; border-radius: .3rem; background: #eee; }}
figure {{ display: inline-block; margin: 1rem 1rem 0 0; }} svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>{e(latest.uri)} <span class="status" id="status">{e(latest.status)}</span></h1>
<p>{latest.rows} rows from {e(latest.source)}, checked {e(when)}; {len(body.get("drifted", []))} of
{len(body.get("features", {}))} features drift ({body.get("share_drifted", 0.0):.0%});
{len(results)} check(s) in the history.</p>
<table><thead><tr><th>column</th><th>kind</th><th>method</th><th>value</th><th>warn</th><th>drift</th><th>verdict</th></tr>
</thead><tbody>{"".join(rows)}</tbody></table>
{performance}
{f"<h2>Findings</h2><ul>{findings}</ul>" if findings else ""}
<h2>Plots</h2>
{plots}
</body></html>
"""
