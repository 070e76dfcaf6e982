"""From a withdrawal's ack to its EXIT delivered to an ad audience, against an ordinary exit.

Runs its own Neo4j and server (free ports, a temporary home). Then:

1. --people people each grant advertising in one event, which also puts them in the bench's
   group; the segment is "in the group AND consent advertising granted";
2. the delivery runner (activation/, in this process, as `identity deliver` runs it) follows
   that segment into a JSON Lines file, with `requires_consent: [advertising]`, identifiers
   [email] and the file destination's default batching (batch_seconds 0.5); it first delivers
   the people's ENTERs;
3. one person at a time, at --rate a second, alternately: one withdraws advertising consent
   (an event stating `advertising: false`), the next leaves the group (a trait change, the
   baseline: the same path without consent). For each, the time from the Ingest ack to the
   EXIT line appearing in the file (the file sink fsyncs before it moves its position on).

Prints p50 and p95 of each and the ratio withdrawal / baseline; the goal is a withdrawal's p95
under 2 s. Most of either is the destination's batch_seconds and the change feed's poll.

    python -m bench.consent                 # 400 people, 200 withdrawals and 200 baseline exits at 5/s
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from identity.v1 import common_pb2, identity_service_pb2 as pb
from identity.v1 import segment_service_pb2 as seg, segment_service_pb2_grpc

from activation import DeliveryRunner, parse_destinations
from activation.consent_gate import lookup_consent, segment_rules
from activation.profile_identifiers import lookup_identifiers
from bench.common import bench_neo4j, bench_server, ingest_windowed, log, save
from client.api import IdentityClient

GOAL_P95_S = 2.0


class Person:
    """One signup that grants advertising and joins the run's group (bench.common ingests to_proto())."""

    def __init__(self, run: str, n: int) -> None:
        self.run, self.n = run, n

    def to_proto(self) -> pb.Event:
        return event(f"consent-{self.run}-{self.n}", self.run, self.n, {"bench_group": self.run},
                     {"advertising": True})


def event(event_id: str, run: str, n: int, traits: dict[str, str], consent: dict[str, bool]) -> pb.Event:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return pb.Event(event_id=event_id, occurred_at=stamp, source="bench", type="consent_updated",
                    identifiers=[common_pb2.Identifier(type="email", value=f"p{n}-{run}@example.com")],
                    traits=traits, consent=consent)


def define_segment(server: Any, run: str) -> str:
    name = f"bench-consent-{run}"
    rule = seg.Rule(all=seg.RuleList(rules=[
        seg.Rule(trait=seg.TraitCondition(key="bench_group", equals=run)),
        seg.Rule(consent=seg.ConsentCondition(category="advertising", granted=True))]))
    with server.channel() as channel:
        segment_service_pb2_grpc.SegmentServiceStub(channel).UpsertSegment(
            seg.UpsertSegmentRequest(name=name, rule=rule), timeout=600)
    return name


