"""Run the scoring server: one process, or ``workers`` processes behind one port, stopping gracefully.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections, lets requests in flight finish (up to
``GRACEFUL_SECONDS``), runs each worker's shutdown (the inference log is flushed), and exits 0.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile

from covex.serving.metrics import MULTIPROC_ENV
from covex.serving.options import OPTIONS_ENV, ServeOptions

GRACEFUL_SECONDS = 30


def run(options: ServeOptions, *, host: str, port: int, workers: int = 1, access_log: bool = False) -> None:
    """Serve ``options.uri`` on ``host:port`` until stopped."""
    import uvicorn

    from covex.server.protocol import uvicorn_options
    from covex.serving.app import create_app
    from covex.settings import Settings

    common = {
        "host": host,
        "port": port,
        "access_log": access_log,
        "log_level": "info",
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        **uvicorn_options(Settings(), workers=workers),
    }
    _stopped_is_success()
    log_to_stderr()
    if workers <= 1:
        uvicorn.run(create_app(options), **common)
        return
    # Each worker builds its app from the environment; their metrics meet in one folder.
    metrics_dir = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="covex-serve-metrics-")
    own_dir = MULTIPROC_ENV not in os.environ
    os.environ[MULTIPROC_ENV] = metrics_dir
    os.environ[OPTIONS_ENV] = options.model_dump_json()
    try:
        uvicorn.run("covex.serving.app:app_from_environment", factory=True, workers=workers, **common)
    finally:
        os.environ.pop(OPTIONS_ENV, None)
        if own_dir:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _stopped_is_success() -> None:
    """Make a graceful stop exit 0: uvicorn raises the signal it caught again once it has shut down."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)


def log_to_stderr() -> None:
    """Swaps and failed swaps on stderr, beside uvicorn's own lines (called by the process that serves)."""
    logger = logging.getLogger("covex.serving")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-9s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
