"""Moving file content over HTTP: the network in one thread, hashing and writing in the caller's."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

# Pieces read ahead of the caller: memory stays bounded at about depth x buffer bytes.
READ_AHEAD = 4
_DONE = object()


def read_ahead(chunks: Iterable[bytes], buffer: int, depth: int = READ_AHEAD) -> Iterator[bytes]:
    """Yield ``chunks`` joined into pieces of at least ``buffer`` bytes (the last may be smaller), read ahead.

    A thread of its own pulls ``chunks`` (the HTTP client's small reads, which hold the GIL) while
    the caller hashes and writes the previous pieces (``hashlib`` and file writes release it for
    large buffers), so the two overlap instead of taking turns. An error while reading is raised
    to the caller; a caller that stops early stops the thread.
    """
    pieces: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                pieces.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pull() -> None:
        parts: list[bytes] = []
        size = 0
        try:
            for chunk in chunks:
                parts.append(chunk)
                size += len(chunk)
                if size >= buffer:
                    if not put(b"".join(parts)):
                        return
                    parts, size = [], 0
            if (not parts or put(b"".join(parts))) and not stop.is_set():
                put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            put(exc)

    reader = threading.Thread(target=pull, name="covex-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = pieces.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        stop.set()
        reader.join()
