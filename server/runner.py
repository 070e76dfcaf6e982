"""Running the server: one process, or several sharing the port, until SIGTERM."""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import signal
import sys
import time
from dataclasses import replace

from server.api.app import create_server
from server.config import Settings, http_listen_of
from server.graph import Graph
from server.tuning import GIL_SWITCH_INTERVAL_S

log = logging.getLogger("server")


def prepare(settings: Settings) -> None:
    """Checks Neo4j and applies the schema, once, before any process serves."""
    with Graph(settings.neo4j) as graph:
        graph.verify()
        applied = graph.apply_schema()
    log.info("Neo4j at %s is up; %d schema statements applied", settings.neo4j.uri, applied)


def serve(settings: Settings, stop: StopSignal) -> None:
    """Runs until stop is set, then drains in-flight streams and closes the driver."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    with Graph(settings.neo4j) as graph:
        running = create_server(settings, graph)
        host = settings.listen.rsplit(":", 1)[0]
        log.info("serving gRPC on %s:%d", host, running.port)
        stop.wait()
        log.info("stopping: draining in-flight RPCs for up to %.0f s", settings.shutdown_grace)
        running.stop(settings.shutdown_grace)
    log.info("stopped")


class StopSignal:
    """A stop request that a signal handler can make however many signals arrive, and whenever.

    A threading.Event will not do: the handler runs on the main thread, between any two
    bytecodes, also while that thread is inside Event.set or Event.wait holding the Event's
    lock, and then blocks on that lock forever (a server that got SIGTERM during a drain kept
    serving for an hour). Here the handler only sets a flag and writes a byte to a
    non-blocking pipe; the waiter sleeps in select() on the pipe, which takes no lock.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._stopped = False

    def set(self, *_: object) -> None:
        """Safe in a signal handler: no lock, and a full pipe is as good as a written one."""
        self._stopped = True
        try:
            os.write(self._write, b"s")
        except BlockingIOError:
            pass

    def is_set(self) -> bool:
        return self._stopped

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False when timeout seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stopped:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            select.select([self._read], [], [], left)  # a signal interrupts it too (PEP 475 retries)
        return True


def stop_on_signals() -> StopSignal:
    stop = StopSignal()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop.set)
    return stop


def serve_processes(settings: Settings, stop: StopSignal) -> None:
    """Runs settings.processes servers on one port; SIGTERM drains them all.

    The server keeps no state of its own, so processes need nothing from each other; the
    kernel spreads client connections over them (SO_REUSEPORT).
    """
    context = multiprocessing.get_context("spawn")  # grpc must not be forked once started
    workers = [context.Process(target=_worker, args=(replace(settings, http_listen=http_listen_of(settings, n)),),
                               name=f"server-{n}") for n in range(settings.processes)]
    for worker in workers:
        worker.start()
    log.info("%d server processes started", len(workers))
    while not stop.wait(0.5):
        if any(not worker.is_alive() for worker in workers):
            log.error("a server process died; stopping the others")
            break
    for worker in workers:
        if worker.is_alive() and worker.pid:
            os.kill(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.join(settings.shutdown_grace + 10)
    log.info("stopped")


def _worker(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(processName)s: %(message)s")
    serve(settings, stop_on_signals())
