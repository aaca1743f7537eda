"""Overlap a batch job's reading and writing with its scoring, one chunk ahead on each side.

Arrow decodes and encodes Parquet and CSV without holding the GIL, so while the model scores chunk
``n`` a thread reads chunk ``n + 1`` and another writes chunk ``n - 1``. Each side holds at most one
chunk, so memory stays bounded by a few chunks whatever the input's size; an error on either side
is raised in the job's thread, as if the work had been done there.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from covex.threads import read_ahead

__all__ = ["WriteBehind", "read_ahead"]


class WriteBehind:
    """Run ``write(item)`` in a thread, one call at a time, while the caller prepares the next item.

    ``submit`` waits for the previous write first (raising its error), so one item at most is
    waiting to be written; ``flush`` waits for the last one. Use as a context manager.
    """

    def __init__(self, write: Callable[[Any], None]) -> None:
        self._write = write
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="covex-batch-write")
        self._pending: Future[None] | None = None

    def submit(self, item: Any) -> None:
        self.flush()
        self._pending = self._pool.submit(self._write, item)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pending, self._pending = self._pending, None
        try:
            if pending is not None and exc_info[0] is None:
                pending.result()
            elif pending is not None:
                wait([pending])  # the caller's error wins; the sink is not closed under a running write
        finally:
            self._pool.shutdown(wait=True)
