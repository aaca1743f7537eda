"""``covex explain``: SHAP explanations of a version, stored on it, drawn on request."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from covex.cli import output
from covex.cli.context import client
from covex.extras import needs_extra, require_extra


def explain(
    uri: Annotated[str, typer.Argument(help="The version to explain (models:/churn@champion, models:/churn/3).")],
    data: Annotated[str, typer.Option("--data", help="Parquet or CSV file (or folder) of the rows to explain.")],
    rows: Annotated[int, typer.Option("--rows", help="Explain this many rows of the data (sampled).")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the row sample and of the explainer.")] = 0,
    top: Annotated[int, typer.Option("--top", help="Features kept on the version (1 to 100).")] = 20,
    row: Annotated[
        list[int] | None, typer.Option("--row", help="Draw the waterfall of this explained row (repeatable).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write an HTML report here.")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Write the plots as PNG files here.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Compute again even if a stored explanation matches.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stored record as JSON.")] = False,
) -> None:
    """Explain a version with SHAP: each feature's contribution to each row's output, and the mean
    absolute contribution per feature (global importance), stored on the version and shown by the card.

    The explainer fits the model: tree SHAP for tree ensembles, linear SHAP for linear models, and the
    exact or permutation explainer (with a background drawn from the version's drift reference)
    otherwise. `--out` and `--png` draw the importance bar chart, the beeswarm and per-row waterfalls.
    """
    from covex.domain.errors import InvalidInput

    require_extra("'covex explain'", "explain")
    if rows < 1:
        raise InvalidInput(f"'--rows' must be at least 1, got {rows}")
    if not 1 <= top <= 100:
        raise InvalidInput(f"'--top' must be from 1 to 100, got {top}")
    bad = [r for r in row or [] if not 0 <= r < rows]
    if bad:
        raise InvalidInput(f"'--row' {bad[0]} is not one of the {rows} rows explained (0 to {rows - 1})")
    with needs_extra("'covex explain'"):
        from covex.evaluation import report
        from covex.evaluation.scoring import read_frame
        from covex.explain import plots
        from covex.explain.stored import explain_version

        if out is not None:
            report.check_out(out)
        if png is not None:
            report.check_png(png)
        frame = read_frame(data)
        bad = [r for r in row or [] if r >= len(frame)]
        if bad:
            raise InvalidInput(
                f"'--row' {bad[0]} is not one of the {len(frame)} rows of {data} (0 to {len(frame) - 1})"
            )
        drawing = out is not None or png is not None
        done = explain_version(client(), uri, frame, source=data, rows=rows, seed=seed, top=top, force=force or drawing)
        if done.explanation is not None:
            waterfalls = list(row or [0])
            if png is not None:
                png.mkdir(parents=True, exist_ok=True)
                plots.write_plots(done.explanation, png, rows=waterfalls)
            if out is not None:
                plots.write_report(done.explanation, out, rows=waterfalls)
    e = done.evaluation
    if as_json:
        output.emit_json(e)
        return
    body = e.body
    reused = " (stored explanation reused; --force computes again)" if done.reused else ""
    output.console.print(
        f"{e.uri}: {body.get('explainer')} explainer, {body.get('output')} explained on {e.rows} rows of "
        f"{e.source}{reused}; base value {body.get('base_value', 0):.4g}, additivity error "
        f"{body.get('additivity_max_error', 0):.2g}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    table = Table("feature", "mean |SHAP|", title="Global importance")
    for item in body.get("importances", []):
        table.add_row(escape(str(item["feature"])), f"{item['mean_abs']:.4g}")
    output.console.print(table)
    if body.get("importances_left_off"):
        output.console.print(f"and {body['importances_left_off']} more features", highlight=False)
