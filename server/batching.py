"""Groups a stream of messages into batches by size and time.

Ingest writes one transaction per batch: a full batch goes at once, and a trickle waits at
most `max_wait` seconds, so a lone event is acked quickly and a flood is written in bulk.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class _End:
    pass


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Pump(Generic[T]):
    """Reads the source in its own thread, so that waiting for input can time out."""

    def __init__(self, source: Iterator[T], capacity: int) -> None:
        self.items: queue.Queue[T | _End | _Failure] = queue.Queue(maxsize=capacity)
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), daemon=True, name="batch-pump")
        self._thread.start()

    def _run(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
        except BaseException as exc:  # the consumer re-raises it in its own thread
            self._put(_Failure(exc))
            return
        self._put(_End())

    def _put(self, item: T | _End | _Failure) -> bool:
        while not self.stopped.is_set():
            try:
                self.items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def batched(source: Iterator[T], max_size: int, max_wait: float) -> Iterator[list[T]]:
    """Yields lists of at most max_size items; a batch waits at most max_wait for more."""
    pump: _Pump[T] = _Pump(source, capacity=max_size * 2)
    try:
        while True:
            first = pump.items.get()
            if isinstance(first, _End):
                return
            if isinstance(first, _Failure):
                raise first.error
            batch = [first]
            ended = _fill(pump, batch, max_size, time.monotonic() + max_wait)
            yield batch
            if ended is not None:
                if isinstance(ended, _Failure):
                    raise ended.error
                return
    finally:
        pump.stopped.set()


def _fill(pump: _Pump[T], batch: list[T], max_size: int, deadline: float) -> _End | _Failure | None:
    """Adds items until the batch is full or the deadline passes; returns the end marker if seen."""
    while len(batch) < max_size:
        remaining = deadline - time.monotonic()
        try:
            item = pump.items.get(timeout=remaining) if remaining > 0 else pump.items.get_nowait()
        except queue.Empty:
            return None
        if isinstance(item, (_End, _Failure)):
            return item
        batch.append(item)
    return None
