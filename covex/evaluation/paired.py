"""The numbers of a comparison: metrics with bootstrap intervals, paired tests against the baseline,
the same per segment, agreement, and the rows where two versions disagree most.

One draw of bootstrap counts per resample serves every version, metric and segment, so every
difference is paired (the same rows, drawn as often, for both versions). Accuracy is tested with
McNemar's test and a two-class ROC AUC with DeLong's; every other metric with the paired bootstrap.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from covex.evaluation.metrics import HIGHER_IS_BETTER, Draw, Outputs, classification, regression
from covex.evaluation.statistics import PairedTest, delong, mcnemar

if TYPE_CHECKING:
    from covex.evaluation.compare import Settings
    from covex.evaluation.scoring import Scored

TOP_DISAGREEMENTS = 10
BLOCK = 25  # resamples drawn from one seeded stream
MAX_THREADS = 8


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _plain(value: Any) -> Any:
    """A numpy or pandas scalar as a JSON value."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return _number(value)
    return value if isinstance(value, int | str | bool) or value is None else str(value)


class _Group:
    """One set of rows (all, or a segment) with every version's outputs on them and the resampled values."""

    def __init__(self, label: dict[str, str] | None, rows: Any, outputs: list[Outputs]) -> None:
        self.label, self.rows, self.outputs = label, rows, outputs
        self.points = [o.values() for o in outputs]
        self.draws: list[dict[str, list[float]]] = [{name: [] for name in p} for p in self.points]

    def measure(self, whole: Draw) -> list[dict[str, float]]:
        """Every version's metrics on this group's rows, weighted by one resample."""
        part = whole if self.rows is None else whole.subset(self.rows)
        return [out.values(part) for out in self.outputs]

    def keep(self, measured: list[dict[str, float]]) -> None:
        for values, draws in zip(measured, self.draws, strict=True):
            for name, value in values.items():
                draws[name].append(value)


def _resample(groups: list[_Group], rows: int, seed: int, block: int, size: int) -> list[list[list[dict[str, float]]]]:
    """Resamples ``block * BLOCK`` onwards (``size`` of them), from their own seeded stream: the same
    numbers whichever thread draws them."""
    import numpy as np

    rng = np.random.default_rng([seed, block])
    out = []
    for _ in range(size):
        draw = Draw(np.bincount(rng.integers(0, rows, rows), minlength=rows).astype(np.uint8))
        out.append([group.measure(draw) for group in groups])
    return out


