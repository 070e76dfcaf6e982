"""A change-feed storm: --watchers WatchSegment streams replay a large segment from position 0
while lookups run, against the same lookups without the storm, in one run.

Runs its own Neo4j (temporary home, free ports) and one server process. Ingests a small
CDP-shaped graph (--events of bench/population.py) and --members new people who all carry
the bench trait, then defines one segment of them (UpsertSegment): its change log holds
--members enter changes. Then:

1. without the storm: health checks (a probe process of its own, normal priority) alone, then
   --lookup-streams LookupProfiles streams for --seconds with health beside them;
2. the storm: --watchers WatchSegment streams open at once, each replaying the whole segment
   from position 0 (watchers x members changes: 1,000 x 2,500 is 2.5 million messages), and
   while they replay, the same health and lookup measurements;
3. every watcher must receive every change (--drain seconds at most).

Goals (issue 26): health p99 under 50 ms during the storm, lookups during the storm at least
half of those without it, every watcher receiving every change. The watchers' and lookups'
client processes run at --load-nice (10): in a deployment they are other machines.

    python -m bench.storm                                   # 1,000 watchers, 2,500 members
    python -m bench.storm --server-arg=--replay-rate=1e9    # the same, replay unpaced
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from identity.v1 import common_pb2, identity_service_pb2 as pb
from identity.v1 import segment_service_pb2 as seg, segment_service_pb2_grpc

from bench.common import bench_neo4j, bench_server, ingest_windowed, log, save
from bench.lookup import sample_keys
from bench.streams import HEALTH_P99_GOAL_MS, HealthProbe, Watchers, lookups, measure, populate, watcher_summary

TRAIT = "storm_bench"
LOOKUP_RATIO_GOAL = 0.5


class Member:
    def __init__(self, run: str, n: int) -> None:
        self.run, self.n = run, n

    def to_proto(self) -> pb.Event:
        stamp = Timestamp()
        stamp.GetCurrentTime()
        return pb.Event(event_id=f"storm-{self.run}-{self.n}", occurred_at=stamp, source="bench", type="signup",
                        identifiers=[common_pb2.Identifier(type="email", value=f"storm-{self.n}-{self.run}@example.com")],
                        traits={TRAIT: self.run})


def define_segment(server: Any, run: str, members: int) -> str:
    """--members new people, then one segment of them: its log holds one enter change each."""
    ingested = ingest_windowed(server.channel, [[Member(run, n) for n in range(k, members, 2)] for k in range(2)], 500)
    log(f"members: {dict(ingested.statuses)} in {ingested.seconds:.1f} s")
    name = f"bench-storm-{run}"
    with server.channel() as channel:
        stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
        stub.UpsertSegment(seg.UpsertSegmentRequest(name=name, rule=seg.Rule(
            trait=seg.TraitCondition(key=TRAIT, equals=run))), timeout=600)
        count = stub.GetSegment(seg.GetSegmentRequest(name=name), timeout=60).member_count
    log(f"segment {name}: {count} members")
    return name


def run(args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    figures: dict[str, Any] = {"settings": dict(vars(args))}
    with TemporaryDirectory(prefix="bench-storm-") as scratch, bench_neo4j(Path(scratch) / "neo4j") as neo4j, \
            bench_server(neo4j, 1, args.server_arg) as server:
        populate(server, args.events, tag)
        name = define_segment(server, tag, args.members)
        keys = sample_keys(neo4j, args.sample)
        probe = HealthProbe(server, args.health_interval)
        lookups(server.address, keys, min(args.lookup_streams, 10), args.window, 3, args.streams_per_channel,
                args.load_nice)  # warm-up
        figures["without_storm"] = measure(server, probe, keys, args, "without the storm")
        began = time.monotonic()
        watchers = Watchers(server.address, [name], args.watchers, args.streams_per_channel, args.load_nice)
        time.sleep(1)  # the watchers' process is up and replaying
        figures["storm"] = measure(server, probe, keys, args, f"{args.watchers} watchers replaying")
        during = watchers.status()
        figures["replayed_while_measured"] = sum(during["counts"])
        state = watchers.wait(lambda s: all(e is not None or c >= args.members for c, e in zip(s["counts"], s["ended"])),
                              args.drain, "replayed")
        figures["replay_s"] = time.monotonic() - began
        final = watchers.stop()
        figures["watchers"] = {**watcher_summary(final["counts"], final["ended"], args.members),
                               "examples": final["examples"], "complete_at_s": figures["replay_s"],
                               "all_complete": all(c >= args.members for c in state["counts"])}
        figures["health_examples"] = probe.stop()
    return figures


def report(figures: dict[str, Any]) -> list[str]:
    calm, storm, watchers = figures["without_storm"], figures["storm"], figures["watchers"]
    ratio = storm["lookups"]["lookups_per_s"] / calm["lookups"]["lookups_per_s"]
    p99 = storm["health"]["p99_ms"]
    p99_beside = storm["health_beside_lookups"]["p99_ms"]
    return [
        f"{'':>22} {'health p50':>11} {'health p99':>11} {'p99 beside lookups':>19} {'lookups/s':>10}",
        *(f"{what:>22} {phase['health']['p50_ms']:>11.1f} {phase['health']['p99_ms']:>11.1f} "
          f"{phase['health_beside_lookups']['p99_ms']:>19.1f} {phase['lookups']['lookups_per_s']:>10.0f}"
          for what, phase in (("without the storm", calm), ("storm", storm))),
        f"health p99 during the storm: {p99:.1f} ms (goal < {HEALTH_P99_GOAL_MS:.0f}: "
        f"{'met' if p99 < HEALTH_P99_GOAL_MS else 'NOT met'}); beside lookups {p99_beside:.1f} ms",
        f"lookups during the storm / without: {ratio:.2f} (goal >= {LOOKUP_RATIO_GOAL}: "
        f"{'met' if ratio >= LOOKUP_RATIO_GOAL else 'NOT met'})",
        f"watchers: {watchers} ({figures['replayed_while_measured']} changes sent while measured; every one "
        f"complete after {figures['replay_s']:.0f} s: {'met' if watchers['all_complete'] else 'NOT met'})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--members", type=int, default=2500, help="people in the replayed segment")
    parser.add_argument("--events", type=int, default=20_000, help="events of the population ingested first")
    parser.add_argument("--lookup-streams", type=int, default=20)
    parser.add_argument("--window", type=int, default=4, help="lookups in flight per lookup stream")
    parser.add_argument("--seconds", type=float, default=15, help="seconds of lookups in each phase")
    parser.add_argument("--health-seconds", type=float, default=5)
    parser.add_argument("--health-interval", type=float, default=0.02)
    parser.add_argument("--sample", type=int, default=5000)
    parser.add_argument("--streams-per-channel", type=int, default=100)
    parser.add_argument("--drain", type=float, default=900, help="seconds for every watcher to finish replaying")
    parser.add_argument("--load-nice", type=int, default=10)
    parser.add_argument("--server-arg", action="append", default=[])
    args = parser.parse_args()
    figures = run(args)
    for line in report(figures):
        print(line)
    print(f"figures saved to {save('storm', figures)}")


if __name__ == "__main__":
    main()
