"""Covex against MLflow: model-registry throughput and latency, then Covex's large-file transfer.

Both servers run side by side on loopback and get the same workload through their own REST
APIs, one keep-alive ``httpx.Client`` per server (one per thread in the threaded phase):

1. sequential version creation          4. model search by name prefix among many models
2. concurrent version creation          5. listing the versions of one model with many versions
3. get a version by alias               6. Covex only: upload and download of one big file (SDK)

Run from the repository root::

    .venv/bin/python benchmarks/registry.py            # full run (about 6 minutes)
    .venv/bin/python benchmarks/registry.py --quick    # smoke run (about 1.5 minutes)

Progress goes to stderr; the result table goes to stdout and its last line is one JSON object
with the Covex/MLflow throughput ratio of each registry phase. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import httpx
from servers import Server, covex_token, free_port, log, machine, process_tree, settle, tool

MIB = 1024 * 1024
HTTP_TIMEOUT = 120.0
SEED_ATTEMPTS = 5
SETTLE_TIMEOUT = 120.0
COPY_RUNS = 3

PHASES = ("sequential_create", "concurrent_create", "get_by_alias", "search_models", "list_versions")
RATIO_TARGET = 10.0
ALIAS_P50_TARGET_MS = 2.0
SEARCH_P95_TARGET_MS = 50.0
TRANSFER_TARGET = 0.5
MEMORY_TARGET_MB = 100.0


@dataclass(frozen=True)
class Sizes:
    """How much work each phase does."""

    seq_versions: int = 500
    threads: int = 8
    per_thread: int = 100
    alias_gets: int = 2_000
    models: int = 10_000
    searches: int = 500
    list_versions: int = 10_000
    page_size: int = 100
    list_rounds: int = 3
    seed_threads: int = 8
    big_mb: int = 1_024


QUICK = Sizes(
    seq_versions=200,
    per_thread=25,
    alias_gets=500,
    models=1_000,
    searches=200,
    list_versions=1_000,
    big_mb=100,
)


# -- servers ----------------------------------------------------------------------------------


# API tokens by server URL; http_client sends them.
AUTH_HEADERS: dict[str, dict[str, str]] = {}


def covex_server(
    tmp: Path, workers: int, *, auth: bool = True, editor: str | None = None, label: str = "Covex"
) -> Server:
    """A Covex server on its own data folder; with ``auth``, callers use a token (an editor's, if named)."""
    port = free_port()
    data = tmp / f"{label.lower().replace(' ', '-')}-data"
    argv = [str(tool("covex")), "--uri", str(data), "server", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    if not auth:
        argv.append("--no-auth")
    server = Server(label, argv, port, "/ready", tmp / f"{data.name}.log")
    if auth:
        AUTH_HEADERS[server.url] = {"Authorization": f"Bearer {covex_token(data, editor)}"}
    return server


def mlflow_server(tmp: Path, workers: int | None) -> Server:
    port = free_port()
    argv = [
        str(tool("mlflow")),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp / 'mlflow.db'}",
        "--default-artifact-root",
        str(tmp / "mlartifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if workers is not None:
        argv += ["--workers", str(workers)]
    return Server("MLflow", argv, port, "/health", tmp / "mlflow.log")


def http_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=HTTP_TIMEOUT, headers=AUTH_HEADERS.get(url, {}))


# -- the two REST APIs ------------------------------------------------------------------------


class ApiError(Exception):
    """A request was answered with an error, or with something other than expected."""


def ok(response: httpx.Response) -> Any:
    if not response.is_success:
        raise ApiError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:200]}"
        )
    return response.json() if response.content else None


def metric(i: int) -> float:
    return round(0.5 + (i % 500) / 1000, 3)


class Api(Protocol):
    label: str

    def create_model(self, http: httpx.Client, name: str) -> None: ...

    def create_version(self, http: httpx.Client, model: str, i: int) -> int: ...

    def set_alias(self, http: httpx.Client, model: str, alias: str, version: int) -> None: ...

    def get_by_alias(self, http: httpx.Client, model: str, alias: str) -> int: ...

    def search_models(self, http: httpx.Client, prefix: str, max_results: int) -> int: ...

    def list_versions(
        self, http: httpx.Client, model: str, page_size: int, page_token: str | None
    ) -> tuple[list[int], str | None]: ...


