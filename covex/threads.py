"""Threads that let I/O and computation overlap, with bounded memory."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
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
