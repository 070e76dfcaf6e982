"""ReaderThread: a blocking iterator read on a thread of its own, its end and its error handed over."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from client.reader import Ended, ReaderThread

# How long a test waits for something that takes milliseconds, before it calls it a failure.
DEADLINE = 30.0


def drain(reader: ReaderThread[int]) -> list[int | Ended | None]:
    items: list[int | Ended | None] = []
    while not isinstance(item := reader.get(DEADLINE), Ended | None):
        items.append(item)
    return [*items, item]


def test_the_items_come_in_order_then_one_end() -> None:
    with ReaderThread(lambda: iter(range(5)), capacity=2, name="test-reader") as reader:
        assert drain(reader) == [0, 1, 2, 3, 4, Ended()]


def test_an_error_of_the_source_is_handed_to_the_consumer() -> None:
    failure = RuntimeError("the stream broke")

    def broken() -> Iterator[int]:
        yield 1
        raise failure

    with ReaderThread(broken, capacity=10, name="test-reader") as reader:
        assert drain(reader) == [1, Ended(failure)]


def test_a_quiet_source_answers_none_after_the_timeout() -> None:
    release = threading.Event()

    def quiet() -> Iterator[int]:
        release.wait(DEADLINE)
        yield 1

    with ReaderThread(quiet, capacity=10, name="test-reader") as reader:
        assert reader.get(0.01) is None
        release.set()
        assert reader.get(DEADLINE) == 1


class Cancellable:
    """A stream that blocks until cancelled, as a quiet gRPC stream does."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def __iter__(self) -> Iterator[int]:
        yield 1
        self.cancelled.wait(DEADLINE)

    def cancel(self) -> None:
        self.cancelled.set()


def test_close_cancels_a_source_that_can_be_cancelled() -> None:
    stream = Cancellable()
    reader = ReaderThread(lambda: stream, capacity=10, name="test-reader")
    assert reader.get(DEADLINE) == 1
    reader.close()
    assert stream.cancelled.is_set()


def test_close_frees_a_reader_blocked_on_a_full_queue() -> None:
    handed: list[int] = []

    def endless() -> Iterator[int]:
        for n in range(1_000_000):
            handed.append(n)
            yield n

    reader = ReaderThread(endless, capacity=3, name="test-reader-full")
    assert reader.get(DEADLINE) == 0
    reader.close()
    assert wait_until(lambda: not any(t.name == "test-reader-full" for t in threading.enumerate()))
    assert len(handed) < 10  # it read ahead only as far as the queue had room


def wait_until(condition: Callable[[], bool]) -> bool:
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True
