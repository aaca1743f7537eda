"""Test helpers: real servers on loopback ports, fresh PostgreSQL databases, file trees."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from covex.server.protocol import uvicorn_options
from covex.settings import Settings

PG_HOST = os.environ.get("COVEX_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("COVEX_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("COVEX_TEST_PG_USER", "postgres")


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with free_socket() as s:
        return int(s.getsockname()[1])


@contextmanager
def server_thread(app: Any, settings: Settings | None = None) -> Iterator[str]:
    """Run an ASGI app with uvicorn on a loopback port in this process, as ``covex server`` does; yield its URL."""
    sock = free_socket()
    port = sock.getsockname()[1]
    options = uvicorn_options(settings or Settings())
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def server_process(
    env: dict[str, str], port: int | None = None, *, options: Sequence[str] = (), log_path: Path | None = None
) -> Iterator[str]:
    """Run ``covex [options] server`` as a separate process; yield its URL once it answers.

    The server's stderr goes to ``log_path`` (default: a temporary file), never to an unread pipe,
    which would block the server once it fills.
    """
    port = port or free_port()
    argv = [sys.executable, "-m", "covex", *options, "server", "--port", str(port)]
    log_path = log_path or Path(tempfile.mkdtemp()) / "server.log"
    with _until_answering("covex server", argv, {**os.environ, **env}, port, "/ready", log_path, group=False) as url:
        yield url


@contextmanager
def _until_answering(
    what: str, argv: list[str], env: dict[str, str], port: int, ready: str, log_path: Path, *, group: bool
) -> Iterator[str]:
    """Start ``argv``, yield its URL once ``ready`` answers 200 (polled, 180 s at most), stop it at the end
    (``group``: with every process it started)."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=group)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited: {log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}{ready}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not become ready: {log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield url
    finally:
        stop = (lambda sig: os.killpg(proc.pid, sig)) if group else (lambda sig: proc.send_signal(sig))
        stop(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            stop(signal.SIGKILL)
            proc.wait()


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg

        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} as {PG_USER}: {exc}"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create a new, empty database for this run; drop it afterwards. Yields its SQLAlchemy URL."""
    import psycopg

    name = f"covex_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    """Write ``files`` (relative path → content) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class CliResult:
    """What one ``covex`` command printed, and how it exited."""

    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


def raw_request(url: str, method: str, raw_path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Any:
    """Send one HTTP/1.1 request with its path byte for byte (as ``curl --path-as-is``); return the response."""
    target = httpx.URL(url)
    lines = [f"{method} {raw_path} HTTP/1.1", f"Host: {target.host}:{target.port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection((target.host, target.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, content = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return httpx.Response(status, content=content, headers=[h.split(b": ", 1) for h in head.split(b"\r\n")[1:]])


@contextmanager
def mlflow_server_process(root: Path) -> Iterator[str]:
    """Run a real ``mlflow server`` (SQLite, proxied artifacts under ``root``); yield its URL once healthy."""
    port = free_port()
    argv = [
        str(Path(sys.executable).with_name("mlflow")),
        *("server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *(
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "mlartifacts"),
        ),
    ]
    with _until_answering(
        "mlflow server", argv, dict(os.environ), port, "/health", root / "mlflow-server.log", group=True
    ) as url:
        yield url
