"""`python -m server`: connects to Neo4j, applies the schema and serves gRPC until SIGTERM."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from server.config import parse_settings
from server.errors import IdentityError
from server.runner import prepare, serve, serve_processes, stop_on_signals

log = logging.getLogger("server")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except IdentityError as exc:
        print(f"identity-server: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = stop_on_signals()
    try:
        prepare(settings)
        if settings.processes == 1:
            serve(settings, stop)
        else:
            serve_processes(settings, stop)
    except IdentityError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
