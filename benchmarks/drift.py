"""Drift checks: ``covex monitor check`` against the numpy floor and Evidently's data-drift preset, and on Spark.

Side by side in one run, on generated data with known, injected drift: a reference of 100k rows and
current windows of N rows, 20 columns (15 numeric, 5 categorical); four columns drift (n0: mean +1 sd,
n1: spread x1.6, c0: one category's share from 5% to 40%, c1: a quarter of the values new categories).

1. the **floor**: read the Parquet file in 100k-row batches and count each numeric column on the
   stored edges with ``np.searchsorted`` + ``np.bincount`` and each categorical column by dictionary
   codes + ``np.bincount`` (the least work any implementation must do: read once, count once);
2. **Covex** warm in this process (``covex.monitoring.check(..., data=FILE)``: read, count, judge),
   and as a process (``covex monitor check --dry-run``) for its peak RSS at each size;
3. **Evidently** 0.7's ``DataDriftPreset`` in its own virtualenv (it needs pandas < 3): made once under
   ``~/.cache/covex-bench/evidently-venv`` (``--evidently-python`` to give one), reading the same files;
4. Covex on **Spark** ``local[2]`` (``--engine spark``) at the largest size (``--skip-spark`` leaves it out).

    .venv/bin/python benchmarks/drift.py            # 1M and 10M rows (Evidently: 100k and 1M): ~8 minutes
    .venv/bin/python benchmarks/drift.py --quick    # 100k and 1M rows (Evidently: 100k)

Correctness in the same run: the injected columns are flagged and no other. Ends with one JSON line;
``_ratio`` keys are Covex's advantage (the other side's seconds over Covex's).
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
from pathlib import Path
from typing import Any

import harness

NUMERIC = [f"n{i}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]
DRIFTED = {"n0", "n1", "c0", "c1"}
PIECE = 100_000
CATEGORIES = [f"v{j:02d}" for j in range(20)]
PEAK = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(r.stderr[-3000:])\n"
    "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)
EVIDENTLY = (
    "import json, resource, sys, time, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "import pandas as pd\n"
    "from evidently import Report\n"
    "from evidently.presets import DataDriftPreset\n"
    "reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])\n"
    "started = time.perf_counter()\n"
    "snapshot = Report([DataDriftPreset()]).run(current, reference)\n"
    "seconds = time.perf_counter() - started\n"
    "drifted = []\n"
    "for m in snapshot.dict()['metrics']:\n"
    "    name = m.get('metric_name') or m.get('metric_id') or ''\n"
    "    if name.startswith('ValueDrift(') and isinstance(m.get('value'), (int, float)):\n"
    "        column = name.split('column=')[1].split(',')[0]\n"
    "        threshold = float(name.split('threshold=')[1].rstrip(')'))\n"
    "        p_value = 'p_value' in name or 'K-S' in name or 'chi' in name.lower()\n"
    "        if (m['value'] < threshold) if p_value else (m['value'] >= threshold):\n"
    "            drifted.append(column)\n"
    "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
    "print(json.dumps({'seconds': seconds, 'drifted': sorted(drifted), 'peak_mib': peak}))\n"
)


def generate(path: Path, rows: int, *, drift: bool, seed: int) -> None:
    """``rows`` rows written 100k at a time (memory never holds the file)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    base = np.full(len(CATEGORIES), 0.95 / (len(CATEGORIES) - 1))
    base[0] = 0.05
    shifted = np.full(len(CATEGORIES), 0.6 / (len(CATEGORIES) - 1))
    shifted[0] = 0.4
    writer = None
    for start in range(0, rows, PIECE):
        n = min(PIECE, rows - start)
        columns: dict[str, Any] = {}
        for i, name in enumerate(NUMERIC):
            values = rng.normal(0.0, 1.0, n) if i % 2 else rng.gamma(2.0 + i / 3, 1.0, n)
            if drift and name == "n0":
                values = values + values.std()
            if drift and name == "n1":
                values = values * 1.6
            columns[name] = values
        for name in CATEGORICAL:
            values = rng.choice(CATEGORIES, n, p=shifted if drift and name == "c0" else base)
            if drift and name == "c1":
                values = np.where(rng.random(n) < 0.25, np.char.add("new-", values), values)
            columns[name] = values
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def register(tmp: Path, reference: Path) -> str:
    """An embedded registry with ``bench`` v1 and its reference (from ``reference``)."""
    import covex
    from covex.monitoring import reference_of
    from covex.monitoring.monitor import read_frame

    with covex.Client(tmp / "registry") as c:
        c.create_model("bench")
        c.create_version("bench", source="s3://bench/model")
        c.monitoring.set_reference("bench", 1, reference_of(read_frame(str(reference))))
    return str(tmp / "registry")


