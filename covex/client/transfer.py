"""Moving file content over HTTP: the network in one thread, hashing and writing in the caller's."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from covex import threads

# Pieces read ahead of the caller: memory stays bounded at about depth x buffer bytes.
READ_AHEAD = 4


def read_ahead(chunks: Iterable[bytes], buffer: int, depth: int = READ_AHEAD) -> Iterator[bytes]:
    """Yield ``chunks`` joined into pieces of at least ``buffer`` bytes (the last may be smaller), read ahead.

    A thread of its own pulls ``chunks`` (the HTTP client's small reads, which hold the GIL) while
    the caller hashes and writes the previous pieces (``hashlib`` and file writes release it for
    large buffers), so the two overlap instead of taking turns. An error while reading is raised
    to the caller; a caller that stops early stops the thread.
    """
    return threads.read_ahead(_pieces(chunks, buffer), depth)


def _pieces(chunks: Iterable[bytes], buffer: int) -> Iterator[bytes]:
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= buffer:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)
