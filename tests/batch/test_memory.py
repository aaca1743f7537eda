"""``covex batch`` streams: its peak memory does not grow with the number of rows it scores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import Registered, frame

# Runs a command and prints the peak resident memory (KiB) of the process it started.
PEAK = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "assert r.returncode == 0, r.stderr\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def _write(path: Path, rows: int, fillers: int = 17) -> Path:
    """``rows`` rows of the model's features, an id and ``fillers`` other numeric columns, written in pieces."""
    piece = frame(100_000)
    for i in range(fillers):
        piece[f"x{i}"] = np.random.default_rng(i).random(len(piece))
    table = pa.Table.from_pandas(piece, preserve_index=False)
    with pq.ParquetWriter(path, table.schema) as writer:
        for _ in range(rows // len(piece)):
            writer.write_table(table, row_group_size=50_000)
    return path


def _peak_kib(registered: Registered, source: Path, out: Path) -> int:
    env = {
        **os.environ,
        "COVEX_URI": registered.settings.uri,
        "COVEX_CACHE_DIR": registered.settings.cache_dir,
    }
    command = [sys.executable, "-m", "covex", "batch", "models:/churn@champion", "-i", str(source), "-o", str(out)]
    command += ["--id-column", "id", "--chunk-rows", "50000"]
    r = subprocess.run([sys.executable, "-c", PEAK, *command], env=env, capture_output=True, text=True, timeout=600)
    assert 0 == r.returncode, r.stderr
    assert pq.ParquetFile(out).metadata.num_rows > 0
    return int(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_rows(registered: Registered, tmp_path: Path) -> None:
    small = _peak_kib(registered, _write(tmp_path / "small.parquet", 200_000), tmp_path / "small-out.parquet")
    large = _peak_kib(registered, _write(tmp_path / "large.parquet", 3_000_000), tmp_path / "large-out.parquet")
    # 15x the rows: reading them whole would add ~500 MB (3M rows x 21 columns x 8 bytes, plus copies).
    assert large - small < 60 * 1024, f"peak RSS {small / 1024:.0f} MiB at 200k rows, {large / 1024:.0f} MiB at 3M"
