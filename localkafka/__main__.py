"""`python -m localkafka fetch|start|stop|status`: the local Kafka broker for `make kafka` and tests."""

from __future__ import annotations

import argparse
import os
import sys
import time

from localkafka.launcher import LaunchError, LocalKafka


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localkafka", description=__doc__)
    parser.add_argument("command", choices=["fetch", "start", "stop", "status"])
    args = parser.parse_args(argv)
    local = LocalKafka()
    try:
        return COMMANDS[args.command](local)
    except LaunchError as exc:
        print(f"localkafka: {exc}", file=sys.stderr)
        return 1


def _fetch(local: LocalKafka) -> int:
    began = time.monotonic()
    fetched = local.fetch()
    print(f"Kafka jars {'fetched' if fetched else 'already cached'} in {local.lib} ({time.monotonic() - began:.1f} s)")
    return 0


def _start(local: LocalKafka) -> int:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        print(f"KAFKA_BOOTSTRAP is set ({os.environ['KAFKA_BOOTSTRAP']}): using that cluster, starting none")
        return 0
    began = time.monotonic()
    started = local.start()
    verb = "started" if started else "already running, reused"
    print(f"Kafka {verb} at {local.bootstrap} in {time.monotonic() - began:.1f} s; log: {local.console_log}")
    return 0


def _stop(local: LocalKafka) -> int:
    print("Kafka stopped" if local.stop() else "no Kafka started by this launcher is running")
    return 0


def _status(local: LocalKafka) -> int:
    pid = local.pid()
    ready = local.broker_ready()
    print(f"pid: {pid or '-'}  broker {local.bootstrap}: {'ready' if ready else 'not answering'}  home: {local.home}")
    return 0 if ready else 3


COMMANDS = {"fetch": _fetch, "start": _start, "stop": _stop, "status": _status}

if __name__ == "__main__":
    sys.exit(main())
