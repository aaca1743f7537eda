"""Throughput against server processes: ``covex server --workers N`` on PostgreSQL under concurrent load.

For each N, a fresh PostgreSQL database and a Covex server with N worker processes; then several
client processes (each one keep-alive ``httpx.Client``) get a version by alias, and create versions,
all at once. Client processes, not threads: one Python process could not load two workers.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from harness import AUTH_HEADERS, HTTP_TIMEOUT, covex_server, log, ok, percentile, running

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


@dataclass(frozen=True)
class ScaleSizes:
    workers: tuple[int, ...] = (1, 2)
    clients: int = 4
    gets: int = 1_500  # per client
    creates: int = 250  # per client


QUICK_SCALE = ScaleSizes(gets=300, creates=50)


def postgres_available() -> bool:
    import psycopg

    try:
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    import psycopg

    name = f"covex_bench_{uuid.uuid4().hex[:10]}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _client(args: tuple[str, dict[str, str], str, int, int, Any]) -> tuple[list[float], int]:
    """One client process: wait for the start signal, do ``count`` calls, return latencies (ms) and errors."""
    url, headers, what, k, count, start = args
    latencies, errors = [], 0
    with httpx.Client(base_url=url, headers=headers, timeout=HTTP_TIMEOUT) as http:
        ok(http.get("/api/v1/resolve", params={"uri": "models:/scale@champion"}))  # connect before the start
        start.wait()
        for i in range(count):
            t = time.perf_counter_ns()
            try:
                if what == "get":
                    ok(http.get("/api/v1/resolve", params={"uri": "models:/scale@champion"}))
                else:
                    ok(http.post("/api/v1/models/scale/-/versions", json={"source": f"s3://scale/{k}/{i}"}))
            except Exception:  # noqa: BLE001 - a refused or wrong answer counts as a failure
                errors += 1
                continue
            latencies.append((time.perf_counter_ns() - t) / 1e6)
    return latencies, errors


def _load(url: str, what: str, clients: int, count: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(clients) as pool:
            jobs = pool.map_async(
                _client, [(url, AUTH_HEADERS.get(url, {}), what, k, count, start) for k in range(clients)]
            )
            time.sleep(2.0)  # every client connected and warm
            began = time.perf_counter()
            start.set()
            parts = jobs.get(timeout=900)
            seconds = time.perf_counter() - began
    latencies = sorted(x for part, _ in parts for x in part)
    errors = sum(e for _, e in parts)
    return {
        "ops": len(latencies),
        "errors": errors,
        "seconds": round(seconds, 3),
        "ops_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 0.5), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
    }


def run_scaling(tmp: Path, sizes: ScaleSizes) -> dict[str, Any]:
    """Per worker count: concurrent gets and creates from ``sizes.clients`` processes."""
    out: dict[str, Any] = {"clients": sizes.clients}
    for workers in sizes.workers:
        with fresh_database() as db:
            server = covex_server(tmp, workers, label=f"pg-{workers}w", uri=db)
            with running([server]):
                with httpx.Client(base_url=server.url, headers=AUTH_HEADERS[server.url], timeout=HTTP_TIMEOUT) as h:
                    ok(h.post("/api/v1/models", json={"name": "scale"}))
                    ok(h.post("/api/v1/models/scale/-/versions", json={"source": "s3://scale/0"}))
                    ok(h.post("/api/v1/models/scale/-/aliases", json={"alias": "champion", "version": 1}))
                row: dict[str, Any] = {}
                for what, count in (("get", sizes.gets), ("create", sizes.creates)):
                    log(f"{workers} worker(s) on PostgreSQL: {sizes.clients} clients x {count} {what}s")
                    row[what] = _load(server.url, what, sizes.clients, count)
                    r = row[what]
                    log(
                        f"  {r['ops_per_s']:.0f}/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                        f"{r['errors']} errors"
                    )
                out[str(workers)] = row
    return out
