"""`python -m server.recompute [--repair]`: recomputes profiles from scratch and compares.

Prints the number of identifiers, components and profiles and every disagreement between
the stored profiles and the recomputed components; with --repair, fixes them. Exit code 0
when they agree (after repair, if asked), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from server.config import parse_settings
from server.graph import Graph
from server.identity.full_recompute import recompute, repair


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.recompute", description=__doc__)
    parser.add_argument("--repair", action="store_true", help="fix what disagrees")
    args, rest = parser.parse_known_args(argv)
    settings = parse_settings(rest)
    with Graph(settings.neo4j) as graph:
        report = recompute(graph)
        print(f"{report.identifiers} identifiers, {report.components} components, {report.profiles} profiles "
              f"({report.rounds} propagation rounds)")
        for mismatch in report.mismatches:
            print(f"  {mismatch.problem}: {' '.join(mismatch.subject)}")
        if report.mismatches and args.repair:
            repair(graph, settings.rules, report)
            report = recompute(graph)
            print(f"repaired; {len(report.mismatches)} disagreements remain")
    print("profiles agree with the components" if report.agrees else f"{len(report.mismatches)} disagreements")
    return 0 if report.agrees else 1


if __name__ == "__main__":
    sys.exit(main())