def _bootstrap(groups: list[_Group], rows: int, resamples: int, seed: int) -> None:
    """Draw the resamples in blocks, on as many threads as there are cores (numpy releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    blocks = [(b, min(BLOCK, resamples - b * BLOCK)) for b in range((resamples + BLOCK - 1) // BLOCK)]
    workers = max(1, min(len(blocks), os.cpu_count() or 1, MAX_THREADS))
    with ThreadPoolExecutor(workers) as pool:
        for measured_block in pool.map(lambda bs: _resample(groups, rows, seed, *bs), blocks):
            for measured in measured_block:
                for group, values in zip(groups, measured, strict=True):
                    group.keep(values)


def _outputs(s: Scored, y: Any, rows: Any, settings: Settings, classes: list[str], positive: str) -> Outputs:
    def pick(values: Any) -> Any:
        return values if rows is None else values[rows]

    if settings.task == "classification":
        scores = None if s.scores is None else pick(s.scores)
        return classification(pick(y), pick(s.hard), scores, classes, positive, settings.metrics)
    return regression(pick(y), pick(s.hard), settings.metrics)


def _segments(frame: Any, by: Sequence[str]) -> tuple[list[tuple[dict[str, str], Any]], list[str]]:
    """The row indexes of each segment (the largest ``MAX_SEGMENTS``), and notes on what was left out."""
    import numpy as np

    from covex.evaluation.compare import MAX_SEGMENTS

    if not by:
        return [], []
    # Grouped on the values themselves (a missing value is a segment of its own), never on joined text.
    groups = frame.groupby(list(by), dropna=False, sort=False).indices
    ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    notes = []
    if len(ranked) > MAX_SEGMENTS:
        notes.append(f"{len(ranked)} segments: the {MAX_SEGMENTS} largest are shown")
        ranked = ranked[:MAX_SEGMENTS]
    out = []
    for key, rows in ranked:
        if len(rows) < 2:
            continue
        values = key if isinstance(key, tuple) else (key,)
        label = {c: "(missing)" if _missing(v) else str(v) for c, v in zip(by, values, strict=True)}
        out.append((label, np.sort(np.asarray(rows))))
    if ranked and not out:
        notes.append("every segment has a single row: none is compared")
    return out, notes


def _missing(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _interval(values: list[float], point: float, level: float) -> dict[str, float | None]:
    import numpy as np

    finite = np.asarray([v for v in values if math.isfinite(v)])
    low = high = None
    if len(finite):
        tail = (1 - level) / 2 * 100
        low, high = (_number(x) for x in np.percentile(finite, [tail, 100 - tail]))
    return {"value": _number(point), "low": low, "high": high}


def _bootstrap_test(a: list[float], b: list[float], point: float, level: float) -> PairedTest | None:
    import numpy as np

    d = np.asarray(b) - np.asarray(a)
    d = d[np.isfinite(d)]
    if not len(d) or not math.isfinite(point):
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(d, [tail, 100 - tail])
    below = (np.sum(d < 0) + 0.5 * np.sum(d == 0)) / len(d)
    # Never 0: with B resamples none crossing 0 says only p < 1/(B + 1).
    p_value = min(1.0, max(2 * min(below, 1 - below), 1 / (len(d) + 1)))
    return PairedTest("paired bootstrap", float(point), float(low), float(high), float(p_value))


def _verdict(name: str, test: PairedTest, level: float) -> str:
    if not test.p_value < 1 - level:
        return "no significant difference"
    better = test.difference > 0 if name in HIGHER_IS_BETTER else test.difference < 0
    return "better" if better else "worse"


def _against(
    group: _Group, i: int, settings: Settings, y: Any, base: Scored, this: Scored, positive: str
) -> dict[str, Any]:
    """Challenger ``i`` against the baseline (0) on ``group``'s rows: each metric's difference and test."""
    rows = group.rows if group.rows is not None else slice(None)
    out: dict[str, Any] = {}
    for name, point in group.points[i].items():
        difference = point - group.points[0].get(name, float("nan"))
        test: PairedTest | None = None
        try:
            if name == "accuracy":
                test = mcnemar(y[rows], base.hard[rows], this.hard[rows], level=settings.level)
            elif name == "roc_auc" and base.scores is not None and base.scores.ndim == 1 and this.scores is not None:
                test = delong(
                    y[rows] == positive, base.scores[rows], this.scores[rows], positive=True, level=settings.level
                )
        except ValueError:
            test = None
        if test is None and settings.resamples:
            test = _bootstrap_test(group.draws[0].get(name, []), group.draws[i][name], difference, settings.level)
        if test is None:
            out[name] = {"difference": _number(difference), "test": None, "p_value": None, "low": None, "high": None}
            continue
        out[name] = {
            "difference": _number(test.difference),
            "low": _number(test.low),
            "high": _number(test.high),
            "test": test.test,
            "p_value": _number(test.p_value),
            "verdict": _verdict(name, test, settings.level),
        }
    return out


def _agreement(base: Scored, this: Scored, y: Any, task: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    import numpy as np

    if task == "classification":
        same = base.hard == this.hard
        agreement: dict[str, Any] = {"share": _number(np.mean(same)), "differing": int(np.sum(~same))}
        if base.scores is not None and this.scores is not None and base.scores.shape == this.scores.shape:
            gap = np.abs(this.scores - base.scores)
            gap = gap.sum(axis=1) / 2 if gap.ndim == 2 else gap
        else:
            gap = (base.hard != this.hard).astype(float)
    else:
        gap = np.abs(this.hard - base.hard)
        corr = np.corrcoef(base.hard, this.hard)[0, 1] if np.std(base.hard) and np.std(this.hard) else float("nan")
        agreement = {"mean_abs_difference": _number(gap.mean()), "correlation": _number(corr)}
    top = np.argsort(-gap, kind="stable")[:TOP_DISAGREEMENTS]
    rows = []
    for r in top:
        if gap[r] <= 0:
            break
        entry = {"row": int(r), "target": _plain(y[r]), "baseline": _plain(base.hard[r]), "this": _plain(this.hard[r])}
        if task == "classification" and base.scores is not None and this.scores is not None and base.scores.ndim == 1:
            entry |= {"baseline_score": _number(base.scores[r]), "this_score": _number(this.scores[r])}
        rows.append(entry)
    return agreement, rows


def _reversals(overall: dict[str, Any], segments: list[dict[str, Any]], level: float) -> list[dict[str, Any]]:
    """Segments where the challenger's difference is significant and of the other sign than overall."""
    found = []
    for seg in segments:
        for name, test in seg.get("against_baseline", {}).items():
            whole = overall.get(name, {}).get("difference")
            d, p = test.get("difference"), test.get("p_value")
            if whole is None or d is None or p is None or not whole or not d:
                continue
            if (whole > 0) != (d > 0) and p < 1 - level:
                found.append(
                    {"segment": seg["segment"], "metric": name, "overall": whole, "difference": d, "p_value": p}
                )
    return found


def evaluate(
    scored: list[Scored], y: Any, frame: Any, settings: Settings, classes: list[str], positive: str
) -> list[dict[str, Any]]:
    """The evaluation body of each version (baseline first), ready to store."""
    import numpy as np

    y = np.asarray(y, dtype=object) if settings.task == "classification" else np.asarray(y, dtype=float)
    rows = len(y)
    segments, notes = _segments(frame, settings.by)
    groups = [
        _Group(label, idx, [_outputs(s, y, idx, settings, classes, positive) for s in scored])
        for label, idx in [(None, None), *segments]
    ]
    _bootstrap(groups, rows, settings.resamples, settings.seed)
    bodies = []
    base = scored[0]
    for i, s in enumerate(scored):
        overall = groups[0]
        body: dict[str, Any] = {
            "task": settings.task,
            "target": settings.target,
            "positive": positive if settings.task == "classification" else None,
            "level": settings.level,
            "resamples": settings.resamples,
            "seed": settings.seed,
            "baseline": base.version.uri,
            "metrics": {n: _interval(overall.draws[i][n], p, settings.level) for n, p in overall.points[i].items()},
            "latency_ms_per_row": _number(s.latency_ms_per_row),
            "size_bytes": int(s.version.size),
            "notes": sorted(set(notes + overall.outputs[i].notes)),
        }
        seg_docs = []
        for g in groups[1:]:
            doc: dict[str, Any] = {
                "segment": g.label,
                "rows": len(g.rows),
                "metrics": {n: _interval(g.draws[i][n], p, settings.level) for n, p in g.points[i].items()},
            }
            if i:
                doc["against_baseline"] = _against(g, i, settings, y, base, s, positive)
            seg_docs.append(doc)
        body["segments"] = {"by": list(settings.by), "groups": seg_docs}
        if i:
            body["against_baseline"] = _against(overall, i, settings, y, base, s, positive)
            body["agreement"], body["disagreements"] = _agreement(base, s, y, settings.task)
            body["reversals"] = _reversals(body["against_baseline"], seg_docs, settings.level)
        bodies.append(body)
    return bodies