class CovexApi:
    """Covex's REST API v1."""

    label = "Covex"

    def create_model(self, http: httpx.Client, name: str) -> None:
        ok(http.post("/api/v1/models", json={"name": name, "description": "", "tags": {}}))

    def create_version(self, http: httpx.Client, model: str, i: int) -> int:
        body = {"source": f"s3://bench/{model}/{i}", "metrics": {"accuracy": metric(i)}}
        return int(ok(http.post(f"/api/v1/models/{model}/-/versions", json=body))["version"])

    def set_alias(self, http: httpx.Client, model: str, alias: str, version: int) -> None:
        ok(http.post(f"/api/v1/models/{model}/-/aliases", json={"alias": alias, "version": version}))

    def get_by_alias(self, http: httpx.Client, model: str, alias: str) -> int:
        return int(ok(http.get("/api/v1/resolve", params={"uri": f"models:/{model}@{alias}"}))["version"])

    def search_models(self, http: httpx.Client, prefix: str, max_results: int) -> int:
        params: dict[str, str | int] = {"filter": f"name LIKE '{prefix}%'", "max_results": max_results}
        return len(ok(http.get("/api/v1/models", params=params))["items"])

    def list_versions(
        self, http: httpx.Client, model: str, page_size: int, page_token: str | None
    ) -> tuple[list[int], str | None]:
        params: dict[str, Any] = {"max_results": page_size}
        if page_token:
            params["page_token"] = page_token
        body = ok(http.get(f"/api/v1/models/{model}/-/versions", params=params))
        return [int(v["version"]) for v in body["items"]], body.get("next_page_token") or None


class MlflowApi:
    """MLflow's REST API 2.0 model registry (the metric goes in a tag: MLflow versions have no metrics)."""

    label = "MLflow"
    base = "/api/2.0/mlflow"

    def create_model(self, http: httpx.Client, name: str) -> None:
        ok(http.post(f"{self.base}/registered-models/create", json={"name": name}))

    def create_version(self, http: httpx.Client, model: str, i: int) -> int:
        body = {
            "name": model,
            "source": f"s3://bench/{model}/{i}",
            "tags": [{"key": "accuracy", "value": str(metric(i))}],
        }
        return int(ok(http.post(f"{self.base}/model-versions/create", json=body))["model_version"]["version"])

    def set_alias(self, http: httpx.Client, model: str, alias: str, version: int) -> None:
        body = {"name": model, "alias": alias, "version": str(version)}
        ok(http.post(f"{self.base}/registered-models/alias", json=body))

    def get_by_alias(self, http: httpx.Client, model: str, alias: str) -> int:
        body = ok(http.get(f"{self.base}/registered-models/alias", params={"name": model, "alias": alias}))
        return int(body["model_version"]["version"])

    def search_models(self, http: httpx.Client, prefix: str, max_results: int) -> int:
        params: dict[str, str | int] = {"filter": f"name LIKE '{prefix}%'", "max_results": max_results}
        return len(ok(http.get(f"{self.base}/registered-models/search", params=params)).get("registered_models", []))

    def list_versions(
        self, http: httpx.Client, model: str, page_size: int, page_token: str | None
    ) -> tuple[list[int], str | None]:
        # Newest first, as Covex lists them.
        params: dict[str, Any] = {
            "filter": f"name='{model}'",
            "max_results": page_size,
            "order_by": "version_number DESC",
        }
        if page_token:
            params["page_token"] = page_token
        body = ok(http.get(f"{self.base}/model-versions/search", params=params))
        return [int(v["version"]) for v in body.get("model_versions", [])], body.get("next_page_token") or None


# -- measuring --------------------------------------------------------------------------------

