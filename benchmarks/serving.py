"""Real-time scoring: ``covex serve`` against ``mlflow models serve --env-manager local``, side by side.

The same model files (a scikit-learn logistic regression on 8 features, registered in a fresh Covex
data folder; MLflow serves the very folder Covex verified), one worker each, 1-row and 100-row
``dataframe_split`` requests. The load comes from a separate process (an asyncio httpx loop): a
sequential phase for latency (p50/p99, and the overhead over in-process ``predict`` on the same rows)
and a phase at fixed concurrency for throughput. The sides take turns going first. Every answer is
checked against the in-process predictions; a wrong or failed one counts as an error.

    .venv/bin/python benchmarks/serving.py            # about 2 minutes
    .venv/bin/python benchmarks/serving.py --quick    # a smoke run

The last stdout line is one JSON object; keys ending in ``_ratio`` are Covex's advantage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import harness

FEATURES = [f"f{i}" for i in range(8)]


def make_model(tmp: Path) -> tuple[Path, Path, Any]:
    """A Covex data folder with ``bench@champion``; the verified model folder; the loaded pyfunc model."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import covex
    from covex.ml import fetch_model, log_model

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(5000, 8)), columns=FEATURES)
    y = (X.f0 + X.f1 * 0.5 - X.f2 > 0).astype(int)
    data = tmp / "covex-data"
    with warnings.catch_warnings(), covex.Client(data) as c:
        warnings.simplefilter("ignore")
        log_model(c, LogisticRegression().fit(X, y), "bench", input_example=X.head(5), aliases=["champion"])
        folder = fetch_model(c, "models:/bench@champion", tmp / "cache")
        model = covex.load_model("models:/bench@champion", client=c, cache_dir=tmp / "cache")
    return data, folder, model


def bodies(rows: int) -> tuple[bytes, Any]:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(np.random.default_rng(rows).normal(size=(rows, 8)), columns=FEATURES)
    return json.dumps({"dataframe_split": frame.to_dict(orient="split") | {"index": None}}).encode(), frame


def in_process(model: Any, frame: Any, n: int) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(20):
            model.predict(frame)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            model.predict(frame)
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"p50_ms": round(harness.percentile(times, 0.5), 3), "p99_ms": round(harness.percentile(times, 0.99), 3)}


# -- the load generator (a separate process) ---------------------------------------------------


async def _load(url: str, body: bytes, expected: list[Any], total: int, concurrency: int) -> dict[str, Any]:
    import httpx

    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    first_error = ""
    queue = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        for _ in range(20):
            await http.post(url, content=body, headers=headers)

        async def worker() -> None:
            nonlocal errors, first_error
            for _ in queue:
                start = time.perf_counter()
                try:
                    r = await http.post(url, content=body, headers=headers)
                    ok = r.status_code == 200 and r.json()["predictions"] == expected
                except httpx.HTTPError as exc:
                    ok, r = False, exc  # type: ignore[assignment]
                if ok:
                    latencies.append((time.perf_counter() - start) * 1000)
                else:
                    errors += 1
                    first_error = first_error or str(getattr(r, "text", r))[:200]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "first_error": first_error,
        "req_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(harness.percentile(latencies, 0.5), 3),
        "p99_ms": round(harness.percentile(latencies, 0.99), 3),
    }


def load(url: str, body_file: Path, expected: list[Any], total: int, concurrency: int) -> dict[str, Any]:
    """Run the load generator in its own process; its result."""
    spec = json.dumps({"url": url, "body": str(body_file), "expected": expected, "total": total, "c": concurrency})
    out = subprocess.run(
        [sys.executable, __file__, "--load", spec], capture_output=True, text=True, check=True, timeout=900
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        spec = json.loads(args.load)
        body = Path(spec["body"]).read_bytes()
        print(json.dumps(asyncio.run(_load(spec["url"], body, spec["expected"], spec["total"], spec["c"]))))
        return
    sequential, concurrent = (200, 500) if args.quick else (1000, 3000)
    # mlflow models serve starts `uvicorn` through a shell: the environment's scripts must be on PATH.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    tmp = Path(tempfile.mkdtemp(prefix="covex-bench-serving-"))
    try:
        harness.log("registering the model")
        data, folder, model = make_model(tmp)
        covex_port, mlflow_port = harness.free_port(), harness.free_port()
        covex = harness.Server(
            "Covex",
            [
                str(harness.tool("covex")),
                "--uri",
                str(data),
                "serve",
                "models:/bench@champion",
                "--port",
                str(covex_port),
            ],
            covex_port,
            "/ready",
            tmp / "covex.log",
        )
        mlflow = harness.Server(
            "MLflow",
            [
                str(harness.tool("mlflow")), "models", "serve", "-m", str(folder), "--env-manager", "local",
                "-h", "127.0.0.1", "-p", str(mlflow_port), "-w", "1",
            ],
            mlflow_port,
            "/ping",
            tmp / "mlflow.log",
        )  # fmt: skip
        results: dict[str, Any] = {"machine": harness.machine(["covex", "mlflow", "scikit-learn", "uvicorn"])}
        with harness.running([covex, mlflow]):
            for rows in (1, 100):
                body, frame = bodies(rows)
                body_file = tmp / f"body-{rows}.json"
                body_file.write_bytes(body)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    expected = model.predict(frame).tolist()
                floor = in_process(model, frame, sequential)
                results[f"in_process_{rows}"] = floor
                order = [covex, mlflow] if rows == 1 else [mlflow, covex]
                for server in order:
                    url = server.url + "/invocations"
                    harness.log(f"{server.label}: {rows}-row requests")
                    seq = load(url, body_file, expected, sequential, 1)
                    par = load(url, body_file, expected, concurrent, args.concurrency)
                    seq["overhead_p50_ms"] = round(seq["p50_ms"] - floor["p50_ms"], 3)
                    results[f"{server.label.lower()}_{rows}"] = {"sequential": seq, f"c{args.concurrency}": par}
        print(
            f"\n{'':14}{'rows':>5}{'seq p50':>10}{'seq p99':>10}{'overhead':>10}{'req/s c' + str(args.concurrency):>12}"
        )
        for rows in (1, 100):
            print(f"{'in-process':14}{rows:>5}{results[f'in_process_{rows}']['p50_ms']:>10.3f}")
            for side in ("covex", "mlflow"):
                r = results[f"{side}_{rows}"]
                s, p = r["sequential"], r[f"c{args.concurrency}"]
                print(
                    f"{side:14}{rows:>5}{s['p50_ms']:>10.3f}{s['p99_ms']:>10.3f}{s['overhead_p50_ms']:>10.3f}{p['req_per_s']:>12.1f}"
                )
        summary: dict[str, Any] = {}
        for rows in (1, 100):
            c, m = results[f"covex_{rows}"], results[f"mlflow_{rows}"]
            key = f"c{args.concurrency}"
            summary[f"throughput_{rows}row_ratio"] = round(c[key]["req_per_s"] / m[key]["req_per_s"], 2)
            summary[f"p50_{rows}row_ratio"] = round(m["sequential"]["p50_ms"] / c["sequential"]["p50_ms"], 2)
            summary[f"covex_overhead_{rows}row_p50_ms"] = c["sequential"]["overhead_p50_ms"]
            summary[f"errors_{rows}row"] = sum(r[k]["errors"] for r in (c, m) for k in ("sequential", key))
        results["summary"] = summary
        print(json.dumps(results["summary"] | {"detail": results}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
