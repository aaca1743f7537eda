"""Reading ahead: pieces arrive whole and in order, errors reach the caller, an early stop ends the reader."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from covex.client.transfer import read_ahead


def chunks(count: int, size: int) -> Iterator[bytes]:
    for i in range(count):
        yield bytes([i % 256]) * size


def test_pieces_join_small_reads_in_order_and_keep_every_byte() -> None:
    expected = b"".join(chunks(100, 1000))

    pieces = list(read_ahead(chunks(100, 1000), buffer=4096, depth=2))

    assert expected == b"".join(pieces)
    assert all(len(p) >= 4096 for p in pieces[:-1])
    assert [5000] * 20 == [len(p) for p in pieces]  # five reads of 1,000 reach 4,096


def test_a_short_last_piece_and_an_empty_source() -> None:
    assert [b"ab", b"c"] == list(read_ahead(iter([b"a", b"b", b"c"]), buffer=2))
    assert [] == list(read_ahead(iter([]), buffer=2))


def test_an_error_while_reading_is_raised_to_the_caller_after_what_came_before() -> None:
    def broken() -> Iterator[bytes]:
        yield b"x" * 10
        raise ConnectionError("the server went away")

    got = []
    with pytest.raises(ConnectionError, match="went away"):
        for piece in read_ahead(broken(), buffer=5):
            got.append(piece)

    assert [b"x" * 10] == got


def test_a_caller_that_stops_early_stops_the_reader() -> None:
    pulled = 0

    def endless() -> Iterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"y" * 100

    pieces = read_ahead(endless(), buffer=100, depth=2)
    assert b"y" * 100 == next(pieces)
    pieces.close()

    assert not any(t.name == "covex-read-ahead" for t in threading.enumerate())
    assert pulled < 10  # the reader stayed a few pieces ahead, not unbounded
