"""Running the server: one process, or several sharing the port, until SIGTERM."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
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


def serve(settings: Settings, stop: threading.Event) -> None:
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


def stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def serve_processes(settings: Settings, stop: threading.Event) -> None:
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
