"""Batch scoring: ``covex batch`` against a plain pyarrow read + ``model.predict`` loop, and Spark.

Side by side in one run, on the same generated data (N rows x 20 numeric columns) and the same
registered scikit-learn logistic regression:

1. the **floor**: a plain script that loads the model's MLflow folder with ``mlflow.pyfunc.load_model``
   and runs ``pyarrow.parquet.ParquetFile.iter_batches`` + ``predict`` + a ``ParquetWriter`` of the
   ids and predictions. It runs as a process (start-up and model load included, as for
   ``covex batch``) and, warm, as a loop in this process (the scoring alone);
2. ``covex batch`` as a process (wall time, peak RSS), at two sizes to show peak memory does not
   grow with the row count; and ``score_file`` warm in this process, against the warm loop;
3. ``covex.spark.score`` against ``mlflow.pyfunc.spark_udf`` on one local Spark session
   (``--skip-spark`` leaves it out).

    .venv/bin/python benchmarks/batch.py             # 1M and 10M rows: about 10 minutes, 2 GB of disk
    .venv/bin/python benchmarks/batch.py --quick     # 100k and 1M rows

Ends with one JSON line; ``_ratio`` keys are Covex's advantage (rows/s over the other side's).
"""

from __future__ import annotations

import argparse
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

FEATURES = [f"f{i}" for i in range(20)]
CHUNK_ROWS = 100_000
PEAK = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(r.stderr)\n"
    "print(r.stdout.strip() if r.returncode == 0 else '{}')\n"
    "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)
# The floor as a user would write it: load the MLflow folder, then read, predict and write chunk by chunk.
FLOOR = (
    "import sys, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "import pyarrow as pa, pyarrow.parquet as pq, mlflow.pyfunc\n"
    "folder, source, out, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n"
    "features = [f'f{i}' for i in range(20)]\n"
    "model = mlflow.pyfunc.load_model(folder)\n"
    "writer = None\n"
    "for batch in pq.ParquetFile(source, pre_buffer=False).iter_batches(batch_size=chunk, columns=['id', *features]):\n"
    "    predictions = model.predict(batch.select(features).to_pandas())\n"
    "    table = pa.table({'id': batch.column('id'), 'prediction': pa.array(predictions)})\n"
    "    writer = writer or pq.ParquetWriter(out, table.schema)\n"
    "    writer.write_table(table)\n"
    "writer.close()\n"
)


def generate(path: Path, rows: int) -> None:
    """``rows`` rows of an ``id`` and 20 random doubles, written 100k rows at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    piece = 100_000
    schema = pa.schema([("id", pa.int64()), *((f, pa.float64()) for f in FEATURES)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, piece):
            n = min(piece, rows - start)
            columns = [pa.array(np.arange(start, start + n))] + [pa.array(rng.random(n)) for _ in FEATURES]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def register(tmp: Path) -> dict[str, str]:
    """A registry folder with ``bench`` v1 (@champion): a logistic regression on the 20 features."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import covex
    from covex.ml import log_model

    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.random((2000, len(FEATURES))), columns=FEATURES)
    y = (x.f0 + x.f1 > 1).astype(int)
    env = {"COVEX_URI": str(tmp / "registry"), "COVEX_CACHE_DIR": str(tmp / "cache")}
    with covex.Client(env["COVEX_URI"], cache_dir=env["COVEX_CACHE_DIR"]) as c, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log_model(c, LogisticRegression().fit(x, y), "bench", input_example=x.head(), aliases=["champion"])
    return env


