"""What the hardening limits cost, and what they save: measured side by side in one run.

1. Manifest check: validating 100,000 file paths (unique, none both a file and a folder) against
   the floor of putting 100,000 strings into a set.
2. A 100,000-file request over HTTP: the time until the server answers (refused by the file cap or
   the body limit) — it used to keep a core busy for minutes.
3. An anonymous flood: a real user's create-model latency alone, and while another process sends
   requests without a token as fast as it can, on two servers side by side: one recording every
   refusal (COVEX_ANONYMOUS_AUDIT_INTERVAL=0, as before) and one counting them per source (the default).
   Also how many audit records 1,000 anonymous requests add on each.

    .venv/bin/python benchmarks/hardening.py            # about 1 minute
    .venv/bin/python benchmarks/hardening.py --quick    # about 20 s

The last line is one JSON object; keys ending in ``_ratio`` are Covex's advantage (higher is better).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from harness import Server, covex_token, free_port, log, machine, settle, tool
from sqlalchemy import create_engine, func, select

from covex.domain.entities import FileEntry
from covex.service.base import Limits
from covex.service.registry import RegistryService
from covex.store.schema import audit_log


def manifest(n: int) -> list[FileEntry]:
    return [FileEntry(path=f"d{i % 100}/s{i % 7}/f{i}.bin", digest="0" * 64, size=i) for i in range(n)]


def check_manifest(n: int, repeats: int) -> dict[str, float]:
    files = manifest(n)
    service = object.__new__(RegistryService)  # only the pure check runs: no database needed
    service.limits = Limits(max_files=n)
    covex, floor = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        service._check_files(files)
        covex.append(time.perf_counter() - start)
        start = time.perf_counter()
        set(f.path for f in files)
        floor.append(time.perf_counter() - start)
    return {"files": n, "covex_s": min(covex), "floor_s": min(floor)}


def huge_request(url: str, token: str, n: int) -> dict[str, Any]:
    files = [f.model_dump() for f in manifest(n)]
    body = json.dumps({"files": files}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        http.post("/api/v1/models", json={"name": f"many-{n}"})
        start = time.perf_counter()
        r = http.post(f"/api/v1/models/many-{n}/-/versions", content=body)
        elapsed = time.perf_counter() - start
    return {"files": n, "body_mb": len(body) / 1e6, "status": r.status_code, "answer_s": elapsed}


def flood(url: str, stop_at: float, counter: Any) -> None:
    """Requests without a token, one after another on a keep-alive connection, until ``stop_at``."""
    with httpx.Client(base_url=url, timeout=30) as http:
        while time.time() < stop_at:
            http.post("/api/v1/models", json={"name": "x"})
            with counter.get_lock():
                counter.value += 1


def user_latency(url: str, token: str, n: int, prefix: str) -> list[float]:
    out = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        for i in range(n):
            start = time.perf_counter()
            r = http.post("/api/v1/models", json={"name": f"{prefix}-{i}"})
            out.append(time.perf_counter() - start)
            assert r.status_code == 201, r.text
    return out


def audit_count(data: Path) -> int:
    engine = create_engine(f"sqlite:///{data / 'covex.db'}")
    with engine.connect() as conn:
        count = int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())
    engine.dispose()
    return count


def start_server(root: Path, label: str, interval: float) -> tuple[Server, str, Path]:
    data = root / label
    token = covex_token(data)
    port = free_port()
    argv = [str(tool("covex")), "--uri", str(data), "server", "--host", "127.0.0.1", "--port", str(port)]
    server = Server(label, argv, port, "/ready", root / f"{label}.log")
    # Server.start passes this process's environment on.
    os.environ["COVEX_ANONYMOUS_AUDIT_INTERVAL"] = str(interval)
    os.environ["COVEX_DISPATCH_INTERVAL"] = "0"
    server.start()
    server.wait_ready()
    return server, token, data


def flood_phase(server: Server, token: str, data: Path, n: int, seconds: float) -> dict[str, Any]:
    alone = user_latency(server.url, token, n, "alone")
    before = audit_count(data)
    counter = multiprocessing.Value("i", 0)
    stop_at = time.time() + seconds
    proc = multiprocessing.Process(target=flood, args=(server.url, stop_at, counter))
    proc.start()
    time.sleep(0.5)  # the flood is running
    during = user_latency(server.url, token, n, "during")
    proc.join()
    anonymous = counter.value
    added = audit_count(data) - before - n  # less the user's own creates, one record each
    return {
        "alone_p50_ms": statistics.median(alone) * 1000,
        "during_p50_ms": statistics.median(during) * 1000,
        "anonymous_requests": anonymous,
        "audit_records_per_1000_anonymous": 1000 * added / max(anonymous, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n_files = 100_000
    n_user, seconds = (100, 4.0) if args.quick else (300, 10.0)
    results: dict[str, Any] = {"machine": machine(["covex", "fastapi", "uvicorn", "sqlalchemy"])}

    log("manifest check")
    results["manifest"] = check_manifest(n_files, 3 if args.quick else 5)
    root = Path(tempfile.mkdtemp(prefix="covex-hardening-"))
    servers: list[Server] = []
    try:
        before, before_token, before_data = start_server(root, "record-each", 0)
        servers.append(before)
        after, after_token, after_data = start_server(root, "count-per-source", 60)
        servers.append(after)
        settle(servers, 30)
        log("100,000-file request")
        results["huge_request"] = huge_request(after.url, after_token, n_files)
        results["over_cap_request"] = huge_request(after.url, after_token, 60_000)
        log("flood: every refusal recorded")
        results["flood_record_each"] = flood_phase(before, before_token, before_data, n_user, seconds)
        log("flood: refusals counted per source")
        results["flood_count_per_source"] = flood_phase(after, after_token, after_data, n_user, seconds)
    finally:
        for s in servers:
            s.stop()
    report(results)
    return 0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def report(r: dict[str, Any]) -> None:
    m, h = r["manifest"], r["huge_request"]
    each, counted = r["flood_record_each"], r["flood_count_per_source"]
    print(f"manifest check, {m['files']:,} files: Covex {ms(m['covex_s'])}, floor (a set) {ms(m['floor_s'])}")
    for q in (h, r["over_cap_request"]):
        print(f"{q['files']:,}-file request ({q['body_mb']:.1f} MB): HTTP {q['status']} after {ms(q['answer_s'])}")
    print("| server | user create p50 alone | during anonymous flood | anonymous requests | audit records per 1,000 |")
    print("|---|---|---|---|---|")
    for label, f in (("every refusal recorded (before)", each), ("counted per source (now)", counted)):
        print(
            f"| {label} | {f['alone_p50_ms']:.2f} ms | {f['during_p50_ms']:.2f} ms | {f['anonymous_requests']:,} | "
            f"{f['audit_records_per_1000_anonymous']:.1f} |"
        )
    summary = {
        "manifest_floor_ratio": m["floor_s"] / m["covex_s"],
        "huge_request_answer_s": h["answer_s"],
        "over_cap_request_answer_s": r["over_cap_request"]["answer_s"],
        "flood_latency_ratio": (each["during_p50_ms"] / each["alone_p50_ms"])
        / (counted["during_p50_ms"] / counted["alone_p50_ms"]),
        "audit_growth_ratio": each["audit_records_per_1000_anonymous"]
        / max(counted["audit_records_per_1000_anonymous"], 0.001),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
