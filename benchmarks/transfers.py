"""One big file up and down through each server, against one core's SHA-256 throughput.

Covex: ``Client.create_version(name, file)`` (hashes, uploads; the server hashes again as it stores)
and ``Client.download`` (streams and verifies the digest). MLflow: ``MlflowClient.log_artifact`` and
``download_artifacts`` of the same file through its artifact proxy (``mlflow-artifacts:/``, the
server's default ``--serve-artifacts``). The reference is one SHA-256 pass over the file on one core,
measured in the same run: every Covex transfer includes one on each side.

Storing a file also means writing it: the **write floor** is copying the same file into a new one on
the same disk (no hashing, no network), measured next to the transfers in each round. On a virtual
machine whose page cache grows into memory the host has not handed over yet, that floor can sit
below one SHA-256 pass, and then it, not hashing, bounds every upload and download (MLflow's too).
Each round uses new content (Covex would find the file stored already and skip the upload), the
sides alternate, and the report gives each figure's median over ``ROUNDS`` rounds.
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
ROUNDS = 3


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


def write_seconds(src: Path, dst: Path) -> float:
    """Copy ``src`` into the new file ``dst`` (after writing back what is dirty): the least a store does."""
    os.sync()
    start = time.perf_counter()
    with src.open("rb") as f, dst.open("wb") as out:
        while chunk := f.read(4 * MIB):
            out.write(chunk)
    seconds = time.perf_counter() - start
    dst.unlink()
    return seconds


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


def covex_transfer(server: Server, src: Path, work: Path, size_mb: int, round_: int) -> dict[str, Any]:
    import covex

    token = AUTH_HEADERS.get(server.url, {}).get("Authorization", "").removeprefix("Bearer ") or None
    with covex.Client(server.url, token=token) as client:
        model = f"bigfile-{round_}"
        client.create_model(model)
        mem = _Memory(server)
        up_s, version = _timed(lambda: client.create_version(model, src))
        if version.status != "READY" or version.size != size_mb * MIB:
            raise RuntimeError(f"upload ended {version.status} with {version.size} bytes")
        up_growth = mem.growth()
        mem = _Memory(server)
        down_s, out = _timed(lambda: client.download(f"models:/{model}/{version.version}", work / "covex-down"))
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


def mlflow_transfer(server: Server, src: Path, work: Path, size_mb: int, round_: int) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.url)
    experiment = client.create_experiment(f"bigfile-{round_}")
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
    sides = [("Covex", covex_srv, covex_transfer)]
    if mlflow_srv is not None:
        sides.append(("MLflow", mlflow_srv, mlflow_transfer))
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in sides}
    hashes: list[float] = []
    writes: list[float] = []
    try:
        for round_ in range(ROUNDS):
            log(f"big file, round {round_ + 1} of {ROUNDS}: writing {size_mb} MiB of random bytes")
            write_big_file(src, size_mb)
            hashes += [sha256_seconds(src) for _ in range(HASH_RUNS)]
            writes.append(write_seconds(src, work / "copy.bin"))
            order = sides if round_ % 2 == 0 else sides[::-1]  # neither side always goes first
            for label, server, transfer in order:
                t = transfer(server, src, work, size_mb, round_)
                runs[label].append(t)
                log(
                    f"  {label}: upload {rate(size_mb, t['upload_s']):.0f} MiB/s, "
                    f"download {rate(size_mb, t['download_s']):.0f} MiB/s"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sha_rate = rate(size_mb, statistics.median(hashes))
    write_rate = rate(size_mb, statistics.median(writes))
    log(f"  sha256, one core: {sha_rate:.0f} MiB/s; writing a copy: {write_rate:.0f} MiB/s (medians)")
    out: dict[str, Any] = {
        "size_mib": size_mb,
        "rounds": ROUNDS,
        "sha256_mib_s": round(sha_rate, 1),
        "write_mib_s": round(write_rate, 1),
    }
    for label, measured in runs.items():
        up = rate(size_mb, statistics.median(t["upload_s"] for t in measured))
        down = rate(size_mb, statistics.median(t["download_s"] for t in measured))
        growth = max(max(t["upload_growth_mib"], t["download_growth_mib"]) for t in measured)
        out[label] = {
            "upload_mib_s": round(up, 1),
            "download_mib_s": round(down, 1),
            "upload_vs_sha256": round(up / sha_rate, 3),
            "download_vs_sha256": round(down / sha_rate, 3),
            "upload_vs_write": round(up / write_rate, 3),
            "download_vs_write": round(down / write_rate, 3),
            "server_growth_mib": round(growth, 1),
            "peak_reset": all(t["peak_reset"] for t in measured),
        }
    return out
