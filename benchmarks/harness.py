"""What every benchmark shares: server processes, HTTP clients, timing and percentiles.

Each script imports it as ``harness`` (the folder of a script run as ``python benchmarks/<name>.py``
is on ``sys.path``, whatever the working directory); no script imports another script.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

READY_TIMEOUT = 180.0
SETTLE_TIMEOUT = 120.0
HTTP_TIMEOUT = 120.0
SEED_ATTEMPTS = 5
STOP_TIMEOUT = 20.0
SETTLE_CPU = 0.05  # CPU seconds per second below which the server trees count as idle


def log(message: str) -> None:
    """One time-stamped line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool(name: str) -> Path:
    """A console script of this interpreter's environment (the project's virtual environment)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"cannot find the '{name}' command next to {sys.executable} or on PATH")
    return Path(found)


class Server:
    """One server process and its workers, in a session of its own, logging to a file."""

    def __init__(self, label: str, argv: list[str], port: int, ready_path: str, log_path: Path) -> None:
        self.label, self.argv, self.port = label, argv, port
        self.url = f"http://127.0.0.1:{port}"
        self.ready_path = ready_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not started"
        return self.proc.pid

    def start(self) -> None:
        # No outbound traffic from the server: nothing but loopback is reachable here anyway.
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll the ready path until it answers 200; raise if the server exits or the timeout passes."""
        assert self.proc is not None, "server not started"
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.label} exited with {self.proc.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get(self.url + self.ready_path).status_code == 200:
                        return
                time.sleep(0.25)
        raise TimeoutError(f"{self.label} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the process group this server leads, SIGKILL if it lingers, then to stragglers."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        # Workers that outlived their parent are still in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn workers when the server runs several)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time used so far by a process tree (from /proc, 10 ms resolution)."""
    ticks = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(stat[11]) + int(stat[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def settle(servers: Sequence[Server], timeout: float, loud: bool = False, window: float = 0.5) -> bool:
    """Wait until the server trees stay under SETTLE_CPU for two windows in a row; True if they did.

    Logs the outcome when ``loud`` or when they are still busy at the timeout.
    """
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        before = sum(cpu_seconds(s.pid) for s in servers)
        time.sleep(window)
        used = sum(cpu_seconds(s.pid) for s in servers) - before
        quiet = quiet + 1 if used < SETTLE_CPU * window else 0
    if loud or quiet < 2:
        state = "idle" if quiet >= 2 else f"still busy after {timeout:.0f} s"
        log(f"servers {state}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return quiet >= 2


def machine(packages: Sequence[str]) -> dict[str, Any]:
    """Python, platform, core count and the versions of ``packages``, for a results file."""

    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **{p: version(p) for p in packages},
    }


def covex_token(data: Path, editor: str | None = None, *, uri: str | None = None) -> str:
    """Bootstrap the admin of a fresh Covex data folder and return an API token.

    With ``editor``, the token is that user's instead: an editor of every model, not an admin,
    so each call goes through the full permission check.
    """
    from covex.service import open_service
    from covex.settings import Settings

    settings = Settings(uri=str(data)) if uri is None else Settings(uri=uri, artifacts=str(data / "artifacts"))
    service = open_service(settings)
    try:
        admin = service.access.bootstrap("admin").secret
        if editor is None:
            return admin
        service.access.create_user(editor)
        service.access.grant(f"user:{editor}", "editor")
        return str(service.access.create_token(editor, name="benchmark").secret)
    finally:
        service.close()


# -- Covex and MLflow servers, HTTP clients ---------------------------------------------------

# API tokens by server URL; http_client sends them.
AUTH_HEADERS: dict[str, dict[str, str]] = {}


def covex_server(
    tmp: Path,
    workers: int,
    *,
    auth: bool = True,
    editor: str | None = None,
    label: str = "Covex",
    uri: str | None = None,
) -> Server:
    """A Covex server on its own data folder (or database ``uri``, with its files in a folder of its own).

    With ``auth``, callers use a token (an editor's, if named).
    """
    port = free_port()
    data = tmp / f"{label.lower().replace(' ', '-')}-data"
    where = ["--uri", str(data)] if uri is None else ["--uri", uri, "--artifacts", str(data / "artifacts")]
    argv = [str(tool("covex")), *where, "server", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    if not auth:
        argv.append("--no-auth")
    server = Server(label, argv, port, "/ready", tmp / f"{data.name}.log")
    if auth:
        token = covex_token(data, editor, uri=uri)
        AUTH_HEADERS[server.url] = {"Authorization": f"Bearer {token}"}
    return server


def mlflow_server(tmp: Path, workers: int | None) -> Server:
    port = free_port()
    argv = [
        str(tool("mlflow")),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp / 'mlflow.db'}",
        # MLflow's default: --serve-artifacts, so files go through the server (mlflow-artifacts:/), as Covex's do.
        "--artifacts-destination",
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


class ApiError(Exception):
    """A request was answered with an error, or with something other than expected."""


def ok(response: httpx.Response) -> Any:
    if not response.is_success:
        raise ApiError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:200]}"
        )
    return response.json() if response.content else None


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
