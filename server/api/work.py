"""Where blocking work runs in the asyncio server: bounded thread pools, one per kind of work.

The domain talks to Neo4j through the synchronous driver. An open stream is a coroutine on the
event loop and holds no thread; only the moments it spends in Neo4j take one, from a pool of
fixed size. Separate pools keep one kind of work from starving another: a flood of ingest
batches queues behind ingest batches, while reads and admin calls still find threads, and
health checks, which never leave the loop, always answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import ParamSpec, TypeVar

from server.errors import ResourceExhausted
from server.tuning import POOL_QUEUE_LIMIT

T = TypeVar("T")
P = ParamSpec("P")

_END = object()


class WorkPool:
    """A named pool of at most `threads` threads for blocking calls from coroutines, with at
    most `queue_limit` calls waiting or running: beyond, a call is refused ResourceExhausted
    naming the pool, rather than queued without bound."""

    def __init__(self, name: str, threads: int, queue_limit: int = POOL_QUEUE_LIMIT) -> None:
        self.name = name
        self.threads = threads
        self.queue_limit = queue_limit
        self.queued = 0  # calls submitted and not yet done (counted on the event loop only)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    async def run(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs call(*args, **kwargs) on a thread of the pool; the coroutine waits without a thread."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        with self._place():
            return await loop.run_in_executor(self._executor, functools.partial(context.run, call, *args, **kwargs))

    @contextlib.contextmanager
    def _place(self) -> Iterator[None]:
        if self.queued >= self.queue_limit:
            raise ResourceExhausted(f"the {self.name} pool has {self.queued} calls waiting or running, its limit "
                                    f"({self.threads} threads); retry later or on another server")
        self.queued += 1
        try:
            yield
        finally:
            self.queued -= 1

    async def iterate(self, source: Callable[[], Iterator[T]], chunk: int = 1) -> AsyncIterator[T]:
        """The items of a blocking iterator (a paged Neo4j read, a progress report), fetched on
        the pool up to `chunk` at a time, so that a long stream takes a thread only per chunk.

        A stream that ends early (the client went away) closes the iterator, which ends its
        Neo4j session, on the pool once the chunk in flight is done."""
        iterator: Iterator[T] | None = None

        def take() -> list[T]:
            nonlocal iterator
            if iterator is None:
                iterator = source()
            return list(islice(iterator, chunk))

        def close() -> None:
            closing = getattr(iterator, "close", None)
            if closing is not None:
                closing()

        in_flight: Future[list[T]] | None = None
        try:
            while True:
                with self._place():
                    in_flight = self._executor.submit(contextvars.copy_context().run, take)
                    items = await asyncio.wrap_future(in_flight)
                for item in items:
                    yield item
                if len(items) < chunk:
                    return
        finally:
            if in_flight is not None:
                in_flight.add_done_callback(lambda _: self._submit_quietly(close))

    def _submit_quietly(self, call: Callable[[], None]) -> None:
        try:
            self._executor.submit(call)
        except RuntimeError:  # the pool was shut down: the server is stopping anyway
            pass

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class WorkPools:
    """The server's pools: ingest writes, reads, admin jobs (refits, replays, erasures), and
    imports. An import holds its thread while it waits on its client's next record, so imports
    have a pool of their own (and a limit of as many open calls, server/api/limits.py): slow
    importers must never take the threads that ForgetProfile or UpsertSegment need."""

    ingest: WorkPool
    read: WorkPool
    admin: WorkPool
    imports: WorkPool

    @staticmethod
    def of_size(threads: int) -> WorkPools:
        return WorkPools(WorkPool("ingest", threads), WorkPool("read", threads), WorkPool("admin", max(2, threads // 4)),
                         WorkPool("import", max(2, threads // 4)))

    def shutdown(self) -> None:
        for pool in (self.ingest, self.read, self.admin, self.imports):
            pool.shutdown()


class BlockingReader(Iterator[T]):
    """An async request stream read from a pool thread, for the domain's blocking consumers
    (an import reads its records as a plain iterator): each next() waits on the loop's read."""

    def __init__(self, source: AsyncIterator[T], loop: asyncio.AbstractEventLoop) -> None:
        self._source = source
        self._loop = loop

    def __next__(self) -> T:
        item = asyncio.run_coroutine_threadsafe(_next_or_end(self._source), self._loop).result()
        if item is _END:
            raise StopIteration
        return item  # type: ignore[return-value]  # not _END, so a T


async def _next_or_end(source: AsyncIterator[T]) -> T | object:
    try:
        return await anext(source)
    except StopAsyncIteration:
        return _END
