"""The monitor runner: a server checks every active serving deployment every ``COVEX_MONITOR_INTERVAL`` seconds.

Every replica of a server tries; a lease in the database (``worker_leases``) lets one of them run
per interval, so a fleet of replicas checks each deployment once, not once per replica. The
checks go through ``covex.Client`` (embedded, on the server's own database and artifact store),
as ``covex monitor run --all`` would.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from covex.service import RegistryService
from covex.settings import Settings

log = logging.getLogger("covex.monitoring")
LEASE = "monitor-runner"


class MonitorRunner:
    """One process's runner: ``run_once`` checks everything if this process wins the lease."""

    def __init__(self, service: RegistryService, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def run_once(self) -> int | None:
        """The number of versions checked, or None when another process holds the lease."""
        interval = self.settings.monitor_interval or 60.0
        # Held a little less than an interval: this process's next turn finds it free or its own.
        if not self.service.monitoring.take_lease(LEASE, self.holder, interval * 0.9):
            return None
        import covex
        from covex.monitoring import run_all

        with covex.Client(self.settings.uri, settings=self.settings.model_copy(update={"token": None})) as client:
            done = run_all(client)
        for uri, outcome in done:
            if isinstance(outcome, Exception):
                log.warning("monitor: %s: %s", uri, outcome)
            else:
                log.info("monitor: %s: %s (%d rows)", uri, outcome.status, outcome.rows)
        return len(done)
