"""Comparisons: ``covex compare`` of 3 versions on 1M rows with 1,000 bootstrap resamples.

Side by side in one run, on the same generated data (a binary target that depends on 4 of 8
features) and the same three registered versions (logistic regression, a 30-tree random forest, a
logistic regression on half the features):

1. the **floor**: score the three models on the rows once and compute each metric once with
   scikit-learn (the least work any comparison does: no interval, no test);
2. **Covex**: ``covex compare`` as a process, timed, with its peak RSS; then the same command again,
   which finds the stored evaluations (the cost of reusing one);
3. the **naive bootstrap** a user writes by hand: per resample, index the rows and call scikit-learn's
   metrics for each version (timed on a few resamples, extrapolated to the same count).

    .venv/bin/python benchmarks/compare.py              # 1M rows, 1,000 resamples (~5 minutes)
    .venv/bin/python benchmarks/compare.py --quick      # 100k rows, 200 resamples

Correctness in the same run: Covex's point values equal scikit-learn's. Ends with one JSON line;
``_ratio`` keys are Covex's advantage (the other side's seconds over Covex's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import harness

FEATURES = [f"x{i}" for i in range(8)]
PEAK = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "took = time.perf_counter() - t\n"
    "sys.stderr.write(r.stderr[-3000:])\n"
    "open(sys.argv[0] + '.out', 'w').write(r.stdout)\n"
    "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, took)\n"
)


def generate(rows: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    logit = x[:, 0] + 0.8 * x[:, 1] - 0.6 * x[:, 2] + 0.4 * x[:, 3] * x[:, 0]
    y = (logit + rng.logistic(size=rows) > 0).astype(np.int64)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["region"] = rng.choice(["north", "south", "east", "west"], rows)
    frame["churned"] = y
    return frame


def register(tmp: Path) -> tuple[str, list[Any]]:
    """An embedded registry with ``bench`` versions 1 to 3, trained on 20k rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    import covex
    from covex.ml import log_model

    train = generate(20_000, seed=1)
    x, y = train[FEATURES], train["churned"]
    half = ColumnTransformer([("keep", "passthrough", FEATURES[:4:2] + FEATURES[4:])])
    models = [
        LogisticRegression(max_iter=500).fit(x, y),
        RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0, n_jobs=1).fit(x, y),
        make_pipeline(half, LogisticRegression(max_iter=500)).fit(x, y),
    ]
    with covex.Client(tmp / "registry") as c, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in models:
            log_model(c, m, "bench", input_example=x.head())
    return str(tmp / "registry"), models


def floor(frame: Any, models: list[Any]) -> tuple[float, list[dict[str, float]]]:
    from sklearn import metrics as m

    started = time.perf_counter()
    out = []
    y = frame["churned"].to_numpy()
    for model in models:
        proba = model.predict_proba(frame[FEATURES])[:, 1]
        hard = (proba >= 0.5).astype(int)
        out.append(
            {
                "accuracy": m.accuracy_score(y, hard),
                "precision": m.precision_score(y, hard),
                "recall": m.recall_score(y, hard),
                "f1": m.f1_score(y, hard),
                "roc_auc": m.roc_auc_score(y, proba),
                "log_loss": m.log_loss(y, proba),
            }
        )
    return time.perf_counter() - started, out


def naive(frame: Any, models: list[Any], resamples: int) -> float:
    """Seconds per resample of the hand-written bootstrap: index the rows, call every metric per version."""
    import numpy as np
    from sklearn import metrics as m

    y = frame["churned"].to_numpy()
    probas = [model.predict_proba(frame[FEATURES])[:, 1] for model in models]
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        for p in probas:
            yy, pp = y[idx], p[idx]
            hard = (pp >= 0.5).astype(int)
            m.accuracy_score(yy, hard), m.precision_score(yy, hard), m.recall_score(yy, hard)
            m.f1_score(yy, hard), m.roc_auc_score(yy, pp), m.log_loss(yy, pp)
    return (time.perf_counter() - started) / resamples


def covex_compare(registry: str, data: Path, resamples: int, tmp: Path) -> dict[str, Any]:
    wrapper = tmp / "peak.py"
    wrapper.write_text(PEAK)
    cmd = [str(harness.tool("covex")), "--uri", registry, "compare", "models:/bench/1", "models:/bench/2"]
    cmd += ["models:/bench/3", "--data", str(data), "--target", "churned", "--by", "region"]
    cmd += ["--resamples", str(resamples), "--json"]
    done = subprocess.run([sys.executable, str(wrapper), *cmd], capture_output=True, text=True, check=True)
    code, peak_kib, seconds = done.stdout.split()
    if code != "0":
        raise SystemExit(f"covex compare failed:\n{done.stderr}")
    doc = json.loads((tmp / "peak.py.out").read_text())
    return {"seconds": float(seconds), "peak_mib": int(peak_kib) / 1024, "doc": doc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows and 200 resamples")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--resamples", type=int, default=None)
    parser.add_argument("--naive-resamples", type=int, default=5, help="resamples the naive bootstrap is timed on")
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    resamples = args.resamples or (200 if args.quick else 1000)
    with tempfile.TemporaryDirectory(prefix="covex-bench-compare-") as name:
        tmp = Path(name)
        harness.log("registering three versions")
        registry, models = register(tmp)
        frame = generate(rows, seed=7)
        data = tmp / "holdout.parquet"
        frame.to_parquet(data, index=False)
        harness.log(f"floor: scoring and metrics once on {rows:,} rows")
        floor_s, expected = floor(frame, models)
        harness.log(f"covex compare: 3 versions, {rows:,} rows, {resamples} resamples")
        first = covex_compare(registry, data, resamples, tmp)
        harness.log("covex compare again (reuses the stored evaluations)")
        again = covex_compare(registry, data, resamples, tmp)
        harness.log(f"naive bootstrap: timed on {args.naive_resamples} resamples")
        naive_per = naive(frame, models, args.naive_resamples)
    got = [v["metrics"] for v in first["doc"]["versions"]]
    correct = all(
        abs(g[name]["value"] - want) < 1e-6 for g, e in zip(got, expected, strict=True) for name, want in e.items()
    )
    naive_s = naive_per * resamples
    print("\n| rows | resamples | floor (score, metrics once) | `covex compare` | peak RSS | reuse | naive bootstrap |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {rows:,} | {resamples:,} | {floor_s:.1f} s | {first['seconds']:.1f} s | {first['peak_mib']:.0f} MiB "
        f"| {again['seconds']:.2f} s | {naive_s:.0f} s (extrapolated from {args.naive_resamples}) |"
    )
    print(f"\nCovex's point values equal scikit-learn's: {correct}; reused: {again['doc']['reused']}\n")
    summary = {
        "benchmark": "compare",
        "rows": rows,
        "resamples": resamples,
        "versions": 3,
        "floor_s": round(floor_s, 2),
        "covex_s": round(first["seconds"], 2),
        "covex_peak_mib": round(first["peak_mib"]),
        "reuse_s": round(again["seconds"], 2),
        "naive_bootstrap_s": round(naive_s, 1),
        "naive_ratio": round(naive_s / first["seconds"], 1),
        "reuse_ratio": round(first["seconds"] / again["seconds"], 1),
        "floor_ratio": round(floor_s / first["seconds"], 3),
        "correct": correct and bool(again["doc"]["reused"]),
        **harness.machine(["numpy", "scikit-learn"]),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
