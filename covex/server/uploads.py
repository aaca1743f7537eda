"""A request body handed to a worker thread as it arrives: the event loop receives, the thread hashes and writes.

The service stores a blob from a plain iterator of chunks (``put_blob``), in a worker thread. This
bridge feeds it: a task on the event loop receives the body, joins its small pieces into buffers of
``buffer`` bytes and queues them, at most ``depth`` ahead of the thread, so receiving overlaps hashing
and writing (both release the GIL on large buffers) and memory stays bounded. Nothing is received
before the service asks for the first chunk: a caller refused before that sends no body for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import AsyncIterator, Iterator

BUFFER = 4 * 1024 * 1024  # as much as the connection gathers before it pauses (protocol.UPLOAD_HIGH_WATER)
DEPTH = 4
_END = object()


class BodyChunks:
    """Iterate (in a worker thread) over what ``receive`` (a task on the event loop) gets."""

    def __init__(self, body: AsyncIterator[bytes], *, buffer: int = BUFFER, depth: int = DEPTH) -> None:
        self._body = body
        self._buffer = buffer
        self._loop = asyncio.get_running_loop()
        self._room = asyncio.Semaphore(depth)
        self._asked = asyncio.Event()
        self._pieces: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the receiving task (it waits until the thread asks for the first chunk)."""
        self._task = self._loop.create_task(self._receive())

    async def stop(self) -> None:
        """End the receiving task, whatever state it is in."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._task is not None:
            # What went wrong while receiving has reached the thread (and the caller) already.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _receive(self) -> None:
        await self._asked.wait()
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in self._body:
                parts.append(chunk)
                size += len(chunk)
                if size >= self._buffer:
                    await self._room.acquire()
                    self._pieces.put(b"".join(parts))
                    parts, size = [], 0
            if parts:
                await self._room.acquire()
                self._pieces.put(b"".join(parts))
            self._pieces.put(_END)
        except BaseException as exc:  # raised again in the thread, which aborts the blob
            self._pieces.put(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    def __iter__(self) -> Iterator[bytes]:
        self._loop.call_soon_threadsafe(self._asked.set)
        while True:
            item = self._pieces.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            self._loop.call_soon_threadsafe(self._room.release)
            assert isinstance(item, bytes)
            yield item
