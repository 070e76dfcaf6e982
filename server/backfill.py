"""`python -m server.backfill`: brings a graph written before segments up to date.

Writes the `trait.<key>` copies of golden records and the numeric `prop.<name>` copies of
event properties that segment rules read, and marks what changed for re-evaluation. Safe to
run more than once, and beside running servers. Takes the server's Neo4j settings.
"""

from __future__ import annotations

import argparse
import sys

from server.config import parse_settings
from server.graph import Graph
from server.identity.segments.trait_copies import backfill


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.backfill", description=__doc__)
    parser.add_argument("--quiet", action="store_true", help="print only the totals")
    args, rest = parser.parse_known_args(argv)
    settings = parse_settings(rest)
    with Graph(settings.neo4j) as graph:
        done = backfill(graph, (lambda _: None) if args.quiet else (lambda line: print(line, file=sys.stderr)))
    print(f"{done.profiles} profiles and {done.touchpoints} touchpoints updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
