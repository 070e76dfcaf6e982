"""`python -m server.backfill`: brings a graph written by an older version up to date.

Writes the `trait.<key>` copies of golden records and the numeric `prop.<name>` copies of
event properties that segment rules read (marking what changed for re-evaluation), and the
labels Neo4j Browser's style reads (:Email, :Cookie ... per identifier type, :Flagged). Safe
to run more than once, and beside running servers. Takes the server's Neo4j settings.
"""

from __future__ import annotations

import argparse
import sys

from server.config import parse_settings
from server.graph import Graph
from server.identity.segments.trait_copies import backfill
from server.identity.values import identifier_type_label
from server.tuning import WRITE_PAGE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.backfill", description=__doc__)
    parser.add_argument("--quiet", action="store_true", help="print only the totals")
    args, rest = parser.parse_known_args(argv)
    settings = parse_settings(rest)
    with Graph(settings.neo4j) as graph:
        done = backfill(graph, (lambda _: None) if args.quiet else (lambda line: print(line, file=sys.stderr)))
        labelled = label_identifiers(graph)
    print(f"{done.profiles} profiles and {done.touchpoints} touchpoints updated, {labelled} identifiers labelled")
    return 0


def label_identifiers(graph: Graph) -> int:
    """Adds the type label (and :Flagged) to identifiers that lack them, a page per transaction."""
    labelled = 0
    for record in graph.read("backfill/identifier_types"):
        kind = record["type"]
        if not identifier_type_label(kind):
            continue  # a type with no letter or digit has no label
        after: str | None = ""
        while after is not None:
            (page,) = graph.transaction("backfill labels", lambda tx: tx.run(
                "backfill/label_identifiers", type=kind, label=identifier_type_label(kind), after=after,
                limit=WRITE_PAGE))
            labelled, after = labelled + int(page["updated"]), page["last"]
    return labelled


if __name__ == "__main__":
    sys.exit(main())
