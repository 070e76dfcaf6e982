"""A blocking iterator read on a thread of its own, so that its consumer can wait with a timeout.

A gRPC stream's next() blocks until the server sends something; a consumer that must also act
on time (a batch falls due, a feed falls idle, a stop is asked for) cannot sit in that call.
ReaderThread iterates the source on a daemon thread into a bounded queue (read ahead, but
never without limit) and hands out its items, then one Ended that carries the error, if any,
for the consumer to raise or act on in its own thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

# How often a reader blocked on a full queue looks whether it was closed.
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Ended:
    """The last thing a reader hands out: the source ran out (error None) or raised error."""

    error: BaseException | None = None


class ReaderThread(Generic[T]):
    """Iterates open_source() on a daemon thread into a queue of at most capacity items.

    The source is opened on the reader thread too, since opening may block as well. close()
    stops the reader at its next item and, when the source has a cancel() method (a gRPC stream
    has), calls it, so that a read blocked on a quiet stream ends at once.
    """

    def __init__(self, open_source: Callable[[], Iterable[T]], *, capacity: int, name: str) -> None:
        self._queue: queue.Queue[T | Ended] = queue.Queue(maxsize=capacity)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._source: Iterable[T] | None = None
        threading.Thread(target=self._read, args=(open_source,), name=name, daemon=True).start()

    def get(self, timeout: float | None = None) -> T | Ended | None:
        """The next item, or Ended once; None when nothing came within timeout (None waits for ever)."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Stops the reader; items not yet taken are dropped."""
        with self._lock:
            self._closed.set()
            source = self._source
        if source is not None:
            _cancel(source)

    def __enter__(self) -> ReaderThread[T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _read(self, open_source: Callable[[], Iterable[T]]) -> None:
        error: BaseException | None = None
        try:
            source = open_source()
            with self._lock:
                self._source = source
                closed = self._closed.is_set()
            if closed:  # closed while opening: close() found nothing to cancel
                _cancel(source)
                return
            for item in source:
                if not self._put(item):
                    return
        except BaseException as exc:  # the consumer acts on it in its own thread
            error = exc
        self._put(Ended(error))

    def _put(self, item: T | Ended) -> bool:
        """Waits for room in short steps, so that a close() frees a reader blocked on a full queue."""
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False


def _cancel(source: Iterable[object]) -> None:
    cancel = getattr(source, "cancel", None)
    if callable(cancel):
        cancel()
