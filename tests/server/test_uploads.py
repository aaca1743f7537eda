"""The body-to-thread bridge of uploads: pieces in order, nothing read before the thread asks, errors passed on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.concurrency import run_in_threadpool

from covex.server.uploads import BodyChunks


async def body(pieces: list[bytes], read: list[int], fail: BaseException | None = None) -> AsyncIterator[bytes]:
    for p in pieces:
        read.append(len(p))
        yield p
        await asyncio.sleep(0)
    if fail is not None:
        raise fail


def test_the_thread_gets_the_body_in_order_joined_into_buffers() -> None:
    async def main() -> list[bytes]:
        read: list[int] = []
        chunks = BodyChunks(body([bytes([i]) * 100 for i in range(10)], read), buffer=250, depth=2)
        chunks.start()
        try:
            return await run_in_threadpool(list, chunks)
        finally:
            await chunks.stop()

    got = asyncio.run(main())

    assert b"".join(bytes([i]) * 100 for i in range(10)) == b"".join(got)
    assert [300, 300, 300, 100] == [len(p) for p in got]


def test_nothing_is_received_until_the_thread_asks_and_an_unread_body_stays_unread() -> None:
    async def main() -> list[int]:
        read: list[int] = []
        chunks = BodyChunks(body([b"x" * 10] * 5, read), buffer=10)
        chunks.start()
        await asyncio.sleep(0.05)  # a refused upload: the service never iterates
        await chunks.stop()
        return read

    assert [] == asyncio.run(main())


def test_an_error_while_receiving_reaches_the_thread_after_what_came_before() -> None:
    class Gone(Exception):
        pass

    async def main() -> list[bytes]:
        got: list[bytes] = []

        def consume() -> None:
            for piece in chunks:
                got.append(piece)

        chunks = BodyChunks(body([b"a" * 8, b"b" * 8], [], fail=Gone("client went away")), buffer=8)
        chunks.start()
        try:
            with pytest.raises(Gone):
                await run_in_threadpool(consume)
        finally:
            await chunks.stop()
        return got

    assert [b"a" * 8, b"b" * 8] == asyncio.run(main())
