"""Explanations: ``covex explain`` and ``POST /explain`` against calling ``shap`` directly on the same model.

Side by side in one run, on a 100-tree random forest regressor (depth 8) trained on 10,000 rows of 10
features and registered in an embedded registry:

1. the **floor**: ``shap.TreeExplainer(forest).shap_values(X)`` on the 10,000 rows, shap's own
   additivity check included (what any implementation must at least do);
2. **Covex**: ``covex.explain.explain`` on the version as loaded from the registry (``ScoringModel``:
   the same forest inside an MLflow pyfunc), its own additivity check included; and
   ``explain_version`` (load, explain, store the importances on the version);
3. **serving**: ``covex serve --explain``, one row per request: ``/explain`` p50 and p99 next to
   ``/invocations`` on the same server.

    .venv/bin/python benchmarks/explain.py            # ~3 minutes
    .venv/bin/python benchmarks/explain.py --quick    # 2,000 rows

Correctness in the same run: Covex's contributions equal shap's. Ends with one JSON line; ``_ratio``
keys are Covex's advantage (the floor's seconds over Covex's: 1.0 is the floor itself).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import harness

FEATURES = [f"x{i}" for i in range(10)]
REQUESTS = 200


def data(rows: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    y = 3 * x["x0"] + 2 * x["x1"] * x["x2"] - x["x3"] + rng.normal(0, 0.3, rows)
    return x, y


def quiet_shap() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shap

    return shap


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    """The best of ``repeat`` runs (the machine is shared: the least disturbed run is the cost)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def serve_latency(registry: str, x: Any, tmp: Path) -> dict[str, float]:
    import httpx

    port = harness.free_port()
    argv = [str(harness.tool("covex")), "--uri", registry, "serve", "models:/forest/1", "--port", str(port)]
    server = harness.Server("covex serve", [*argv, "--explain", "--no-record"], port, "/ready", tmp / "serve.log")
    server.start()
    out: dict[str, float] = {}
    try:
        server.wait_ready()
        rows = x.head(REQUESTS).values.tolist()
        with httpx.Client(timeout=60) as http:
            for path in ("/invocations", "/explain"):
                body = {"dataframe_split": {"columns": FEATURES, "data": [rows[0]]}}
                for _ in range(10):  # warm up
                    http.post(server.url + path, json=body).raise_for_status()
                took = []
                for row in rows:
                    body = {"dataframe_split": {"columns": FEATURES, "data": [row]}}
                    started = time.perf_counter()
                    http.post(server.url + path, json=body).raise_for_status()
                    took.append((time.perf_counter() - started) * 1000)
                took.sort()
                name = path.strip("/")
                out[f"{name}_p50_ms"] = statistics.median(took)
                out[f"{name}_p99_ms"] = harness.percentile(took, 0.99)
    finally:
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 rows")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (the best counts)")
    args = parser.parse_args()
    rows = 2_000 if args.quick else 10_000
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    import covex
    from covex.batch.model import ScoringModel
    from covex.explain import explain, explain_version
    from covex.ml import log_model

    shap = quiet_shap()
    x, y = data(rows, seed=0)
    forest = RandomForestRegressor(n_estimators=100, max_depth=8, random_state=0, n_jobs=1).fit(x, y)
    with tempfile.TemporaryDirectory(prefix="covex-bench-explain-") as name:
        tmp = Path(name)
        registry = str(tmp / "registry")
        with covex.Client(registry) as c, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            log_model(c, forest, "forest", input_example=x.head())
            model = ScoringModel.load(c, "models:/forest/1")
            harness.log(f"floor: shap.TreeExplainer on {rows:,} rows x {len(FEATURES)} features")
            floor_s, floor_values = timed(lambda: shap.TreeExplainer(forest).shap_values(x), args.repeat)
            harness.log("covex.explain.explain on the registered version")
            covex_s, explanation = timed(lambda: explain(model, x), args.repeat)
            harness.log("explain_version: load, explain, store")
            stored_s, _ = timed(lambda: explain_version(c, "models:/forest/1", x, rows=None, force=True), 1)
        harness.log(f"covex serve --explain: {REQUESTS} one-row requests to /invocations and to /explain")
        served = serve_latency(registry, x, tmp)
    same = bool(np.allclose(explanation.contributions, floor_values, atol=1e-8))
    print("\n| rows | shap directly (floor) | `covex.explain.explain` | floor / Covex | explain_version |")
    print("|---|---|---|---|---|")
    print(f"| {rows:,} | {floor_s:.2f} s | {covex_s:.2f} s | {floor_s / covex_s:.2f} | {stored_s:.2f} s |")
    print("\n| one row | p50 | p99 |")
    print("|---|---|---|")
    for name in ("invocations", "explain"):
        print(f"| /{name} | {served[f'{name}_p50_ms']:.2f} ms | {served[f'{name}_p99_ms']:.2f} ms |")
    print(f"\nCovex's contributions equal shap's: {same}\n")
    summary = {
        "benchmark": "explain",
        "rows": rows,
        "trees": 100,
        "floor_s": round(floor_s, 3),
        "covex_s": round(covex_s, 3),
        "explain_version_s": round(stored_s, 3),
        "floor_ratio": round(floor_s / covex_s, 3),
        **{k: round(v, 2) for k, v in served.items()},
        "correct": same,
        **harness.machine(["shap", "scikit-learn", "numpy"]),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