def floor(source: Path, reference: dict[str, Any]) -> float:
    """Seconds to read the file once and count every column on the reference's bins (the least work)."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    edges = {n: np.asarray(reference["columns"][n]["edges"]) for n in NUMERIC}
    started = time.perf_counter()
    counts: dict[str, Any] = {}
    for batch in pq.ParquetFile(source, pre_buffer=False).iter_batches(batch_size=PIECE):
        for name in NUMERIC:
            values = batch.column(name).to_numpy()
            got = np.bincount(np.searchsorted(edges[name], values, side="right"), minlength=len(edges[name]) + 1)
            counts[name] = counts.get(name, 0) + got
        for name in CATEGORICAL:
            encoded = pc.dictionary_encode(batch.column(name))
            got = np.bincount(encoded.indices.to_numpy(), minlength=len(encoded.dictionary))
            counts.setdefault(name, []).append((encoded.dictionary.to_pylist(), got))
    return time.perf_counter() - started


def covex_warm(registry: str, source: Path) -> tuple[float, list[str]]:
    """Seconds of the best of two checks in this process (the first also imports scipy and friends)."""
    import covex
    from covex.monitoring import check

    best, drifted = float("inf"), []
    with covex.Client(registry) as c:
        for _ in range(2):
            started = time.perf_counter()
            result = check(c, "models:/bench/1", data=str(source), record=False)
            best, drifted = min(best, time.perf_counter() - started), sorted(result.body["drifted"])
    return best, drifted


def covex_process(registry: str, source: Path, *extra: str) -> tuple[float, float, list[str]]:
    """Wall seconds, peak RSS (MiB) and drifted columns of ``covex monitor check --dry-run --json`` as a process."""
    out = Path(tempfile.mkdtemp()) / "result.json"
    command = [sys.executable, "-m", "covex", "--uri", registry, "monitor", "check", "models:/bench/1",
               "--data", str(source), "--dry-run", "--json", *extra]  # fmt: skip
    script = PEAK.replace(
        "capture_output=True, text=True", f"stdout=open({str(out)!r}, 'w'), stderr=subprocess.PIPE, text=True"
    )
    started = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    code, peak = r.stdout.strip().splitlines()[-1].split()
    if code != "0":
        raise SystemExit(f"covex monitor check failed:\n{r.stderr}")
    drifted = sorted(json.loads(out.read_text())["body"]["drifted"])
    shutil.rmtree(out.parent, ignore_errors=True)
    return seconds, int(peak) / 1024, drifted


def evidently_python(given: str | None) -> str:
    """An interpreter with Evidently 0.7.23 and pandas < 3 (made once, from PyPI, when none is given)."""
    if given:
        return given
    venv = Path.home() / ".cache" / "covex-bench" / "evidently-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        harness.log(f"making {venv} (Evidently needs pandas < 3)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "evidently==0.7.23", "pandas<3", "pyarrow"], check=True
        )
    return str(python)


def evidently(python: str, reference: Path, source: Path) -> dict[str, Any]:
    r = subprocess.run([python, "-c", EVIDENTLY, str(reference), str(source)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"Evidently failed:\n{r.stderr[-3000:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k and 1M rows; Evidently at 100k")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--evidently-python", help="an interpreter with evidently 0.7 and pandas < 3")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    sizes = [100_000, 1_000_000] if args.quick else [1_000_000, 10_000_000]
    evidently_sizes = [100_000] if args.quick else [100_000, 1_000_000]
    tmp = Path(tempfile.mkdtemp(prefix="covex-drift-"))
    out: dict[str, Any] = {"machine": harness.machine(["covex", "numpy", "pandas", "pyarrow", "pyspark"])}
    try:
        reference_file = tmp / "reference.parquet"
        generate(reference_file, 100_000, drift=False, seed=1)
        registry = register(tmp, reference_file)
        import covex

        with covex.Client(registry) as c:
            reference = c.get_document("models:/bench/1", "reference")
        files = {}
        for rows in sorted({*sizes, *evidently_sizes}):
            files[rows] = tmp / f"current-{rows}.parquet"
            harness.log(f"generating {rows:,} rows")
            generate(files[rows], rows, drift=True, seed=2)
        rows_out: list[dict[str, Any]] = []
        for rows in sizes:
            floor_s = floor(files[rows], reference)
            warm_s, drifted = covex_warm(registry, files[rows])
            process_s, peak, drifted_process = covex_process(registry, files[rows])
            row = {
                "rows": rows, "floor_s": floor_s, "covex_s": warm_s, "covex_process_s": process_s,
                "covex_peak_mib": peak, "covex_correct": drifted == sorted(DRIFTED) == drifted_process,
                "covex_drifted": drifted,
            }  # fmt: skip
            harness.log(f"{rows:>11,} rows: floor {floor_s:.2f} s, Covex {warm_s:.2f} s (process {process_s:.1f} s, "
                        f"peak {peak:.0f} MiB), drifted {drifted}")  # fmt: skip
            rows_out.append(row)
        out["covex"] = rows_out
        if not args.skip_evidently:
            python = evidently_python(args.evidently_python)
            evident = []
            for rows in evidently_sizes:
                e = evidently(python, reference_file, files[rows])
                covex_s = covex_warm(registry, files[rows])[0]
                evident.append({"rows": rows, "evidently_s": e["seconds"], "evidently_peak_mib": e["peak_mib"],
                                "evidently_drifted": e["drifted"], "covex_s": covex_s})  # fmt: skip
                harness.log(f"{rows:>11,} rows: Evidently {e['seconds']:.2f} s (peak {e['peak_mib']:.0f} MiB, "
                            f"drifted {e['drifted']}), Covex {covex_s:.2f} s")  # fmt: skip
            out["evidently"] = evident
        if not args.skip_spark:
            largest = sizes[-1]
            spark_s, spark_peak, spark_drifted = covex_process(registry, files[largest], "--engine", "spark",
                                                               "--master", "local[2]")  # fmt: skip
            out["spark"] = {"rows": largest, "seconds": spark_s, "driver_peak_mib": spark_peak,
                            "correct": spark_drifted == sorted(DRIFTED)}  # fmt: skip
            harness.log(f"{largest:>11,} rows on Spark local[2]: {spark_s:.1f} s (process, with Spark's start-up)")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print_tables(out)
    largest, smallest = out["covex"][-1], out["covex"][0]
    last_e = out.get("evidently", [{}])[-1]
    summary = {
        "rows": largest["rows"],
        "covex_s": round(largest["covex_s"], 3),
        "floor_s": round(largest["floor_s"], 3),
        "floor_ratio": round(largest["floor_s"] / largest["covex_s"], 3),
        "evidently_rows": last_e.get("rows"),
        "evidently_ratio": round(last_e["evidently_s"] / last_e["covex_s"], 1) if last_e else None,
        "peak_mib_small": round(smallest["covex_peak_mib"]),
        "peak_mib_large": round(largest["covex_peak_mib"]),
        "spark_s": round(out["spark"]["seconds"], 1) if "spark" in out else None,
        "correct": all(r["covex_correct"] for r in out["covex"]) and out.get("spark", {}).get("correct", True),
    }
    print(json.dumps(summary))


def print_tables(out: dict[str, Any]) -> None:
    print("\n| rows | floor (numpy) | Covex, warm | Covex / floor | `covex monitor check` | its peak RSS | flagged |")
    print("|---|---|---|---|---|---|---|")
    for r in out["covex"]:
        ratio = r["covex_s"] / r["floor_s"]
        print(
            f"| {r['rows']:,} | {r['floor_s']:.2f} s | {r['covex_s']:.2f} s | {ratio:.2f} "
            f"| {r['covex_process_s']:.1f} s | {r['covex_peak_mib']:.0f} MiB | {', '.join(r['covex_drifted'])} |"
        )
    print("\n| rows | Evidently DataDriftPreset | its peak RSS | flagged | Covex, warm | Evidently / Covex |")
    print("|---|---|---|---|---|---|")
    for e in out.get("evidently", []):
        print(
            f"| {e['rows']:,} | {e['evidently_s']:.2f} s | {e['evidently_peak_mib']:.0f} MiB "
            f"| {', '.join(e['evidently_drifted'])} | {e['covex_s']:.2f} s | {e['evidently_s'] / e['covex_s']:.0f} |"
        )
    if "spark" in out:
        s = out["spark"]
        verdict = "flagged exactly the injected columns" if s["correct"] else "WRONG columns flagged"
        print(
            f"\nSpark local[2], {s['rows']:,} rows: {s['seconds']:.1f} s as a process (Spark's start-up "
            f"included); {verdict}"
        )
    print()


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    main()
