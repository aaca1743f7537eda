"""Refusals of callers without a valid token, counted per source so they cannot flood the audit trail.

Every refused attempt by a known principal is audited one by one. Someone with no account
could otherwise grow the trail (and slow every writer, who shares its head row) with a loop
of requests; so for them the first refusal from a source is recorded at once, and the ones
that follow within ``interval`` seconds are counted and recorded as one record with the
count once the interval is over: on the source's next refusal, or when the server's
periodic sweep asks for what is due.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

# Past this many sources in one interval, further sources share one count ("*"), so memory stays bounded.
MAX_SOURCES = 10_000
OTHER_SOURCES = "*"


@dataclass
class Tally:
    """Refusals from one source that were counted, not yet recorded."""

    source: str
    opened: float
    count: int = 0
    reason: str = ""


class AnonymousRefusals:
    """Decides which refusals without a valid token are recorded one by one and which are counted."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._open: OrderedDict[str, Tally] = OrderedDict()  # oldest window first

    def admit(self, source: str, reason: str, now: float) -> tuple[bool, list[Tally]]:
        """Whether to record this refusal on its own, and the counts whose interval is over."""
        if self.interval <= 0:
            return True, []
        with self._lock:
            due = self._close(now)
            if source not in self._open and len(self._open) >= MAX_SOURCES:
                source = OTHER_SOURCES
            tally = self._open.get(source)
            if tally is None:
                self._open[source] = Tally(source, now)
                return True, due
            tally.count += 1
            tally.reason = reason
            return False, due

    def due(self, now: float, *, everything: bool = False) -> list[Tally]:
        """Counts whose interval is over (``everything``: all of them, e.g. at shutdown)."""
        with self._lock:
            return self._close(float("inf") if everything else now)

    def _close(self, now: float) -> list[Tally]:
        closed = []
        while self._open:
            tally = next(iter(self._open.values()))
            if tally.opened + self.interval > now:
                break
            self._open.popitem(last=False)
            if tally.count:
                closed.append(tally)
        return closed
