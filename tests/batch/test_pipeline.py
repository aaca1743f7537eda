"""Reading ahead and writing behind: order, errors raised where the job runs, bounded work in flight."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from covex.threads import WriteBehind, read_ahead


def test_items_come_in_order_and_the_producer_keeps_at_most_two_ahead() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(50):
            produced.append(i)
            yield i

    seen = []
    for item in read_ahead(items()):
        seen.append(item)
        assert len(produced) - len(seen) <= 2  # one waiting in the queue, one being made
    assert list(range(50)) == seen


def test_an_error_while_reading_is_raised_in_the_job_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise ValueError("row group 2 is corrupt")

    got = []
    with pytest.raises(ValueError, match="row group 2 is corrupt"):
        for item in read_ahead(items()):
            got.append(item)
    assert [1] == got


def test_a_job_that_stops_early_stops_the_reader_and_closes_its_source() -> None:
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    before = threading.active_count()
    reader = read_ahead(items())
    assert 0 == next(reader)
    reader.close()
    assert closed.is_set()
    assert before == threading.active_count()


def test_writes_happen_one_at_a_time_in_order_and_their_error_reaches_the_job() -> None:
    written: list[int] = []
    running = []

    def write(item: int) -> None:
        running.append(item)
        assert len(running) == 1
        if item == 3:
            raise OSError("disk full")
        written.append(item)
        running.pop()

    with pytest.raises(OSError, match="disk full"), WriteBehind(write) as writer:
        for i in range(10):
            writer.submit(i)
    assert [0, 1, 2] == written  # the error stopped the job at the next item


def test_the_last_write_is_waited_for_and_the_jobs_own_error_wins() -> None:
    written: list[int] = []
    with WriteBehind(written.append) as writer:
        writer.submit(1)
    assert [1] == written
    with pytest.raises(KeyError), WriteBehind(lambda item: written.append(item)) as writer:
        writer.submit(2)
        raise KeyError("scoring failed")
    assert [1, 2] == written  # finished before the sink could be closed