def floor_process(env: dict[str, str], source: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the plain script as a process, the model's folder fetched beforehand."""
    import covex
    from covex.ml.loading import fetch_model

    with covex.Client(env["COVEX_URI"], cache_dir=env["COVEX_CACHE_DIR"]) as c:
        folder = fetch_model(c, "models:/bench@champion")
    command = [sys.executable, "-c", FLOOR, str(folder), str(source), str(out), str(CHUNK_ROWS)]
    started = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PEAK, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    code, peak = r.stdout.strip().splitlines()[-1].split()
    if code != "0":
        raise SystemExit(f"the floor script failed:\n{r.stderr}")
    return seconds, int(peak) / 1024


def covex_warm(env: dict[str, str], source: Path, out: Path) -> float:
    """Seconds of ``score_file`` in this process, its imports warm (what is left is resolving and scoring)."""
    import covex
    from covex.batch import score_file

    with covex.Client(env["COVEX_URI"], cache_dir=env["COVEX_CACHE_DIR"]) as c:
        started = time.perf_counter()
        score_file("models:/bench@champion", source, out, client=c, id_columns=["id"], overwrite=True, record=False)
        return time.perf_counter() - started


def floor(env: dict[str, str], source: Path, out: Path) -> float:
    """Seconds for the plain loop, warm in this process: read a chunk, predict, write ids and predictions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import covex

    with covex.Client(env["COVEX_URI"], cache_dir=env["COVEX_CACHE_DIR"]) as c:
        model = covex.load_model("models:/bench@champion", client=c)
    started = time.perf_counter()
    reader = pq.ParquetFile(source, pre_buffer=False)
    writer = None
    for batch in reader.iter_batches(batch_size=CHUNK_ROWS, columns=["id", *FEATURES]):
        predictions = model.predict(batch.select(FEATURES).to_pandas())
        table = pa.table({"id": batch.column("id"), "prediction": pa.array(predictions)})
        writer = writer or pq.ParquetWriter(out, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()
    return time.perf_counter() - started


def covex_batch(env: dict[str, str], source: Path, out: Path) -> tuple[float, float, int, float]:
    """Wall seconds, peak RSS (MiB) and rows of ``covex batch`` as a process, and the seconds the job itself took."""
    command = [sys.executable, "-m", "covex", "batch", "models:/bench@champion", "-i", str(source), "-o", str(out)]
    command += ["--id-column", "id", "--chunk-rows", str(CHUNK_ROWS), "--overwrite", "--json"]
    started = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", PEAK, *command], env={**os.environ, **env}, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    *printed, last = r.stdout.strip().splitlines()
    code, peak = last.split()
    if code != "0":
        raise SystemExit(f"covex batch failed:\n{r.stderr}")
    import pyarrow.parquet as pq

    job = float(json.loads("\n".join(printed))["seconds"]) if printed else seconds
    return seconds, int(peak) / 1024, pq.ParquetFile(out).metadata.num_rows, job


def spark_side_by_side(env: dict[str, str], source: Path, rounds: int) -> dict[str, Any]:
    """``covex.spark.score`` and ``mlflow.pyfunc.spark_udf`` on one local session, taking turns; median seconds."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warnings.filterwarnings("ignore")
    import mlflow.pyfunc
    from pyspark.sql import SparkSession

    import covex
    import covex.spark
    from covex.ml.loading import fetch_model

    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        df = spark.read.parquet(str(source))
        rows = df.count()
        with covex.Client(env["COVEX_URI"], cache_dir=env["COVEX_CACHE_DIR"]) as c:
            folder = fetch_model(c, "models:/bench@champion")

            def run_covex() -> None:
                covex.spark.score(df, "models:/bench@champion", client=c).write.format("noop").mode("overwrite").save()

            def run_mlflow() -> None:
                udf = mlflow.pyfunc.spark_udf(spark, str(folder), env_manager="local")
                df.withColumn("prediction", udf(*FEATURES)).write.format("noop").mode("overwrite").save()

            times: dict[str, list[float]] = {"covex": [], "mlflow": []}
            for i in range(rounds):
                order = [("covex", run_covex), ("mlflow", run_mlflow)]
                for name, fn in order if i % 2 == 0 else reversed(order):
                    started = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - started)
                    harness.log(f"spark {name}: {times[name][-1]:.1f} s")
    finally:
        spark.stop()
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"rows": rows, "seconds": median, "rows_per_s": {k: rows / s for k, s in median.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k and 1M rows instead of 1M and 10M")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="Spark rounds per side (median)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    sizes = [100_000, 1_000_000] if args.quick else [1_000_000, 10_000_000]
    tmp = Path(tempfile.mkdtemp(prefix="covex-batch-bench-"))
    results: dict[str, Any] = {"machine": harness.machine(["pyarrow", "pandas", "scikit-learn", "mlflow", "pyspark"])}
    try:
        harness.log("registering the model")
        env = register(tmp)
        runs = []
        for rows in sizes:
            source = tmp / f"data-{rows}.parquet"
            harness.log(f"generating {rows:,} rows x {len(FEATURES)} columns")
            generate(source, rows)
            harness.log("floor: the plain script as a process")
            floor_s, floor_peak = floor_process(env, source, tmp / "floor.parquet")
            harness.log("covex batch")
            covex_s, peak, scored, job_s = covex_batch(env, source, tmp / "covex.parquet")
            assert scored == rows, (scored, rows)
            harness.log("warm, in this process: the floor's loop and score_file, taking turns")
            loop, warm = [], []
            for i in range(3):
                sides = [(loop, floor), (warm, covex_warm)]
                for times, fn in sides if i % 2 == 0 else reversed(sides):
                    times.append(fn(env, source, tmp / "warm.parquet"))
            runs.append(
                {
                    "rows": rows,
                    "floor_rows_per_s": rows / floor_s,
                    "floor_peak_rss_mib": floor_peak,
                    "covex_rows_per_s": rows / covex_s,
                    "covex_job_rows_per_s": rows / job_s,
                    "covex_peak_rss_mib": peak,
                    "floor_loop_rows_per_s": rows / sorted(loop)[1],
                    "covex_warm_rows_per_s": rows / sorted(warm)[1],
                }
            )
        results["local"] = runs
        if not args.skip_spark:
            harness.log("spark: covex.spark.score against mlflow.pyfunc.spark_udf")
            results["spark"] = spark_side_by_side(env, tmp / f"data-{sizes[0]}.parquet", args.rounds)
    finally:
        if args.keep:
            harness.log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    # Processes: start-up and model load included on both sides. Warm: the scoring alone, median of 3.
    print(f"{'rows':>12} {'floor rows/s':>13} {'covex rows/s':>13} {'ratio':>6} {'floor RSS':>10} {'covex RSS':>10} "
          f"{'warm loop':>10} {'warm covex':>11} {'ratio':>6}")  # fmt: skip
    for run in results["local"]:
        warm_ratio = run["covex_warm_rows_per_s"] / run["floor_loop_rows_per_s"]
        print(
            f"{run['rows']:>12,} {run['floor_rows_per_s']:>13,.0f} {run['covex_rows_per_s']:>13,.0f} "
            f"{run['covex_rows_per_s'] / run['floor_rows_per_s']:>6.2f} {run['floor_peak_rss_mib']:>6,.0f} MiB "
            f"{run['covex_peak_rss_mib']:>6,.0f} MiB {run['floor_loop_rows_per_s']:>10,.0f} "
            f"{run['covex_warm_rows_per_s']:>11,.0f} {warm_ratio:>6.2f}"
        )
    largest = results["local"][-1]
    summary: dict[str, Any] = {
        "batch_vs_floor_ratio": round(largest["covex_rows_per_s"] / largest["floor_rows_per_s"], 3),
        "batch_warm_vs_floor_loop_ratio": round(largest["covex_warm_rows_per_s"] / largest["floor_loop_rows_per_s"], 3),
        "peak_rss_mib": {str(r["rows"]): round(r["covex_peak_rss_mib"]) for r in results["local"]},
        "floor_peak_rss_mib": {str(r["rows"]): round(r["floor_peak_rss_mib"]) for r in results["local"]},
        "peak_rss_growth_mib": round(largest["covex_peak_rss_mib"] - results["local"][0]["covex_peak_rss_mib"]),
    }
    if "spark" in results:
        s = results["spark"]
        print(f"spark, {s['rows']:,} rows: covex {s['rows_per_s']['covex']:,.0f} rows/s, "
              f"spark_udf {s['rows_per_s']['mlflow']:,.0f} rows/s")  # fmt: skip
        summary["spark_vs_spark_udf_ratio"] = round(s["rows_per_s"]["covex"] / s["rows_per_s"]["mlflow"], 3)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
