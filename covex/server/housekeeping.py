"""Periodic chores of a server process, in one background thread beside the requests.

Each chore is safe to run from every server process at once (several replicas share the
database): a chore that finds nothing to do writes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from covex.service import RegistryService
from covex.settings import Settings

log = logging.getLogger("covex.server")


@dataclass
class Chore:
    name: str
    every: float
    run: Callable[[], object]
    due: float = field(default=0.0)


class Housekeeper:
    """Runs chores, each every so many seconds, until ``stop``; ``stop`` runs ``last`` once."""

    def __init__(self, chores: list[Chore], last: Callable[[], object] | None = None) -> None:
        self.chores = [c for c in chores if c.every > 0]
        self.last = last
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Housekeeper:
        if self.chores and self._thread is None:
            now = time.monotonic()
            for chore in self.chores:
                chore.due = now + chore.every
            self._thread = threading.Thread(target=self._loop, name="covex-housekeeping", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self.last is not None:
            self._attempt("final", self.last)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            now = time.monotonic()
            for chore in self.chores:
                if chore.due <= now:
                    self._attempt(chore.name, chore.run)
                    chore.due = now + chore.every
            self._stopping.wait(max(0.0, min(c.due for c in self.chores) - time.monotonic()))

    @staticmethod
    def _attempt(name: str, run: Callable[[], object]) -> None:
        try:
            run()
        except Exception:  # the database may be away for a while: try again next time
            log.exception("housekeeping chore %r failed; it runs again later", name)


CHECKPOINT_INTERVAL = 1.0  # seconds; a passive checkpoint with nothing to copy costs microseconds


def lifespan(service: RegistryService, settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A FastAPI lifespan running this process's chores while it serves."""
    chores = [
        Chore("record refusals without a token", settings.anonymous_audit_interval, service.flush_refusals),
        Chore("fail versions left PENDING", settings.sweep_interval, service.maintenance.sweep_pending),
    ]
    if service.engine.dialect.name == "sqlite":  # creates committed on the event loop leave it to this chore
        chores.append(Chore("checkpoint the write-ahead log", CHECKPOINT_INTERVAL, service.maintenance.checkpoint))
    if settings.scan_interval > 0:
        # Versions that turn READY here are scanned by this chore, not in the request that finished them.
        service.scan_inline = False
        chores.append(Chore("scan versions that turned READY", settings.scan_interval, service.trust.run_pending_scans))
    if settings.monitor_interval > 0:
        from covex.workers.monitor import MonitorRunner

        chores.append(
            Chore("check active deployments", settings.monitor_interval, MonitorRunner(service, settings).run_once)
        )

    @asynccontextmanager
    async def run(_: FastAPI) -> AsyncIterator[None]:
        keeper = Housekeeper(chores, last=lambda: service.flush_refusals(everything=True)).start()
        try:
            yield
        finally:
            await run_in_threadpool(keeper.stop)

    return run
