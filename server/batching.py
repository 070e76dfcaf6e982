"""Batching: a stream's messages grouped by size and time, and many callers' keys coalesced.

Ingest writes one transaction per batch: a full batch goes at once, and a trickle waits at
most `max_wait` seconds, so a lone event is acked quickly and a flood is written in bulk.
Lookups from all streams are coalesced into shared queries (Coalescer).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from functools import partial
from typing import Generic, TypeVar

from client.reader import Ended, ReaderThread
from server.tuning import LOOKUP_WORKERS

T = TypeVar("T")


def batched(source: Iterator[T], max_size: int, max_wait: float) -> Iterator[list[T]]:
    """Yields lists of at most max_size items; a batch waits at most max_wait for more.

    The source (a gRPC request stream, whose next() blocks) is read on a thread of its own by
    the one reader-thread helper, client.reader.ReaderThread, so that waiting can time out."""
    with ReaderThread(lambda: source, capacity=max_size * 2, name="batch-pump") as pump:
        while True:
            first = pump.get()  # no timeout: never None
            if isinstance(first, Ended) or first is None:
                _finish(first)
                return
            batch = [first]
            ended = _fill(pump, batch, max_size, time.monotonic() + max_wait)
            yield batch
            if ended is not None:
                _finish(ended)
                return


def _finish(ended: Ended | None) -> None:
    if ended is not None and ended.error is not None:
        raise ended.error


def _fill(pump: ReaderThread[T], batch: list[T], max_size: int, deadline: float) -> Ended | None:
    """Adds items until the batch is full or the deadline passes; returns the end if seen."""
    while len(batch) < max_size:
        item = pump.get(max(0.0, deadline - time.monotonic()))
        if item is None:
            return None
        if isinstance(item, Ended):
            return item
        batch.append(item)
    return None


K = TypeVar("K")
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """Answers keys submitted by many callers with few calls of one batch function.

    Lookups from many streams arrive one or a few at a time; a Neo4j round trip costs about
    as much for one key as for a hundred. Worker threads take everything that is waiting (up
    to max_size), answer it with one call, and hand each caller its own answer through a
    callback: on the lookup path every thread handoff costs as much as the query's share.
    """

    def __init__(self, answer: Callable[[list[K]], list[V]], max_size: int, workers: int = LOOKUP_WORKERS) -> None:
        self._answer = answer
        self._max_size = max_size
        self._waiting: queue.Queue[tuple[K, Callable[[V | BaseException], None]] | None] = queue.Queue()
        self._workers = [threading.Thread(target=self._work, daemon=True, name=f"coalesce-{n}") for n in range(workers)]
        for worker in self._workers:
            worker.start()

    def submit(self, key: K, deliver: Callable[[V | BaseException], None]) -> None:
        """deliver is called in a worker thread with the answer, or with the batch's error."""
        self._waiting.put((key, deliver))

    def submit_many(self, keys: list[K]) -> list[Future[V]]:
        futures: list[Future[V]] = []
        for key in keys:
            future: Future[V] = Future()
            self.submit(key, partial(_settle, future))
            futures.append(future)
        return futures

    def answer_stream(self, items: Iterator[T], key: Callable[[T], K]) -> Iterator[tuple[T, V]]:
        """Each item of a stream with its answer, in the stream's order.

        A reader thread submits items as they arrive, so a stream with many requests in flight
        shares queries with every other stream; answers are put back in order here.
        """
        out: queue.Queue[tuple[int, T, V | BaseException] | Ended] = queue.Queue()
        stopped = threading.Event()
        submitted = [0]

        def read() -> None:
            try:
                for seq, item in enumerate(items):
                    if stopped.is_set():
                        return
                    self.submit(key(item), partial(_put_answer, out, seq, item))
                    submitted[0] = seq + 1
            except BaseException as exc:  # the stream's consumer re-raises it
                out.put(Ended(exc))
                return
            out.put(Ended())

        threading.Thread(target=read, daemon=True, name="coalesce-reader").start()
        pending: dict[int, tuple[T, V]] = {}
        following, ended = 0, False
        try:
            while not ended or following < submitted[0]:
                got = out.get()
                if isinstance(got, Ended):
                    _finish(got)
                    ended = True
                    continue
                seq, item, answer = got
                if isinstance(answer, BaseException):
                    raise answer
                pending[seq] = (item, answer)
                while following in pending:
                    yield pending.pop(following)
                    following += 1
        finally:
            stopped.set()

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

    def _answer_batch(self, batch: list[tuple[K, Callable[[V | BaseException], None]]]) -> None:
        try:
            answers: list[V | BaseException] = list(self._answer([key for key, _ in batch]))
        except BaseException as exc:  # every caller of the batch gets the error
            answers = [exc] * len(batch)
        for (_, deliver), answer in zip(batch, answers, strict=True):
            deliver(answer)


def _put_answer(out: queue.Queue[tuple[int, T, V | BaseException] | Ended], seq: int, item: T,
                answer: V | BaseException) -> None:
    out.put((seq, item, answer))


def _settle(future: Future[V], answer: V | BaseException) -> None:
    if isinstance(answer, BaseException):
        future.set_exception(answer)
    else:
        future.set_result(answer)
