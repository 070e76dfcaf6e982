"""A destination's change feed: its segment's changes after a position, read ahead on a thread,
and the rule for a feed that ends in an error: reconnect, or stop the destination.

- OUT_OF_RANGE (the position was dropped by retention) stops the destination with an error:
  going on from the oldest retained change would lose changes without a word.
- UNAVAILABLE and the other transient codes reconnect after the delivered position, with backoff.
- Any other error stops the destination.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import grpc

from activation.sinks import DeliveryError
from client.api import rpc_error_text, status_code
from client.messages import SegmentChange
from client.reader import ReaderThread

ChangeSource = Callable[[str, int], Iterable[SegmentChange]]
"""(segment, after_position) -> the segment's changes after the position; Segments(channel).watch is one."""

# gRPC codes after which the same request may well succeed: reconnect rather than stop.
TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                             grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED})
# Changes read ahead of delivery, per destination: enough to fill a batch while one is sent.
READ_AHEAD = 1000


def open_feed(source: ChangeSource, segment: str, after: int, name: str) -> ReaderThread[SegmentChange]:
    """The changes after the position, on a reader thread, so that the destination can wait with a
    timeout (a batch falls due, the feed falls idle) and cancel a read that blocks."""
    return ReaderThread(lambda: source(segment, after), capacity=READ_AHEAD, name=name)


def unrecoverable(error: BaseException, segment: str, position: int) -> DeliveryError | None:
    """The error that stops the destination, or None when a reconnect after position may succeed."""
    code = status_code(error)
    if code == grpc.StatusCode.OUT_OF_RANGE:
        return DeliveryError(f"position {position} of segment {segment} is no longer retained; stopped rather "
                             f"than skip changes ({rpc_error_text(error)})")
    if code not in TRANSIENT_CODES:
        return DeliveryError(f"the change feed of segment {segment} failed: {rpc_error_text(error)}")
    return None
