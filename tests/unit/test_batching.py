"""Ingest batching: full batches go at once, a trickle waits at most max_wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from server.batching import batched


def test_a_burst_is_cut_into_full_batches() -> None:
    assert list(batched(iter(range(7)), max_size=3, max_wait=1.0)) == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_partial_batch_is_released_after_max_wait() -> None:
    """The second item is only sent once the first batch arrived: a batch that waited for it,
    or for a full batch, would never arrive (the source gives up after a generous deadline)."""
    first_batch_out = threading.Event()

    def trickle() -> Iterator[int]:
        yield 1
        if not first_batch_out.wait(timeout=60):
            raise AssertionError("the first batch waited for the second item")
        yield 2

    batches = batched(trickle(), max_size=100, max_wait=0.05)
    assert next(batches) == [1]
    first_batch_out.set()
    assert list(batches) == [[2]]


def test_an_error_in_the_source_reaches_the_consumer_after_the_items_before_it() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("client went away")

    batches = batched(broken(), max_size=10, max_wait=0.01)
    assert next(batches) == [1]
    with pytest.raises(RuntimeError, match="client went away"):
        next(batches)


def test_an_empty_source_gives_no_batches() -> None:
    assert list(batched(iter([]), max_size=5, max_wait=0.01)) == []


def test_the_coalescer_answers_many_callers_with_few_batch_calls() -> None:
    from server.batching import Coalescer

    calls: list[list[int]] = []
    release = threading.Event()

    def answer(keys: list[int]) -> list[int]:
        release.wait(timeout=60)  # hold the first call so that later keys queue up
        calls.append(keys)
        return [k * 10 for k in keys]

    coalescer: Coalescer[int, int] = Coalescer(answer, max_size=100, workers=1)
    futures = [f for n in range(5) for f in coalescer.submit_many([n])]
    release.set()
    assert [f.result(timeout=60) for f in futures] == [0, 10, 20, 30, 40]
    assert len(calls) <= 2 and sorted(k for call in calls for k in call) == [0, 1, 2, 3, 4]
    coalescer.close()


def test_a_failed_batch_fails_every_caller_in_it() -> None:
    from server.batching import Coalescer

    def answer(keys: list[int]) -> list[int]:
        raise RuntimeError("neo4j went away")

    coalescer: Coalescer[int, int] = Coalescer(answer, max_size=10, workers=1)
    (future,) = coalescer.submit_many([1])
    with pytest.raises(RuntimeError, match="neo4j went away"):
        future.result(timeout=60)
    coalescer.close()


def test_a_stream_gets_its_answers_in_order_while_sharing_batches() -> None:
    from server.batching import Coalescer

    calls: list[list[int]] = []

    def answer(keys: list[int]) -> list[int]:
        calls.append(keys)
        time.sleep(0.001 * (len(calls) % 3))  # two workers finish their batches out of order
        return [k * 10 for k in keys]

    coalescer: Coalescer[int, int] = Coalescer(answer, max_size=4, workers=2)
    answers = list(coalescer.answer_stream(iter(range(200)), key=lambda n: n + 1))
    assert answers == [(n, (n + 1) * 10) for n in range(200)]
    assert sorted(k for call in calls for k in call) == list(range(1, 201))
    coalescer.close()


def test_an_answer_stream_ends_with_the_error_of_its_source_or_its_batch() -> None:
    from server.batching import Coalescer

    def broken_source() -> Iterator[int]:
        yield 1
        raise ConnectionResetError("client went away")

    coalescer: Coalescer[int, int] = Coalescer(lambda keys: keys, max_size=4, workers=1)
    with pytest.raises(ConnectionResetError):
        list(coalescer.answer_stream(broken_source(), key=lambda n: n))

    def failing(keys: list[int]) -> list[int]:
        raise RuntimeError("neo4j went away")

    failing_coalescer: Coalescer[int, int] = Coalescer(failing, max_size=4, workers=1)
    with pytest.raises(RuntimeError, match="neo4j went away"):
        list(failing_coalescer.answer_stream(iter([1, 2]), key=lambda n: n))
    coalescer.close()
    failing_coalescer.close()
