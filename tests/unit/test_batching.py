"""Ingest batching (full batches go at once, a trickle waits at most max_wait) and the lookup
coalescer, as the asyncio server uses them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterable

import pytest

from server.batching import Coalescer, batched


async def items(values: Iterable[int]) -> AsyncIterator[int]:
    for value in values:
        yield value


async def collect(source: AsyncIterator[list[int]]) -> list[list[int]]:
    return [batch async for batch in source]


def test_a_burst_is_cut_into_full_batches() -> None:
    assert asyncio.run(collect(batched(items(range(7)), max_size=3, max_wait=1.0))) == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_partial_batch_is_released_after_max_wait() -> None:
    """The second item is only sent once the first batch arrived: a batch that waited for it,
    or for a full batch, would never arrive (the source gives up after a generous deadline)."""

    async def scenario() -> list[list[int]]:
        first_batch_out = asyncio.Event()

        async def trickle() -> AsyncIterator[int]:
            yield 1
            await asyncio.wait_for(first_batch_out.wait(), timeout=60)
            yield 2

        batches = batched(trickle(), max_size=100, max_wait=0.05)
        first = await anext(batches)
        first_batch_out.set()
        return [first, *await collect(batches)]

    assert asyncio.run(scenario()) == [[1], [2]]


def test_an_error_in_the_source_reaches_the_consumer_after_the_items_before_it() -> None:
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("client went away")

    async def scenario() -> None:
        batches = batched(broken(), max_size=10, max_wait=0.01)
        assert await anext(batches) == [1]
        with pytest.raises(RuntimeError, match="client went away"):
            await anext(batches)

    asyncio.run(scenario())


def test_an_empty_source_gives_no_batches() -> None:
    assert asyncio.run(collect(batched(items([]), max_size=5, max_wait=0.01))) == []


def test_the_coalescer_answers_many_callers_with_few_batch_calls() -> None:
    calls: list[list[int]] = []
    release = threading.Event()

    taken: list[list[int]] = []

    def answer(keys: list[int]) -> list[int]:
        taken.append(keys)
        release.wait(timeout=60)  # hold the first call so that later keys queue up
        calls.append(keys)
        return [k * 10 for k in keys]

    coalescer: Coalescer[int, int] = Coalescer(answer, max_size=100, workers=1)

    async def scenario() -> list[int]:
        asks = [asyncio.ensure_future(coalescer.ask(n)) for n in range(5)]
        # the first batch is held; every other key queues behind it
        while not (len(taken) == 1 and len(taken[0]) + coalescer.waiting == 5):
            await asyncio.sleep(0.001)
        release.set()
        return list(await asyncio.gather(*asks))

    assert asyncio.run(scenario()) == [0, 10, 20, 30, 40]
    assert len(calls) <= 2 and sorted(k for call in calls for k in call) == [0, 1, 2, 3, 4]
    coalescer.close()


def test_a_failed_batch_fails_every_caller_in_it() -> None:
    def answer(keys: list[int]) -> list[int]:
        raise RuntimeError("neo4j went away")

    coalescer: Coalescer[int, int] = Coalescer(answer, max_size=10, workers=1)
    with pytest.raises(RuntimeError, match="neo4j went away"):
        asyncio.run(coalescer.ask(1))
    coalescer.close()


def test_a_stream_gets_its_answers_in_order_while_sharing_batches() -> None:
    calls: list[list[int]] = []

    def answer(keys: list[int]) -> list[int]:
        calls.append(keys)
        time.sleep(0.001 * (len(calls) % 3))  # two workers finish their batches out of order
        return [k * 10 for k in keys]

    coalescer: Coalescer[int, int] = Coalescer(answer, max_size=4, workers=2)

    async def scenario() -> list[int]:
        return [answer async for answer in coalescer.answer_stream(items(range(200)))]

    assert asyncio.run(scenario()) == [n * 10 for n in range(200)]
    assert sorted(k for call in calls for k in call) == list(range(200))
    coalescer.close()


def test_many_streams_share_batches() -> None:
    """Ten streams asking at once are answered by fewer calls than there are requests."""
    calls: list[list[int]] = []

    def answer(keys: list[int]) -> list[int]:
        calls.append(keys)
        time.sleep(0.005)
        return keys

    coalescer: Coalescer[int, int] = Coalescer(answer, max_size=100, workers=1)

    async def one(stream: int) -> list[int]:
        return [a async for a in coalescer.answer_stream(items(range(stream * 100, stream * 100 + 50)))]

    async def scenario() -> list[list[int]]:
        return list(await asyncio.gather(*(one(s) for s in range(10))))

    answers = asyncio.run(scenario())
    assert answers == [list(range(s * 100, s * 100 + 50)) for s in range(10)]
    assert len(calls) < 100
    coalescer.close()


def test_an_answer_stream_ends_with_the_error_of_its_source_or_its_batch() -> None:
    async def broken_source() -> AsyncIterator[int]:
        yield 1
        raise ConnectionResetError("client went away")

    coalescer: Coalescer[int, int] = Coalescer(lambda keys: keys, max_size=4, workers=1)

    async def drain(source: AsyncIterator[int], c: Coalescer[int, int]) -> None:
        async for _ in c.answer_stream(source):
            pass

    with pytest.raises(ConnectionResetError):
        asyncio.run(drain(broken_source(), coalescer))

    def failing(keys: list[int]) -> list[int]:
        raise RuntimeError("neo4j went away")

    failing_coalescer: Coalescer[int, int] = Coalescer(failing, max_size=4, workers=1)
    with pytest.raises(RuntimeError, match="neo4j went away"):
        asyncio.run(drain(items([1, 2]), failing_coalescer))
    coalescer.close()
    failing_coalescer.close()
