"""Real-time scoring: ``covex serve`` against ``mlflow models serve --env-manager local``, side by side.

The same model files (registered in a fresh Covex data folder; MLflow serves the very folder Covex
verified): a scikit-learn logistic regression on 8 features and a 100-tree random forest on the
same features. Both servers run with 1 worker, then both with 2; 1-row and 100-row
``dataframe_split`` requests. The load comes from a separate process: ``wrk`` when it is on PATH
(Debian's ``wrk``), else an asyncio httpx loop; first one connection (latency p50/p99, and the
overhead over in-process ``predict``), then ``--concurrency`` connections (throughput). Before each
load, answers are checked against the in-process predictions; a failed request counts as an error.
The sides take turns going first.

The in-process floor calls the loaded pyfunc model's ``predict`` on a fresh copy of the request's
frame each time, as a server must (a frame scored twice reuses what pandas cached the first time).

Last, the hot swap under load: ``@champion`` of the logistic regression moves 10 times between two
versions while the httpx loop keeps 8 connections busy on ``covex serve``; every answer must be 200
and both versions must have answered.

    .venv/bin/python benchmarks/serving.py            # about 6 minutes
    .venv/bin/python benchmarks/serving.py --quick    # a smoke run: 1 worker, shorter loads

The last stdout line is one JSON object; keys ending in ``_ratio`` are Covex's advantage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import harness

FEATURES = [f"f{i}" for i in range(8)]
MODELS = {"lr": "a logistic regression", "rf": "a 100-tree random forest"}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("COVEX_BENCH_BODY"), "rb"); wrk.body = f:read("*a"); f:close()
"""


def make_models(tmp: Path) -> tuple[Path, dict[str, Path], dict[str, Any]]:
    """A Covex data folder with ``lr`` (v1, v2) and ``rf`` (v1), each @champion on v1; their folders; the models."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    import covex
    from covex.ml import fetch_model, log_model

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(5000, 8)), columns=FEATURES)
    y = (X.f0 + X.f1 * 0.5 - X.f2 > 0).astype(int)
    estimators = {
        "lr": [LogisticRegression().fit(X, y), LogisticRegression(C=0.01).fit(X, y)],
        "rf": [RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0).fit(X, y)],
    }
    data = tmp / "covex-data"
    folders, loaded = {}, {}
    with warnings.catch_warnings(), covex.Client(data) as c:
        warnings.simplefilter("ignore")
        for name, fitted in estimators.items():
            for estimator in fitted:
                log_model(c, estimator, name, input_example=X.head(5))
            c.set_alias(name, "champion", 1)
            folders[name] = fetch_model(c, f"models:/{name}/1", tmp / "cache")
            loaded[name] = covex.load_model(f"models:/{name}/1", client=c, cache_dir=tmp / "cache")
    return data, folders, loaded


def bodies(rows: int) -> tuple[bytes, Any]:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(np.random.default_rng(rows).normal(size=(rows, 8)), columns=FEATURES)
    return json.dumps({"dataframe_split": frame.to_dict(orient="split") | {"index": None}}).encode(), frame


def in_process(model: Any, frame: Any, n: int) -> dict[str, float]:
    """``predict`` on a fresh copy of ``frame`` each time (the copy is not timed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(20):
            model.predict(frame.copy())
        times = []
        for _ in range(n):
            fresh = frame.copy()
            start = time.perf_counter()
            model.predict(fresh)
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"p50_ms": round(harness.percentile(times, 0.5), 3), "p99_ms": round(harness.percentile(times, 0.99), 3)}


# -- the load generators (separate processes) ------------------------------------------------


def check_answers(url: str, body: bytes, expected: list[Any]) -> None:
    import httpx

    for _ in range(5):
        r = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=60)
        if r.status_code != 200 or r.json()["predictions"] != expected:
            raise SystemExit(f"{url} answered {r.status_code}: {r.text[:300]}")


