"""`python -m localneo4j fetch|start|stop|status`: the local Neo4j for `make run` and `make test`."""

from __future__ import annotations

import argparse
import os
import sys
import time

from localneo4j.launcher import LaunchError, LocalNeo4j


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localneo4j", description=__doc__)
    parser.add_argument("command", choices=["fetch", "start", "stop", "status"])
    args = parser.parse_args(argv)
    local = LocalNeo4j()
    try:
        return COMMANDS[args.command](local)
    except LaunchError as exc:
        print(f"localneo4j: {exc}", file=sys.stderr)
        return 1


def _fetch(local: LocalNeo4j) -> int:
    began = time.monotonic()
    fetched = local.fetch()
    print(f"Neo4j jars {'fetched' if fetched else 'already cached'} in {local.lib} ({time.monotonic() - began:.1f} s)")
    return 0


def _start(local: LocalNeo4j) -> int:
    if os.environ.get("NEO4J_URI"):
        print(f"NEO4J_URI is set ({os.environ['NEO4J_URI']}): using that server, starting none")
        return 0
    began = time.monotonic()
    started = local.start()
    verb = "started" if started else "already running, reused"
    print(f"Neo4j {verb} at {local.uri} in {time.monotonic() - began:.1f} s; Browser: {local.browser_url}")
    return 0


def _stop(local: LocalNeo4j) -> int:
    print("Neo4j stopped" if local.stop() else "no Neo4j started by this launcher is running")
    return 0


def _status(local: LocalNeo4j) -> int:
    pid = local.pid()
    answers = local.bolt_answers()
    print(f"pid: {pid or '-'}  bolt {local.uri}: {'answers' if answers else 'closed'}  home: {local.home}")
    return 0 if answers else 3


COMMANDS = {"fetch": _fetch, "start": _start, "stop": _stop, "status": _status}

if __name__ == "__main__":
    sys.exit(main())