Op = Callable[[httpx.Client, int], Any]
OP_ERRORS = (httpx.HTTPError, ApiError, ValueError, KeyError, TypeError)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of sorted values, interpolated linearly."""
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Measure:
    """Latencies of the successful operations of one phase, its failures and its wall time."""

    latencies_ms: list[float] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def fail(self, exc: BaseException) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = f"{type(exc).__name__}: {exc}"[:300]

    def merge(self, other: Measure) -> None:
        self.latencies_ms += other.latencies_ms
        self.values += other.values
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error

    @property
    def ops_per_s(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "ops": len(ordered),
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": round(self.seconds, 3),
            "ops_per_s": round(self.ops_per_s, 2),
            "p50_ms": round(percentile(ordered, 0.50), 3),
            "p95_ms": round(percentile(ordered, 0.95), 3),
            "p99_ms": round(percentile(ordered, 0.99), 3),
            "notes": self.notes,
        }


def timed(http: httpx.Client, op: Op, i: int, into: Measure) -> None:
    start = time.perf_counter_ns()
    try:
        value = op(http, i)
    except OP_ERRORS as exc:
        into.fail(exc)
        return
    into.latencies_ms.append((time.perf_counter_ns() - start) / 1e6)
    into.values.append(value)


def run_sequential(http: httpx.Client, count: int, op: Op) -> Measure:
    m = Measure()
    start = time.perf_counter()
    for i in range(count):
        timed(http, op, i, m)
    m.seconds = time.perf_counter() - start
    return m


def run_threads(url: str, threads: int, per_thread: int, op: Op) -> Measure:
    """``threads`` threads, each with its own keep-alive client, start together and do ``per_thread`` ops."""
    parts = [Measure() for _ in range(threads)]
    crashes: list[BaseException] = []
    barrier = threading.Barrier(threads + 1, timeout=60)

    def worker(k: int) -> None:
        try:
            with http_client(url) as http:
                barrier.wait()
                for i in range(per_thread):
                    timed(http, op, k * per_thread + i, parts[k])
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            crashes.append(exc)
            barrier.abort()

    pool = [threading.Thread(target=worker, args=(k,), name=f"bench-{k}") for k in range(threads)]
    for t in pool:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    if crashes:
        raise crashes[0]
    total = Measure(seconds=elapsed)
    for part in parts:
        total.merge(part)
    return total


def seed(url: str, count: int, threads: int, fn: Op, what: str) -> None:
    """Do ``fn(http, i)`` for every i, on ``threads`` threads, retrying failures (not timed)."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        http: httpx.Client | None = getattr(local, "http", None)
        if http is None:
            http = local.http = http_client(url)
            with lock:
                clients.append(http)
        last: BaseException | None = None
        for attempt in range(SEED_ATTEMPTS):
            try:
                fn(http, i)
                return
            except OP_ERRORS as exc:
                last = exc
                time.sleep(0.05 * 2**attempt)
        raise RuntimeError(f"seeding {what} #{i} failed {SEED_ATTEMPTS} times: {last}")

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="seed") as pool:
            for _ in pool.map(call, range(count)):
                pass
    finally:
        for http in clients:
            http.close()
    log(f"  seeded {count} {what} in {time.perf_counter() - start:.1f} s")


# -- the registry phases ----------------------------------------------------------------------


@dataclass
class Target:
    api: Api
    server: Server
    http: httpx.Client


def warm_up(t: Target) -> None:
    """Touch every endpoint from a few connections (so every worker process), untimed."""
    api, model = t.api, "warmup"
    api.create_model(t.http, model)

    def touch(http: httpx.Client, i: int) -> None:
        api.create_version(http, model, i)
        api.set_alias(http, model, "warm", 1)
        api.get_by_alias(http, model, "warm")
        api.search_models(http, "warm", 100)
        api.list_versions(http, model, 10, None)

    seed(t.server.url, 32, 8, touch, "warm-up rounds")


def phase_sequential_create(t: Target, sizes: Sizes) -> Measure:
    t.api.create_model(t.http, "sequential")
    return run_sequential(t.http, sizes.seq_versions, lambda http, i: t.api.create_version(http, "sequential", i))