class ExitWatch:
    """Tails the destination's file and notes when each profile's EXIT line appeared."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.enters = 0
        self.exits: dict[str, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._tail, daemon=True)
        self.thread.start()

    def _tail(self) -> None:
        offset, partial = 0, b""
        while not self.stopping.is_set():
            if self.path.exists():
                with open(self.path, "rb") as file:
                    file.seek(offset)
                    chunk = file.read()
                offset += len(chunk)
                now = time.monotonic()
                *lines, partial = (partial + chunk).split(b"\n")
                for line in lines:
                    record = json.loads(line)
                    if record["kind"] == "exit":
                        self.exits.setdefault(record["profile_id"], now)
                    else:
                        self.enters += 1
            time.sleep(0.005)

    def wait(self, done: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


def exits(identity: IdentityClient, run: str, count: int, rate: float, watch: ExitWatch) -> dict[str, list[float]]:
    """Alternately a withdrawal and a baseline exit, one a time; seconds from ack to EXIT line."""
    acked: dict[str, tuple[str, float]] = {}
    for n in range(count):
        began = time.monotonic()
        if n % 2 == 0:
            message = event(f"withdraw-{run}-{n}", run, n, {}, {"advertising": False})
        else:
            message = event(f"leave-{run}-{n}", run, n, {"bench_group": "left"}, {})
        (ack,) = identity.ingest([message])
        acked[ack.profile_id] = ("withdrawal" if n % 2 == 0 else "baseline", time.monotonic())
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - began)))
    watch.wait(lambda: all(p in watch.exits for p in acked), 120, "every EXIT delivered")
    delays: dict[str, list[float]] = {"withdrawal": [], "baseline": []}
    for profile_id, (kind, at) in acked.items():
        delays[kind].append(watch.exits[profile_id] - at)
    return delays


def summary(delays: list[float]) -> dict[str, float]:
    ordered = sorted(delays)
    return {"count": len(ordered), "p50_s": statistics.median(ordered),
            "p95_s": ordered[max(0, int(len(ordered) * 0.95) - 1)], "max_s": ordered[-1]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    figures: dict[str, Any] = {"settings": dict(vars(args))}
    with TemporaryDirectory(prefix="bench-consent-") as scratch_dir:
        scratch = Path(scratch_dir)
        with bench_neo4j(scratch / "neo4j") as neo4j, bench_server(neo4j, 1, args.server_arg) as server:
            name = define_segment(server, tag)
            ingested = ingest_windowed(server.channel, [[Person(tag, n) for n in range(args.people)]], 100)
            log(f"people: {dict(ingested.statuses)} in {ingested.seconds:.1f} s")
            path = scratch / "ads.jsonl"
            watch = ExitWatch(path)
            with server.channel() as channel:
                identity = IdentityClient(channel)
                runner = DeliveryRunner(parse_destinations({"state_dir": str(scratch / "state"), "destinations": [{
                    "name": "ads", "segment": name, "identifiers": ["email"], "requires_consent": ["advertising"],
                    "file": {"path": str(path), **({} if args.batch_seconds is None
                                                   else {"batch_seconds": args.batch_seconds})}}]}),
                    identity.segments.watch, identifiers=lookup_identifiers(identity),
                    consent=lookup_consent(identity), rules=segment_rules(identity))
                thread = threading.Thread(target=runner.run, daemon=True)
                thread.start()
                try:
                    watch.wait(lambda: watch.enters >= args.people, 600, "every ENTER delivered")
                    log(f"{watch.enters} ENTERs delivered; now {args.exits} exits at {args.rate}/s")
                    delays = exits(identity, tag, min(args.exits, args.people), args.rate, watch)
                finally:
                    runner.stop()
                    thread.join(60)
                    watch.stop()
    figures["withdrawal"] = summary(delays["withdrawal"])
    figures["baseline"] = summary(delays["baseline"])
    figures["p95_ratio"] = figures["withdrawal"]["p95_s"] / figures["baseline"]["p95_s"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=400, help="people who grant, and enter the segment")
    parser.add_argument("--exits", type=int, default=400, help="exits measured, alternately withdrawal and baseline")
    parser.add_argument("--rate", type=float, default=5.0, help="exits a second")
    parser.add_argument("--batch-seconds", type=float, default=None,
                        help="the file destination's batch_seconds (default: the destination's, 0.5)")
    parser.add_argument("--server-arg", action="append", default=[])
    args = parser.parse_args()
    figures = run(args)
    withdrawal, baseline = figures["withdrawal"], figures["baseline"]
    print(f"withdrawal ack -> EXIT in the ad audience file, {withdrawal['count']} withdrawals: "
          f"p50 {withdrawal['p50_s'] * 1000:.0f} ms, p95 {withdrawal['p95_s'] * 1000:.0f} ms, "
          f"max {withdrawal['max_s'] * 1000:.0f} ms (goal p95 < {GOAL_P95_S * 1000:.0f} ms: "
          f"{'met' if withdrawal['p95_s'] < GOAL_P95_S else 'NOT met'})")
    print(f"baseline, a trait change -> EXIT, {baseline['count']} exits: p50 {baseline['p50_s'] * 1000:.0f} ms, "
          f"p95 {baseline['p95_s'] * 1000:.0f} ms; withdrawal / baseline p95 {figures['p95_ratio']:.2f}")
    print(f"saved {save('consent', figures)}")


if __name__ == "__main__":
    main()
