"""A deployment's record, kept by the process that runs the version (``covex serve``, ``covex batch``).

It records the start, heartbeats from a thread of its own, moves the record when the server swaps
versions, and ends it. Recording never stops the work: when the registry does not answer (or the
token may not record), the failure is logged and the next heartbeat tries again; a record that
could not be started is started by the next beat that can.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from covex.client import Client
from covex.domain.deployments import HEARTBEAT_SECONDS, Deployment
from covex.domain.errors import CovexError

log = logging.getLogger("covex.recording")


class DeploymentRecord:
    """The record of one deployment of ``uri`` as ``kind`` ('serving' or 'batch') at ``target``."""

    def __init__(
        self,
        client: Client,
        uri: str,
        kind: str,
        target: str,
        *,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        log_location: str | None = None,
    ) -> None:
        self.client, self.uri, self.kind, self.target = client, uri, kind, target
        self.log_location = log_location
        self.heartbeat_seconds = heartbeat_seconds
        self.deployment: Deployment | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._pending: dict[str, Any] = {}  # what a failed update still has to say
        self._status: str | None = None

    # -- the life of a deployment ------------------------------------------------------------

    def start(self, status: str | None = None, *, heartbeat: bool = True) -> Deployment | None:
        """Record the start (``status`` as given, else STARTING/RUNNING), then heartbeat in the background."""
        self._status = status
        with self._lock:
            self._try_start()
        if heartbeat and self._beat is None:
            self._beat = threading.Thread(target=self._heartbeats, name="covex-heartbeat", daemon=True)
            self._beat.start()
        return self.deployment

    def update(self, **changes: Any) -> Deployment | None:
        """Change what is given (``status``, ``version``, ``message``, ``rows``, ``duration_s``); a heartbeat too."""
        with self._lock:
            self._pending.update({k: v for k, v in changes.items() if v is not None})
            self._flush()
        return self.deployment

    def swapped(self, version: int, message: str = "") -> Deployment | None:
        """The process serves ``version`` now."""
        return self.update(version=version, message=message or None)

    def end(self, status: str, *, message: str = "", **counts: Any) -> Deployment | None:
        """Stop heartbeating and record the end (STOPPED, SUCCEEDED or FAILED)."""
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(timeout=self.heartbeat_seconds + 10)
        return self.update(status=status, message=message or None, **counts)

    def __enter__(self) -> DeploymentRecord:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """A block that raised ends FAILED with the error; else the caller has ended it (or it ends now)."""
        if self.deployment is not None and self.deployment.status in ("STOPPED", "SUCCEEDED", "FAILED"):
            self._stop.set()
            return
        if exc is not None:
            self.end("FAILED", message=f"{type(exc).__name__}: {exc}"[:1000])
        else:
            self.end("SUCCEEDED" if self.kind == "batch" else "STOPPED")

    # -- inside ------------------------------------------------------------------------------

    def _try_start(self) -> None:
        if self.deployment is not None:
            return
        try:
            self.deployment = self.client.start_deployment(
                self.uri, self.kind, self.target, status=self._status, log_location=self.log_location
            )
        except CovexError as exc:
            log.warning("could not record the deployment of %s at %s: %s", self.uri, self.target, exc)

    def _flush(self) -> None:
        """Send what is pending (at least a heartbeat), starting the record first if it never was."""
        self._try_start()
        if self.deployment is None:
            return
        try:
            self.deployment = self.client.update_deployment(self.deployment.id, **self._pending)
            self._pending.clear()
        except CovexError as exc:
            log.warning("could not update deployment %s: %s", self.deployment.id, exc)

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            with self._lock:
                if self._stop.is_set():
                    return
                self._flush()
