"""`python -m server`: connects to Neo4j, applies the schema and serves gRPC until SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence

from server.api.app import create_server
from server.config import Settings, parse_settings
from server.errors import IdentityError
from server.graph import Graph
from server.identity.rules import load_rules

log = logging.getLogger("server")


def serve(settings: Settings, stop: threading.Event) -> None:
    """Runs until stop is set, then drains in-flight streams and closes the driver."""
    rules = load_rules(settings.rules_file)
    with Graph(settings.neo4j) as graph:
        graph.verify()
        applied = graph.apply_schema()
        log.info("Neo4j at %s is up; %d schema statements applied", settings.neo4j.uri, applied)
        running = create_server(settings, graph, rules)
        host = settings.listen.rsplit(":", 1)[0]
        log.info("serving gRPC on %s:%d", host, running.port)
        stop.wait()
        log.info("stopping: draining in-flight RPCs for up to %.0f s", settings.shutdown_grace)
        running.stop(settings.shutdown_grace)
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except IdentityError as exc:
        print(f"identity-server: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve(settings, stop)
    except IdentityError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
