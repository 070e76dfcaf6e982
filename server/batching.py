"""Batching: a stream's messages grouped by size and time, and many callers' keys coalesced.

Ingest writes one transaction per batch: a full batch goes at once, and a trickle waits at
most `max_wait` seconds, so a lone event is acked quickly and a flood is written in bulk.
Lookups from all streams are coalesced into shared queries (Coalescer).

Both serve the asyncio server: a stream is read by a coroutine, never by a thread of its own.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from server.errors import ResourceExhausted
from server.tuning import LOOKUP_QUEUE_LIMIT, LOOKUP_WORKERS

T = TypeVar("T")


@dataclass(frozen=True)
class Ended:
    """The end of a stream read ahead by a task: ran out (error None) or raised error."""

    error: BaseException | None = None


def _finish(ended: Ended) -> None:
    if ended.error is not None:
        raise ended.error


async def batched(source: AsyncIterator[T], max_size: int, max_wait: float) -> AsyncIterator[list[T]]:
    """Yields lists of at most max_size items; a batch waits at most max_wait for more.

    The source is read ahead by a task (at most two batches' worth), so the next batch gathers
    while the caller writes this one."""
    ahead: asyncio.Queue[T | Ended] = asyncio.Queue(maxsize=max_size * 2)
    reader = asyncio.create_task(_read_ahead(source, ahead))
    try:
        while True:
            first = await ahead.get()
            if isinstance(first, Ended):
                _finish(first)
                return
            batch = [first]
            ended = await _fill(ahead, batch, max_size, asyncio.get_running_loop().time() + max_wait)
            yield batch
            if ended is not None:
                _finish(ended)
                return
    finally:
        reader.cancel()


async def _read_ahead(source: AsyncIterator[T], ahead: asyncio.Queue[T | Ended]) -> None:
    try:
        async for item in source:
            await ahead.put(item)
    except Exception as exc:  # the consumer raises it, after the items before it
        await ahead.put(Ended(exc))
        return
    await ahead.put(Ended())


async def _fill(ahead: asyncio.Queue[T | Ended], batch: list[T], max_size: int, deadline: float) -> Ended | None:
    """Adds items until the batch is full or the deadline passes; returns the end if seen."""
    loop = asyncio.get_running_loop()
    while len(batch) < max_size:
        try:
            item = ahead.get_nowait()
        except asyncio.QueueEmpty:
            try:
                item = await asyncio.wait_for(ahead.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                return None
        if isinstance(item, Ended):
            return item
        batch.append(item)
    return None


K = TypeVar("K")
V = TypeVar("V")
# How many requests one lookup stream may have in flight before reading more of it.
STREAM_WINDOW = 1000


class Coalescer(Generic[K, V]):
    """Answers keys asked by many streams with few calls of one batch function.

    Lookups from many streams arrive one or a few at a time; a Neo4j round trip costs about
    as much for one key as for a hundred. Worker threads take everything that is waiting (up
    to max_size), answer it with one call, and settle the askers' futures with one wake-up of
    the event loop per batch. The batch function does all the Python work of an answer
    (building the response message included), so the event loop, which also answers health
    checks, only moves messages.
    """

    def __init__(self, answer: Callable[[list[K]], list[V]], max_size: int, workers: int = LOOKUP_WORKERS,
                 observe: Callable[[float], None] | None = None, max_waiting: int = LOOKUP_QUEUE_LIMIT) -> None:
        self._answer = answer
        self._observe = observe  # gets each answer's seconds from ask to answer
        self._max_size = max_size
        self._max_waiting = max_waiting
        self._waiting: queue.Queue[Asked[K, V] | None] = queue.Queue()
        self._workers = [threading.Thread(target=self._work, daemon=True, name=f"coalesce-{n}") for n in range(workers)]
        for worker in self._workers:
            worker.start()

    @property
    def waiting(self) -> int:
        """Keys asked and not yet taken by a worker."""
        return self._waiting.qsize()

    def ask_soon(self, key: K) -> asyncio.Future[V]:
        """Queues the key; the future (of the running loop) settles with its answer or the batch's error."""
        if self._waiting.qsize() >= self._max_waiting:
            raise ResourceExhausted(f"{self._waiting.qsize()} lookups wait to be answered, the limit of this server; "
                                    "retry later or on another server")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V] = loop.create_future()
        self._waiting.put(Asked(key, future, loop))
        return future

    async def ask(self, key: K) -> V:
        return await self.ask_soon(key)

    async def answer_stream(self, items: AsyncIterator[K]) -> AsyncIterator[V]:
        """The answer to each item of a stream, in the stream's order.

        A task asks for items as they arrive (up to STREAM_WINDOW unanswered), so a stream with
        many requests in flight shares queries with every other stream."""
        in_order: asyncio.Queue[asyncio.Future[V] | Ended] = asyncio.Queue(maxsize=STREAM_WINDOW)

        async def read() -> None:
            try:
                async for item in items:
                    await in_order.put(self.ask_soon(item))
            except Exception as exc:  # the consumer re-raises it
                await in_order.put(Ended(exc))
                return
            await in_order.put(Ended())

        reader = asyncio.create_task(read())
        try:
            while not isinstance(entry := await in_order.get(), Ended):
                yield await entry
            _finish(entry)
        finally:
            reader.cancel()
            _forsake(in_order)

    def close(self) -> None:
        for _ in self._workers:
            self._waiting.put(None)

    def _work(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_size:
                try:
                    item = self._waiting.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._waiting.put(None)  # leave the stop signal for this worker's next turn
                    break
                batch.append(item)
            self._answer_batch(batch)

    def _answer_batch(self, batch: list[Asked[K, V]]) -> None:
        try:
            answers: list[V | BaseException] = list(self._answer([asked.key for asked in batch]))
        except BaseException as exc:  # every asker of the batch gets the error
            answers = [exc] * len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[V], V | BaseException]]] = {}
        answered = time.perf_counter()
        for asked, answer in zip(batch, answers, strict=True):
            by_loop.setdefault(asked.loop, []).append((asked.future, answer))
            if self._observe is not None:
                self._observe(answered - asked.at)
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, settled)
            except RuntimeError:  # the loop is closed: the server stopped, nobody waits any more
                pass


def _forsake(in_order: asyncio.Queue[asyncio.Future[V] | Ended]) -> None:
    """Answers a stream will never hand out (it ended early): cancelled, or their error taken,
    so that asyncio does not report errors nobody retrieved."""
    while not in_order.empty():
        entry = in_order.get_nowait()
        if isinstance(entry, Ended):
            continue
        if entry.done() and not entry.cancelled():
            entry.exception()
        else:
            entry.cancel()


@dataclass(frozen=True)
class Asked(Generic[K, V]):
    key: K
    future: asyncio.Future[V]
    loop: asyncio.AbstractEventLoop
    at: float = field(default_factory=time.perf_counter)  # when asked, for the latency metric


def _settle_all(settled: list[tuple[asyncio.Future[V], V | BaseException]]) -> None:
    for future, answer in settled:
        if future.done():  # the waiting stream was cancelled
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)
