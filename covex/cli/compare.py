"""``covex compare``: versions side by side on the same rows, with intervals and paired tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from covex.cli import output
from covex.cli.context import client, listed
from covex.extras import needs_extra


def _value(m: dict[str, Any] | None) -> str:
    if not m or m.get("value") is None:
        return "-"
    if m.get("low") is None:
        return f"{m['value']:.4g}"
    return f"{m['value']:.4g} [{m['low']:.4g}, {m['high']:.4g}]"


def _difference(t: dict[str, Any]) -> str:
    if t.get("difference") is None:
        return "-"
    d = f"{t['difference']:+.4g}"
    return d if t.get("low") is None else f"{d} [{t['low']:+.4g}, {t['high']:+.4g}]"


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else escape(str(value))


def _p(t: dict[str, Any]) -> str:
    p = t.get("p_value")
    return "-" if p is None else ("<0.0001" if p < 1e-4 else f"{p:.4f}")


def show(result: Any) -> None:
    """The comparison as tables: metrics, tests against the baseline, segments, agreement, differences."""
    doc = result.as_dict()
    versions = doc["versions"]
    s = doc["settings"]
    reused = " (stored evaluations reused; --force computes again)" if doc["reused"] else ""
    target = "the labels" if s["target"] == "__label__" else repr(s["target"])
    output.console.print(
        f"{doc['rows']} rows of {escape(doc['source'])} ({doc['data_digest'][:19]}...), target {escape(target)}, "
        f"{s['task']}; {s['resamples']} resamples, {s['level']:.0%} intervals{reused}",
        highlight=False,
        soft_wrap=True,
    )
    uris = [escape(v["uri"]) for v in versions]
    table = Table("metric", *[f"{u}{' (baseline)' if i == 0 else ''}" for i, u in enumerate(uris)], title="Metrics")
    for name in s["metrics"]:
        table.add_row(name, *[_value(v["metrics"].get(name)) for v in versions])
    output.console.print(table)
    for v in versions[1:]:
        tests = Table(
            "metric", "difference \\[interval]", "test", "p", "verdict", title=f"{escape(v['uri'])} - {uris[0]}"
        )
        against = v.get("against_baseline", {})
        for name in [m for m in s["metrics"] if m in against]:
            t = against[name]
            tests.add_row(name, _difference(t), t.get("test") or "-", _p(t), t.get("verdict", "-"))
        output.console.print(tests)
        for r in v.get("reversals", []):
            where = escape(", ".join(f"{k}={val}" for k, val in r["segment"].items()))
            output.console.print(
                f"[yellow]reversal:[/] on {r['metric']}, {escape(v['uri'])} is {r['overall']:+.4g} overall but "
                f"{r['difference']:+.4g} where {where} (p={r['p_value']:.4f})",
                highlight=False,
                soft_wrap=True,
            )
    if s["by"]:
        seg = Table("segment", "rows", "metric", *uris, *[f"{u} vs baseline" for u in uris[1:]], title="Segments")
        groups = [v["segments"]["groups"] for v in versions]
        for i, g in enumerate(groups[0]):
            label = escape(", ".join(f"{k}={val}" for k, val in g["segment"].items()))
            for name in s["metrics"]:
                values = [_value(gs[i]["metrics"].get(name)) for gs in groups]
                found = [gs[i].get("against_baseline", {}).get(name, {}) for gs in groups[1:]]
                verdicts = [f"{_difference(t)} p={_p(t)} {t.get('verdict', '')}".strip() for t in found]
                seg.add_row(label, str(g["rows"]), name, *values, *verdicts)
        output.console.print(seg)
    facts = Table("version", "agreement with baseline", "latency per row", "size", title="Agreement, latency, size")
    for v in versions:
        a = v.get("agreement") or {}
        agree = (
            f"{a['share']:.2%} same label" + (f", {a['differing']} rows differ" if a.get("differing") else "")
            if a.get("share") is not None
            else (f"mean |diff| {a['mean_abs_difference']:.4g}" if a.get("mean_abs_difference") is not None else "-")
        )
        latency = v.get("latency_ms_per_row")
        facts.add_row(
            escape(v["uri"]), agree, "-" if latency is None else f"{latency:.4f} ms", output._size(v["size_bytes"])
        )
    output.console.print(facts)
    for v in versions[1:]:
        rows = v.get("disagreements") or []
        if rows:
            top = Table(
                "row", "target", uris[0], escape(v["uri"]), title=f"Rows where {escape(v['uri'])} disagrees most"
            )
            for r in rows[:5]:
                base, this = r["baseline"], r["this"]
                if "baseline_score" in r:
                    base, this = f"{base} ({r['baseline_score']:.3f})", f"{this} ({r['this_score']:.3f})"
                top.add_row(_cell(r.get("request_id", r["row"])), _cell(r["target"]), _cell(base), _cell(this))
            output.console.print(top)
        changed = [
            f"{part} {key}: {c['baseline']!r} -> {c['this']!r}"
            for part, entries in (v.get("differences") or {}).items()
            for key, c in entries.items()
        ]
        if changed:
            output.console.print(f"[bold]{escape(v['uri'])} differs from the baseline in[/]", highlight=False)
            for line in changed[:30]:
                output.console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    for v in versions:
        for note in v.get("notes", []):
            output.console.print(f"note ({v['uri']}): {note}", highlight=False, markup=False, soft_wrap=True)


def compare(
    uris: Annotated[list[str], typer.Argument(help="The versions to compare; the first is the baseline.")],
    data: Annotated[
        str | None, typer.Option("--data", help="Parquet or CSV file (or folder) of the rows, with the target.")
    ] = None,
    target: Annotated[str | None, typer.Option("--target", help="The column holding the true outcome.")] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="classification or regression (default: read off the target).")
    ] = None,
    by: Annotated[list[str] | None, typer.Option("--by", help="Also compare within each value of this column.")] = None,
    metrics: Annotated[
        list[str] | None, typer.Option("--metrics", help="Metrics to compute (comma-separated; default: all).")
    ] = None,
    positive: Annotated[str | None, typer.Option("--positive", help="The positive class (default: the last).")] = None,
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap resamples for the intervals.")] = 1000,
    level: Annotated[float, typer.Option("--level", help="Confidence level of the intervals.")] = 0.95,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the resampling.")] = 0,
    data_tag: Annotated[
        list[str] | None, typer.Option("--data-tag", help="Label the data (e.g. holdout): policy gates name it.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Compute again even if stored evaluations match.")] = False,
    online: Annotated[
        bool, typer.Option("--online", help="Compare on the logged requests both versions scored, with labels.")
    ] = False,
    since: Annotated[str | None, typer.Option("--since", help="With --online: the window, e.g. 7d.")] = None,
    log: Annotated[str | None, typer.Option("--log", help="With --online: the inference log folder or URL.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write an HTML report here.")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Write the report's plots as PNG files here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Compare versions on the same rows: each metric with a bootstrap interval, and each challenger
    against the first URI (the baseline) with a paired test, overall and per segment (--by).

    The result is stored on each version as an evaluation (`covex versions show`, the card, the API);
    the same comparison on the same data is reused, not computed again (--force recomputes).
    """
    from covex.domain.errors import InvalidInput

    with needs_extra("'covex compare'"):
        from covex.evaluation import compare as run
        from covex.evaluation import report

        if out is not None:
            report.check_out(out)  # before the comparison: a bad path loses no work
        if png is not None:
            report.check_png(png)
        c = client()
        if online:
            if data is not None:
                raise InvalidInput("'--online' compares on the inference log: leave out '--data'")
            from covex.evaluation.online import compare_online

            result = compare_online(
                c,
                uris,
                since=since,
                log=log,
                task=task,
                metrics=listed(metrics) or None,
                resamples=resamples,
                level=level,
                seed=seed,
                positive=positive,
                force=force,
            )
        else:
            if data is None or target is None:
                raise InvalidInput("'--data' and '--target' are required (or '--online' to use the inference log)")
            if since is not None or log is not None:
                raise InvalidInput("'--since' and '--log' go with '--online'")
            result = run(
                c,
                uris,
                data,
                target,
                task=task,
                by=listed(by),
                metrics=listed(metrics) or None,
                resamples=resamples,
                level=level,
                seed=seed,
                positive=positive,
                force=force,
                data_tags=listed(data_tag),
            )
        if out is not None or png is not None:
            curves = None
            if result.scored:
                curves = report.curves_from(result.scored, result.truth, result.settings.task, result.positive)
            if out is not None:
                report.write_html(result, curves, out)
            if png is not None:
                report.write_pngs(result, curves, png)
    if as_json:
        output.emit_json(result.as_dict())
    else:
        show(result)