def wrk(url: str, body_file: Path, seconds: float, concurrency: int, script: Path) -> dict[str, Any]:
    """One wrk run: requests/s, p50/p99 and the failed requests (non-2xx answers and socket errors)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
        env={**os.environ, "COVEX_BENCH_BODY": str(body_file)},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds * 4 + 60,
    ).stdout

    def millis(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        assert m, out
        return float(m[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m[2]]

    done = re.search(r"(\d+) requests in", out)
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(failed[1]) if failed else 0) + (sum(int(g) for g in sockets.groups()) if sockets else 0)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert done and rate, out
    return {
        "requests": int(done[1]),
        "errors": errors,
        "req_per_s": float(rate[1]),
        "p50_ms": round(millis("50"), 3),
        "p99_ms": round(millis("99"), 3),
    }


async def _httpx_load(url: str, body: bytes, seconds: float, concurrency: int) -> dict[str, Any]:
    """The fallback load, and the swap phase's: every answer's status and ``Covex-Model-Version``."""
    import httpx

    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    errors, first_error = 0, ""
    versions: dict[str, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors, first_error
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    r = await http.post(url, content=body, headers=headers)
                    ok = r.status_code == 200
                    version = r.headers.get("covex-model-version", "")
                    versions[version] = versions.get(version, 0) + 1
                except httpx.HTTPError as exc:
                    ok, r = False, exc  # type: ignore[assignment]
                if ok:
                    latencies.append((time.perf_counter() - start) * 1000)
                else:
                    errors += 1
                    first_error = first_error or str(getattr(r, "text", r))[:200]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "first_error": first_error,
        "versions": versions,
        "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(harness.percentile(latencies, 0.5), 3) if latencies else None,
        "p99_ms": round(harness.percentile(latencies, 0.99), 3) if latencies else None,
    }


def httpx_load(url: str, body_file: Path, seconds: float, concurrency: int) -> dict[str, Any]:
    """The httpx loop in its own process; its result."""
    spec = json.dumps({"url": url, "body": str(body_file), "seconds": seconds, "c": concurrency})
    out = subprocess.run(
        [sys.executable, __file__, "--load", spec], capture_output=True, text=True, check=True, timeout=seconds + 300
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- the runs ----------------------------------------------------------------------------------


def servers(tmp: Path, data: Path, folder: Path, model: str, workers: int) -> tuple[harness.Server, harness.Server]:
    covex_port, mlflow_port = harness.free_port(), harness.free_port()
    covex = harness.Server(
        "Covex",
        [
            str(harness.tool("covex")), "--uri", str(data), "serve", f"models:/{model}@champion",
            "--port", str(covex_port), "--workers", str(workers), "--no-record", "--poll-seconds", "0.5",
        ],
        covex_port,
        "/ready",
        tmp / f"covex-{model}-{workers}.log",
    )  # fmt: skip
    mlflow = harness.Server(
        "MLflow",
        [
            str(harness.tool("mlflow")), "models", "serve", "-m", str(folder), "--env-manager", "local",
            "-h", "127.0.0.1", "-p", str(mlflow_port), "-w", str(workers),
        ],
        mlflow_port,
        "/ping",
        tmp / f"mlflow-{model}-{workers}.log",
    )  # fmt: skip
    return covex, mlflow


def swap_under_load(data: Path, url: str, body_file: Path, moves: int) -> dict[str, Any]:
    """Move ``lr@champion`` ``moves`` times while the httpx loop runs; its result and the moves made."""
    import covex

    result: dict[str, Any] = {}
    seconds = moves * 1.5 + 3
    loader = threading.Thread(target=lambda: result.update(httpx_load(url, body_file, seconds, 8)))
    loader.start()
    made = 0
    with covex.Client(data) as c:
        time.sleep(1.5)
        for i in range(moves):
            c.set_alias("lr", "champion", 2 if i % 2 == 0 else 1)
            made += 1
            time.sleep(1.2)
    loader.join()
    return result | {"moves": made}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 worker only, shorter loads")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=None, help="length of each load (default 6, quick 2)")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        spec = json.loads(args.load)
        body = Path(spec["body"]).read_bytes()
        print(json.dumps(asyncio.run(_httpx_load(spec["url"], body, spec["seconds"], spec["c"]))))
        return
    seconds = args.seconds or (2.0 if args.quick else 6.0)
    worker_counts = [1] if args.quick else [1, 2]
    # mlflow models serve starts `uvicorn` through a shell: the environment's scripts must be on PATH.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    use_wrk = shutil.which("wrk") is not None
    tmp = Path(tempfile.mkdtemp(prefix="covex-bench-serving-"))
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT)
    key = f"c{args.concurrency}"
    try:
        harness.log("registering the models")
        data, folders, loaded = make_models(tmp)
        results: dict[str, Any] = {
            "machine": harness.machine(["covex", "mlflow", "scikit-learn", "uvicorn", "pandas"]),
            "load_generator": "wrk" if use_wrk else "httpx",
        }
        frames = {rows: bodies(rows) for rows in (1, 100)}
        for rows, (body, _) in frames.items():
            (tmp / f"body-{rows}.json").write_bytes(body)
        for model in MODELS:
            for rows, (_, frame) in frames.items():
                results[f"{model}_{rows}_in_process"] = in_process(loaded[model], frame, 300 if args.quick else 1000)
            for workers in worker_counts:
                covex, mlflow = servers(tmp, data, folders[model], model, workers)
                with harness.running([covex, mlflow]):
                    for i, rows in enumerate(frames):
                        body_file = tmp / f"body-{rows}.json"
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            expected = loaded[model].predict(frames[rows][1]).tolist()
                        order = [covex, mlflow] if (i + workers) % 2 == 0 else [mlflow, covex]
                        for server in order:
                            url = server.url + "/invocations"
                            harness.log(f"{server.label}: {MODELS[model]}, {workers} worker(s), {rows}-row requests")
                            check_answers(url, frames[rows][0], expected)
                            if use_wrk:
                                seq = wrk(url, body_file, seconds, 1, script)
                                par = wrk(url, body_file, seconds, args.concurrency, script)
                            else:
                                seq = httpx_load(url, body_file, seconds, 1)
                                par = httpx_load(url, body_file, seconds, args.concurrency)
                            floor = results[f"{model}_{rows}_in_process"]["p50_ms"]
                            seq["overhead_p50_ms"] = round(seq["p50_ms"] - floor, 3)
                            results[f"{server.label.lower()}_{model}_{workers}w_{rows}"] = {"c1": seq, key: par}
        harness.log("hot swap: @champion moves 10 times under load")
        covex, _ = servers(tmp, data, folders["lr"], "lr", 1)
        with harness.running([covex]):
            results["swap"] = swap_under_load(data, covex.url + "/invocations", tmp / "body-1.json", 10)

        header = f"{'':8}{'model':>6}{'workers':>8}{'rows':>5}{'c1 p50':>9}{'c1 p99':>9}{'overhead':>10}"
        print(f"\n{header}{'req/s ' + key:>12}")
        summary: dict[str, Any] = {}
        for model in MODELS:
            for rows in frames:
                print(f"{'predict':8}{model:>6}{'':>8}{rows:>5}{results[f'{model}_{rows}_in_process']['p50_ms']:>9.3f}")
            for workers in worker_counts:
                for rows in frames:
                    for side in ("covex", "mlflow"):
                        r = results[f"{side}_{model}_{workers}w_{rows}"]
                        s, p = r["c1"], r[key]
                        print(
                            f"{side:8}{model:>6}{workers:>8}{rows:>5}{s['p50_ms']:>9.3f}{s['p99_ms']:>9.3f}"
                            f"{s['overhead_p50_ms']:>10.3f}{p['req_per_s']:>12.1f}"
                        )
                    c, m = results[f"covex_{model}_{workers}w_{rows}"], results[f"mlflow_{model}_{workers}w_{rows}"]
                    tag = f"{model}_{workers}w_{rows}row"
                    summary[f"throughput_{tag}_ratio"] = round(c[key]["req_per_s"] / m[key]["req_per_s"], 2)
                    summary[f"p50_{tag}_ratio"] = round(m["c1"]["p50_ms"] / c["c1"]["p50_ms"], 2)
                    summary[f"covex_overhead_{tag}_p50_ms"] = c["c1"]["overhead_p50_ms"]
                    summary[f"errors_{tag}"] = sum(r[k]["errors"] for r in (c, m) for k in ("c1", key))
        swap = results["swap"]
        print(f"\nhot swap: {swap['moves']} moves, {swap['requests']} answers, {swap['errors']} failed, "
              f"versions answering: {swap['versions']}")  # fmt: skip
        summary["swap_moves"] = swap["moves"]
        summary["swap_failed_requests"] = swap["errors"]
        summary["swap_versions_seen"] = sorted(v for v in swap["versions"] if v)
        results["summary"] = summary
        print(json.dumps(summary))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
