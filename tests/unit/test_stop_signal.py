"""Stopping on signals (server/runner.py): however many arrive, and whenever."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from server.runner import StopSignal, stop_on_signals


@pytest.fixture
def restored_handlers():
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_a_signal_arriving_while_an_earlier_one_is_handled_still_stops(monkeypatch, restored_handlers) -> None:
    """The second signal lands inside the first one's handler (here: inside its write to the
    pipe). A handler that took a lock would wait for itself forever; this one returns."""
    stop = stop_on_signals()
    real_write = os.write
    arrived: list[int] = []

    def write_while_another_signal_arrives(fd: int, data: bytes) -> int:
        if not arrived:
            arrived.append(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # handled at the next bytecode, inside this handler
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write_while_another_signal_arrives)
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.wait(timeout=5)
    assert arrived == [signal.SIGINT]


def test_wait_returns_false_on_timeout_and_true_once_set_from_another_thread() -> None:
    stop = StopSignal()
    began = time.monotonic()
    assert stop.wait(timeout=0.1) is False and time.monotonic() - began >= 0.1
    threading.Timer(0.05, stop.set).start()
    assert stop.wait(timeout=5) is True and stop.is_set()


def test_a_flood_of_sets_never_blocks_on_a_full_pipe() -> None:
    stop = StopSignal()
    for _ in range(200_000):  # more than any pipe holds
        stop.set()
    assert stop.wait(timeout=0)
