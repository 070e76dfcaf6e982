"""SIGTERM and SIGINT as a polite stop of a long-running delivery, not an abrupt exit."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT call stop(); a second SIGINT interrupts at once (KeyboardInterrupt).
    Handlers are the main thread's to set: elsewhere this does nothing. The previous ones come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.getsignal(number) for number in signals}

    def handle(number: int, frame: FrameType | None) -> None:
        log.info("%s: stopping after the HTTP attempt in flight", signal.Signals(number).name)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop()

    for number in signals:
        signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
