"""One big file up and down through each server, against one core's SHA-256 throughput.

Covex: ``Client.create_version(name, file)`` (hashes, uploads; the server hashes again as it stores)
and ``Client.download`` (streams and verifies the digest). MLflow: ``MlflowClient.log_artifact`` and
``download_artifacts`` of the same file through its artifact proxy (``mlflow-artifacts:/``, the
server's default ``--serve-artifacts``). The reference is one SHA-256 pass over the file on one core,
measured in the same run: every Covex transfer includes one on each side.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from harness import AUTH_HEADERS, Server, log, process_tree

MIB = 1024 * 1024
HASH_RUNS = 3


def memory_mb(pid: int, key: str) -> float:
    """Sum of one /proc status field (VmRSS, VmHWM) over the process tree, in MiB."""
    total_kb = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); False where not allowed."""
    done = True
    for p in process_tree(pid):
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")
        except OSError:
            done = False
    return done


def write_big_file(path: Path, size_mb: int) -> None:
    block = 4 * MIB
    remaining = size_mb * MIB
    with path.open("wb") as f:
        while remaining > 0:
            n = min(block, remaining)
            f.write(os.urandom(n))
            remaining -= n


def rate(size_mb: float, seconds: float) -> float:
    return size_mb / seconds if seconds > 0 else math.nan


def sha256_seconds(path: Path) -> float:
    start = time.perf_counter()
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return time.perf_counter() - start


class _Memory:
    """A server's RSS before a transfer and its peak during it."""

    def __init__(self, server: Server) -> None:
        self.pid = server.pid
        self.before = memory_mb(self.pid, "VmRSS")
        self.reset = reset_peak(self.pid)

    def growth(self) -> float:
        return memory_mb(self.pid, "VmHWM") - self.before


def _timed(fn: Any) -> tuple[float, Any]:
    os.sync()  # no transfer pays for an earlier one's writeback
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def covex_transfer(server: Server, src: Path, work: Path, size_mb: int) -> dict[str, Any]:
    import covex

    token = AUTH_HEADERS.get(server.url, {}).get("Authorization", "").removeprefix("Bearer ") or None
    with covex.Client(server.url, token=token) as client:
        client.create_model("bigfile")
        mem = _Memory(server)
        up_s, version = _timed(lambda: client.create_version("bigfile", src))
        if version.status != "READY" or version.size != size_mb * MIB:
            raise RuntimeError(f"upload ended {version.status} with {version.size} bytes")
        up_growth = mem.growth()
        mem = _Memory(server)
        down_s, out = _timed(lambda: client.download(f"models:/bigfile/{version.version}", work / "covex-down"))
        if (out / src.name).stat().st_size != size_mb * MIB:
            raise RuntimeError("the Covex download is short")
        down_growth = mem.growth()
    shutil.rmtree(work / "covex-down", ignore_errors=True)
    return {
        "upload_s": up_s,
        "download_s": down_s,
        "upload_growth_mib": up_growth,
        "download_growth_mib": down_growth,
        "peak_reset": mem.reset,
    }


def mlflow_transfer(server: Server, src: Path, work: Path, size_mb: int) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.url)
    experiment = client.create_experiment("bigfile")
    run = client.create_run(experiment)
    mem = _Memory(server)
    up_s, _ = _timed(lambda: client.log_artifact(run.info.run_id, str(src)))
    up_growth = mem.growth()
    mem = _Memory(server)
    (work / "mlflow-down").mkdir()
    down_s, out = _timed(lambda: client.download_artifacts(run.info.run_id, src.name, str(work / "mlflow-down")))
    if Path(out).stat().st_size != size_mb * MIB:
        raise RuntimeError("the MLflow download is short")
    down_growth = mem.growth()
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints the run's address: stdout is the report's
        client.set_terminated(run.info.run_id)
    shutil.rmtree(work / "mlflow-down", ignore_errors=True)
    return {
        "upload_s": up_s,
        "download_s": down_s,
        "upload_growth_mib": up_growth,
        "download_growth_mib": down_growth,
        "peak_reset": mem.reset,
    }


def run_transfers(covex_srv: Server, mlflow_srv: Server | None, tmp: Path, size_mb: int) -> dict[str, Any]:
    work = tmp / "big"
    work.mkdir()
    src = work / "model.bin"
    log(f"big file: writing {size_mb} MiB of random bytes")
    write_big_file(src, size_mb)
    hashes = [sha256_seconds(src) for _ in range(HASH_RUNS)]
    sha_rate = rate(size_mb, statistics.median(hashes))
    log(f"  sha256, one core: {', '.join(f'{rate(size_mb, h):.0f}' for h in hashes)} MiB/s (median is the reference)")
    out: dict[str, Any] = {"size_mib": size_mb, "sha256_mib_s": round(sha_rate, 1)}
    sides = [("Covex", covex_srv, covex_transfer)]
    if mlflow_srv is not None:
        sides.append(("MLflow", mlflow_srv, mlflow_transfer))
    try:
        for label, server, transfer in sides:
            t = transfer(server, src, work, size_mb)
            up, down = rate(size_mb, t["upload_s"]), rate(size_mb, t["download_s"])
            out[label] = {
                "upload_mib_s": round(up, 1),
                "download_mib_s": round(down, 1),
                "upload_vs_sha256": round(up / sha_rate, 3),
                "download_vs_sha256": round(down / sha_rate, 3),
                "server_growth_mib": round(max(t["upload_growth_mib"], t["download_growth_mib"]), 1),
                "peak_reset": t["peak_reset"],
            }
            log(
                f"  {label}: upload {up:.0f} MiB/s, download {down:.0f} MiB/s, "
                f"server RSS growth {out[label]['server_growth_mib']:.1f} MiB"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