def all_versions(t: Target, model: str, expected: int) -> list[int]:
    found: list[int] = []
    token: str | None = None
    for _ in range(expected // 1000 + 2):
        page, token = t.api.list_versions(t.http, model, 1000, token)
        found += page
        if token is None:
            break
    return found


def phase_concurrent_create(t: Target, sizes: Sizes) -> Measure:
    model = "concurrent"
    t.api.create_model(t.http, model)
    m = run_threads(t.server.url, sizes.threads, sizes.per_thread, lambda http, i: t.api.create_version(http, model, i))
    total = sizes.threads * sizes.per_thread
    expected = set(range(1, total + 1))
    returned: list[int] = m.values
    duplicates = len(returned) - len(set(returned))
    missing = sorted(expected - set(returned))
    listed = all_versions(t, model, total)
    problems = []
    if duplicates:
        problems.append(f"{duplicates} duplicate version numbers returned")
    if missing:
        problems.append(f"{len(missing)} numbers missing from 1..{total} (first: {missing[:5]})")
    if sorted(listed) != sorted(returned):
        problems.append(f"listing shows {len(listed)} versions ({len(set(listed))} distinct), {len(returned)} created")
    if problems:
        m.notes.append("version numbers NOT unique and gap-free: " + "; ".join(problems))
    else:
        m.notes.append(f"version numbers unique and gap-free (1..{total}, confirmed by listing)")
    return m


def phase_get_by_alias(t: Target, sizes: Sizes) -> Measure:
    model, version = "sequential", max(1, sizes.seq_versions // 2)
    t.api.set_alias(t.http, model, "champion", version)

    def get(http: httpx.Client, _: int) -> int:
        got = t.api.get_by_alias(http, model, "champion")
        if got != version:
            raise ApiError(f"@champion resolved to {got}, expected {version}")
        return got

    return run_sequential(t.http, sizes.alias_gets, get)


def model_names(count: int) -> list[str]:
    width = len(str(count - 1))
    return [f"search-{i:0{width}d}" for i in range(count)]


def search_prefixes(count: int, searches: int, rng: random.Random) -> list[tuple[str, int]]:
    """Varied prefixes (matching tens of percent of the models down to one) with their match counts."""
    names = model_names(count)
    width = len(str(count - 1))
    out = []
    for _ in range(searches):
        digits = rng.randint(1, width)
        prefix = rng.choice(names)[: len("search-") + digits]
        out.append((prefix, sum(1 for n in names if n.startswith(prefix))))
    return out


def phase_search_models(t: Target, sizes: Sizes, prefixes: list[tuple[str, int]]) -> Measure:
    names = model_names(sizes.models)
    seed(t.server.url, len(names), sizes.seed_threads, lambda http, i: t.api.create_model(http, names[i]), "models")

    def search(http: httpx.Client, i: int) -> int:
        prefix, matches = prefixes[i]
        got = t.api.search_models(http, prefix, 100)
        if got != min(matches, 100):
            raise ApiError(f"'{prefix}%' found {got} models, expected {min(matches, 100)}")
        return got

    m = run_sequential(t.http, len(prefixes), search)
    m.notes.append(f"{len(prefixes)} searches among {sizes.models} models, max_results=100")
    return m


def phase_list_versions(t: Target, sizes: Sizes) -> Measure:
    model, total, size = "listing", sizes.list_versions, sizes.page_size
    t.api.create_model(t.http, model)
    seed(t.server.url, total, sizes.seed_threads, lambda http, i: t.api.create_version(http, model, i), "versions")
    pages = math.ceil(total / size)
    state: dict[str, Any] = {"token": None, "seen": 0, "next": total}

    def page(http: httpx.Client, i: int) -> int:
        if i % pages == 0:
            state.update(token=None, seen=0, next=total)
        versions, token = t.api.list_versions(http, model, size, state["token"])
        want = list(range(state["next"], max(state["next"] - size, 0), -1))
        if versions != want:
            state["token"] = None  # the next pages of this round are lost; they fail too
            raise ApiError(f"page {i % pages} held {versions[:3]}..., expected {want[:3]}...")
        state.update(token=token, seen=state["seen"] + len(versions), next=state["next"] - len(versions))
        if (token is None) != (i % pages == pages - 1):
            raise ApiError(f"page {i % pages} of {pages}: next_page_token is {token!r}")
        return len(versions)

    m = run_sequential(t.http, pages * sizes.list_rounds, page)
    m.notes.append(f"{sizes.list_rounds} listings of {total} versions, {pages} pages of {size}; latency per page")
    return m


def run_registry(targets: list[Target], sizes: Sizes, seed_value: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Every phase on every target, interleaved phase by phase so that machine drift hits both alike."""
    prefixes = search_prefixes(sizes.models, sizes.searches, random.Random(seed_value))
    phases: dict[str, Callable[[Target], Measure]] = {
        "sequential_create": lambda t: phase_sequential_create(t, sizes),
        "concurrent_create": lambda t: phase_concurrent_create(t, sizes),
        "get_by_alias": lambda t: phase_get_by_alias(t, sizes),
        "search_models": lambda t: phase_search_models(t, sizes, prefixes),
        "list_versions": lambda t: phase_list_versions(t, sizes),
    }
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name, run in phases.items():
        results[name] = {}
        for t in targets:
            log(f"{name} on {t.api.label}")
            m = run(t)
            s = m.summary()
            results[name][t.api.label] = s
            log(
                f"  {s['ops']} ops in {s['seconds']:.2f} s: {s['ops_per_s']:.1f}/s, p50 {s['p50_ms']:.2f} ms, "
                f"p95 {s['p95_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, {s['errors']} errors"
                + (f" (first: {s['first_error']})" if s["errors"] else "")
            )
            for note in m.notes:
                log(f"  {note}")
    return results


# -- the big file (Covex only) ----------------------------------------------------------------


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


def run_big(server: Server, tmp: Path, size_mb: int) -> dict[str, Any]:
    import covex

    work = tmp / "big"
    work.mkdir()
    src = work / "model.bin"
    log(f"big file: writing {size_mb} MiB of random bytes")
    write_big_file(src, size_mb)

    # Each timed transfer starts with no dirty pages, so none pays for the previous one's writeback.
    copies = []
    for _ in range(COPY_RUNS):
        os.sync()
        start = time.perf_counter()
        shutil.copyfile(src, work / "copy.bin")
        copies.append(time.perf_counter() - start)
        (work / "copy.bin").unlink()
    copy_s = statistics.median(copies)
    log(f"  shutil.copyfile: {', '.join(f'{rate(size_mb, c):.0f}' for c in copies)} MiB/s (median is the reference)")

    start = time.perf_counter()
    h = hashlib.sha256()
    with src.open("rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    hash_s = time.perf_counter() - start
    log(f"  sha256 of the file (what each side does once per transfer): {rate(size_mb, hash_s):.0f} MiB/s")

    pid = server.pid
    rss_before = memory_mb(pid, "VmRSS")
    peak_reset = reset_peak(pid)
    token = AUTH_HEADERS.get(server.url, {}).get("Authorization", "").removeprefix("Bearer ") or None
    with covex.Client(server.url, token=token) as client:
        client.create_model("bigfile")
        os.sync()
        start = time.perf_counter()
        version = client.create_version("bigfile", src)
        upload_s = time.perf_counter() - start
        if version.status != "READY" or version.size != size_mb * MIB:
            raise RuntimeError(f"upload ended {version.status} with {version.size} bytes")
        peak_upload = memory_mb(pid, "VmHWM")
        log(f"  upload (SDK create_version, hashing included): {rate(size_mb, upload_s):.0f} MiB/s")

        os.sync()
        start = time.perf_counter()
        out = client.download(f"models:/bigfile/{version.version}", work / "download")
        download_s = time.perf_counter() - start
        got = out / "model.bin"
        if got.stat().st_size != size_mb * MIB:
            raise RuntimeError(f"download holds {got.stat().st_size} bytes")
        peak = memory_mb(pid, "VmHWM")
        log(f"  download (SDK download, verification included): {rate(size_mb, download_s):.0f} MiB/s")
    shutil.rmtree(work, ignore_errors=True)

    copy_rate = rate(size_mb, copy_s)
    return {
        "size_mib": size_mb,
        "copy_mib_s": round(copy_rate, 1),
        "copy_runs_mib_s": [round(rate(size_mb, c), 1) for c in copies],
        "sha256_mib_s": round(rate(size_mb, hash_s), 1),
        "upload_mib_s": round(rate(size_mb, upload_s), 1),
        "download_mib_s": round(rate(size_mb, download_s), 1),
        "upload_vs_copy": round(rate(size_mb, upload_s) / copy_rate, 3),
        "download_vs_copy": round(rate(size_mb, download_s) / copy_rate, 3),
        "server_rss_before_mib": round(rss_before, 1),
        "server_peak_upload_mib": round(peak_upload, 1),
        "server_peak_mib": round(peak, 1),
        "server_growth_mib": round(peak - rss_before, 1),
        "peak_reset": peak_reset,
    }


# -- report -----------------------------------------------------------------------------------


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def ratios(registry: dict[str, dict[str, dict[str, Any]]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for phase in PHASES:
        row = registry.get(phase, {})
        c, m = row.get("Covex", {}).get("ops_per_s"), row.get("MLflow", {}).get("ops_per_s")
        out[phase] = round(c / m, 2) if c and m and not math.isnan(c) and not math.isnan(m) else None
    return out


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def report(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    registry: dict[str, dict[str, dict[str, Any]]] = results.get("registry", {})
    rs = ratios(registry)
    if registry:
        head = (
            f"{'phase':<18} | {'Covex ops/s':>11} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} | "
            f"{'MLflow ops/s':>12} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} | {'ratio':>6} | ≥{RATIO_TARGET:.0f}x"
        )
        lines += [head, "-" * len(head)]
        for phase in PHASES:
            c, m = registry[phase].get("Covex", {}), registry[phase].get("MLflow", {})
            r = rs[phase]
            errors = [f"{label} {row['errors']} errors" for label, row in registry[phase].items() if row["errors"]]
            lines.append(
                f"{phase:<18} | {fmt(c.get('ops_per_s'), 1):>11} {fmt(c.get('p50_ms')):>7} {fmt(c.get('p95_ms')):>7} "
                f"{fmt(c.get('p99_ms')):>7} | {fmt(m.get('ops_per_s'), 1):>12} {fmt(m.get('p50_ms')):>7} "
                f"{fmt(m.get('p95_ms')):>7} {fmt(m.get('p99_ms')):>7} | {fmt(r, 1):>6} | "
                + ("n/a" if r is None else verdict(r >= RATIO_TARGET))
                + (f"  ({', '.join(errors)})" if errors else "")
            )
        notes = registry["concurrent_create"].get("Covex", {}).get("notes", [])
        lines += ["", *(f"Covex concurrent_create: {n}" for n in notes)]
        lines += [
            f"MLflow concurrent_create: {n}" for n in registry["concurrent_create"].get("MLflow", {}).get("notes", [])
        ]
    big = results.get("big")
    if big:
        lines += [
            "",
            f"big file, Covex only: {big['size_mib']} MiB (MiB/s)",
            f"  plain copy (shutil.copyfile)  {big['copy_mib_s']:>8.0f}  (median of {len(big['copy_runs_mib_s'])})",
            f"  sha256 of the file            {big['sha256_mib_s']:>8.0f}",
            f"  upload (SDK create_version)   {big['upload_mib_s']:>8.0f}  = {big['upload_vs_copy']:.2f}x copy",
            f"  download (SDK download)       {big['download_mib_s']:>8.0f}  = {big['download_vs_copy']:.2f}x copy",
            f"  server RSS {big['server_rss_before_mib']:.0f} MiB before, peak {big['server_peak_upload_mib']:.0f} MiB "
            f"during upload, {big['server_peak_mib']:.0f} MiB overall: growth {big['server_growth_mib']:.1f} MiB"
            + ("" if big["peak_reset"] else " (peak not reset: includes earlier phases)"),
        ]
    lines += ["", "targets:"]
    if registry:
        for phase in PHASES:
            r = rs[phase]
            shown = "n/a (no MLflow run)" if r is None else f"{verdict(r >= RATIO_TARGET)}  {r:.1f}x"
            lines.append(f"  {phase + ' ≥ 10x MLflow':<42} {shown}")
        p50 = registry["get_by_alias"]["Covex"]["p50_ms"]
        p95 = registry["search_models"]["Covex"]["p95_ms"]
        lines.append(f"  {'get_by_alias p50 < 2 ms':<42} {verdict(p50 < ALIAS_P50_TARGET_MS)}  {p50:.2f} ms")
        lines.append(f"  {'search_models p95 < 50 ms':<42} {verdict(p95 < SEARCH_P95_TARGET_MS)}  {p95:.2f} ms")
    if big:
        up, down, growth = big["upload_vs_copy"], big["download_vs_copy"], big["server_growth_mib"]
        lines.append(f"  {'upload ≥ 0.5x plain copy':<42} {verdict(up >= TRANSFER_TARGET)}  {up:.2f}x")
        lines.append(f"  {'download ≥ 0.5x plain copy':<42} {verdict(down >= TRANSFER_TARGET)}  {down:.2f}x")
        lines.append(f"  {'server memory growth < 100 MB':<42} {verdict(growth < MEMORY_TARGET_MB)}  {growth:.1f} MiB")
    lines.append(json.dumps(rs))
    return lines


# -- main -------------------------------------------------------------------------------------


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    """Start the servers together, wait until each answers, and always stop them."""
    try:
        for s in servers:
            log(f"starting {s.label}: {' '.join(s.argv)}")
            s.start()
        for s in servers:
            s.wait_ready()
            log(f"{s.label} ready at {s.url} (pid {s.pid})")
        settle(servers, SETTLE_TIMEOUT, loud=True, window=1.0)
        yield
    finally:
        for s in servers:
            s.stop()
        log("servers stopped")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    p.add_argument("--skip-mlflow", action="store_true", help="run the registry phases on Covex only")
    p.add_argument("--skip-big", action="store_true", help="skip the big-file upload and download")
    p.add_argument("--skip-registry", action="store_true", help="only the big-file phase")
    p.add_argument("--big-mb", type=int, help="size of the big file in MiB (default 1024, 100 with --quick)")
    p.add_argument("--covex-workers", type=int, default=1, help="Covex server processes (default 1, its default)")
    p.add_argument("--mlflow-workers", type=int, help="MLflow server workers (default: MLflow's own, 4)")
    p.add_argument("--seed", type=int, default=20240601, help="seed of the search prefixes")
    p.add_argument("--out", type=Path, help="also write every number as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (data and server logs)")
    return p.parse_args(argv)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    sizes = QUICK if args.quick else Sizes()
    if args.big_mb is not None:
        sizes = replace(sizes, big_mb=args.big_mb)
    tmp = Path(tempfile.mkdtemp(prefix="covex-bench-"))
    log(f"temporary folder {tmp}")
    results: dict[str, Any] = {
        "machine": machine(("covex", "mlflow", "httpx")),
        "sizes": asdict(sizes),
        "quick": args.quick,
    }
    results["machine"]["load_average_at_start"] = os.getloadavg()
    covex = covex_server(tmp, args.covex_workers)
    servers = [covex]
    if not args.skip_mlflow and not args.skip_registry:
        servers.append(mlflow_server(tmp, args.mlflow_workers))
    results["servers"] = {s.label: " ".join(s.argv) for s in servers}
    try:
        with running(servers), contextlib.ExitStack() as clients:
            targets = []
            apis: list[Api] = [CovexApi(), MlflowApi()]
            for s, api in zip(servers, apis, strict=False):
                targets.append(Target(api, s, clients.enter_context(http_client(s.url))))
            if not args.skip_registry:
                for t in targets:
                    log(f"warming up {t.api.label}")
                    warm_up(t)
                results["registry"] = run_registry(targets, sizes, args.seed)
            if not args.skip_big:
                results["big"] = run_big(covex, tmp, sizes.big_mb)
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    lines = report(results)
    results["ratios"] = json.loads(lines[-1])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        log(f"wrote {args.out}")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
