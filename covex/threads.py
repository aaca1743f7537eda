"""Threads that let I/O and computation overlap, with bounded memory.

A batch job reads its next chunk (``read_ahead``) and writes its last one (``WriteBehind``) while the
model scores the current one; Arrow decodes and encodes without holding the GIL, so the three overlap.
Downloads read the network ahead of hashing and writing the same way.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


def read_ahead(items: Iterable[T], depth: int = 1, name: str = "covex-read-ahead") -> Iterator[T]:
    """``items``, produced by a thread of its own that keeps ``depth`` items ready (and one in the making)
    ahead of the caller, so that producing (I/O that releases the GIL) and consuming overlap.

    An error while producing is raised to the caller, after the items before it. A caller that stops
    early (an error of its own, or a closed generator) stops the thread and closes ``items``.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(ready, (item, None), stop):
                    return
            _put(ready, (_DONE, None), stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            _put(ready, (_DONE, exc), stop)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _put(q: queue.Queue[Any], value: Any, stop: threading.Event) -> bool:
    """Put ``value`` once there is room; False when the consumer has gone away first."""
    while not stop.is_set():
        try:
            q.put(value, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class WriteBehind:
    """Run ``write(item)`` in a thread, one call at a time, while the caller prepares the next item.

    ``submit`` waits for the previous write first (raising its error), so one item at most is
    waiting to be written; ``flush`` waits for the last one. Use as a context manager.
    """

    def __init__(self, write: Callable[[Any], None]) -> None:
        self._write = write
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="covex-write-behind")
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
