"""Server processes for the benchmarks: start, wait until ready, measure CPU, stop.

Shared by ``registry.py`` and ``models.py``, which import it as ``servers`` (the folder of a script
run as ``python benchmarks/<name>.py`` is on ``sys.path``, whatever the working directory).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

READY_TIMEOUT = 180.0
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


def covex_token(data: Path, editor: str | None = None) -> str:
    """Bootstrap the admin of a fresh Covex data folder and return an API token.

    With ``editor``, the token is that user's instead: an editor of every model, not an admin,
    so each call goes through the full permission check.
    """
    from covex.service import open_service
    from covex.settings import Settings

    service = open_service(Settings(uri=str(data)))
    try:
        admin = service.access.bootstrap("admin").secret
        if editor is None:
            return admin
        service.access.create_user(editor)
        service.access.grant(f"user:{editor}", "editor")
        return str(service.access.create_token(editor, name="benchmark").secret)
    finally:
        service.close()
