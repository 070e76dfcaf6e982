"""Segment figures on a graph kept by `python -m bench.ingest --keep-home DIR`:

- full evaluation: three typical segments defined through UpsertSegment (which evaluates
  them over every active profile and writes the membership edges and the change log),
  beside a hand-written Cypher query that counts the same rule's members, in the same run.
  Member counts must agree. A second upsert of the same rule (a new version, nothing
  changes) shows the cost of a scheduled re-evaluation.
- latency: while --load-events new events are ingested as fast as two streams go (as in
  bench/ingest), a probe sends one event every --probe-interval seconds whose trait puts
  its new profile into a segment; the time from the probe's ack to its enter change on
  WatchSegment is reported as p50 / p95 / max. A short run of the same kind comes first,
  unmeasured, so that query plans are cached (as bench/ingest warms up too).

    python -m bench.ingest --sizes 1000000 --keep-home /tmp/g1m
    python -m bench.segments --neo4j-home /tmp/g1m
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import ParseDict
from google.protobuf.timestamp_pb2 import Timestamp
from identity.v1 import common_pb2, identity_service_pb2 as pb, identity_service_pb2_grpc
from identity.v1 import segment_service_pb2 as seg, segment_service_pb2_grpc
from neo4j import GraphDatabase

from bench.common import bench_neo4j, bench_server, log, save
from bench.ingest import service
from bench.population import generate, split_by_person

DAY = 86400
WARM_UP_EVENTS = 5000
STRONG = ["email", "phone", "user_id", "crm_id", "loyalty_id"]

# name -> (rule in its JSON/YAML form, hand-written Cypher counting the same members)
SEGMENTS: dict[str, tuple[dict[str, Any], str]] = {
    "bench-repeat-buyers": (
        {"all": {"rules": [
            {"identifier": {"has_type": "email"}},
            {"touchpoints": {"filter": {"types": ["purchase"]}, "window": f"{120 * DAY}s",
                             "aggregate": "AGGREGATE_COUNT", "comparison": "COMPARISON_GTE", "value": 2}},
        ]}},
        """MATCH (p:Profile {active: true})
           WHERE EXISTS { (p)<-[:BELONGS_TO]-(:Identifier {type: 'email'}) }
             AND COUNT { (p)<-[:BELONGS_TO]-(:Identifier)<-[:CARRIED {primary: true}]-(t:Touchpoint {type: 'purchase'})
                         WHERE t.occurred_at >= datetime() - duration({days: 120}) } >= 2
           RETURN count(p) AS members""",
    ),
    "bench-big-spenders": (
        {"touchpoints": {"filter": {"types": ["purchase"]}, "aggregate": "AGGREGATE_SUM", "property": "amount",
                         "comparison": "COMPARISON_GTE", "value": 300}},
        """MATCH (p:Profile {active: true})
           CALL (p) {
             MATCH (p)<-[:BELONGS_TO]-(:Identifier)<-[:CARRIED {primary: true}]-(t:Touchpoint {type: 'purchase'})
             RETURN sum(t.`prop.amount`) AS total
           }
           WITH p, total WHERE total >= 300
           RETURN count(p) AS members""",
    ),
    "bench-lapsed-us-60s-70s": (
        {"all": {"rules": [
            {"trait": {"key": "country", "equals": "US"}},
            {"trait": {"key": "date_of_birth", "range": {"min": "1960-01-01", "max": "1979-12-31"}}},
            {"not": {"identifier": {"anonymous": True}}},
            {"touchpoints": {"filter": {"types": ["page_view"]}, "aggregate": "AGGREGATE_SECONDS_SINCE_LAST",
                             "comparison": "COMPARISON_GT", "value": 45 * DAY}},
        ]}},
        """MATCH (p:Profile {active: true})
           WHERE p.`trait.country` = 'US' AND p.`trait.date_of_birth` >= '1960-01-01'
             AND p.`trait.date_of_birth` <= '1979-12-31'
             AND EXISTS { (p)<-[:BELONGS_TO]-(i:Identifier) WHERE i.type IN $strong }
           CALL (p) {
             MATCH (p)<-[:BELONGS_TO]-(:Identifier)<-[:CARRIED {primary: true}]-(t:Touchpoint {type: 'page_view'})
             RETURN max(t.occurred_at) AS last
           }
           WITH p, last WHERE last < datetime() - duration({days: 45})
           RETURN count(p) AS members""",
    ),
}


def rule(data: dict[str, Any]) -> seg.Rule:
    return ParseDict(data, seg.Rule())


def wait_for_quiet(driver, what: str) -> None:
    """Waits until the segment worker has evaluated every profile that ingest marked."""
    began = time.monotonic()
    while (left := driver.execute_query("MATCH (p:SegmentsDirty) RETURN count(p) AS n").records[0]["n"]) > 0:
        log(f"{what}: {left} profiles still marked for segment evaluation")
        time.sleep(5)
    log(f"{what}: marked profiles evaluated ({time.monotonic() - began:.0f} s)")


def remove_bench_segments(driver) -> None:
    """Earlier runs' segments, edges and changes: every run evaluates from nothing."""
    with driver.session() as session:
        session.run("MATCH (s:Segment)<-[m:IN_SEGMENT]-() WHERE s.name STARTS WITH 'bench-' "
                    "CALL (m) { DELETE m } IN TRANSACTIONS OF 10000 ROWS").consume()
        session.run("MATCH (c:SegmentChange) WHERE c.segment STARTS WITH 'bench-' "
                    "CALL (c) { DELETE c } IN TRANSACTIONS OF 10000 ROWS").consume()
        session.run("MATCH (s:Segment) WHERE s.name STARTS WITH 'bench-' "
                    "OPTIONAL MATCH (s)-[:HAS_VERSION]->(v) DETACH DELETE s, v").consume()


def full_evaluations(server, driver) -> list[dict[str, Any]]:
    rows = []
    with server.channel() as channel:
        segments = segment_service_pb2_grpc.SegmentServiceStub(channel)
        for name, (definition, cypher) in SEGMENTS.items():
            began = time.monotonic()
            (expected,) = driver.execute_query(cypher, strong=STRONG).records[0]
            baseline_s = time.monotonic() - began
            began = time.monotonic()
            stored = segments.UpsertSegment(seg.UpsertSegmentRequest(name=name, rule=rule(definition)), timeout=3600)
            service_s = time.monotonic() - began
            began = time.monotonic()
            again = segments.UpsertSegment(seg.UpsertSegmentRequest(name=name, rule=rule(definition)), timeout=3600)
            unchanged_s = time.monotonic() - began
            row = {"segment": name, "members": stored.member_count, "expected": expected,
                   "baseline_s": baseline_s, "service_s": service_s, "ratio": service_s / baseline_s,
                   "reevaluation_s": unchanged_s, "reevaluation_ratio": unchanged_s / baseline_s,
                   "agrees": stored.member_count == expected == again.member_count}
            log(f"{name}: {row}")
            rows.append(row)
    return rows


def probe_latency(server, load_events: int, interval: float) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    name = f"bench-probe-{run}"
    with server.channel() as channel:
        segment_service_pb2_grpc.SegmentServiceStub(channel).UpsertSegment(seg.UpsertSegmentRequest(
            name=name, rule=rule({"trait": {"key": "probe", "equals": run}})), timeout=3600)
    entered: dict[str, float] = {}
    acked: dict[str, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(server, name, entered, stop), daemon=True)
    watcher.start()
    population = generate(people=max(load_events // 10, 1), events=load_events, prefix=f"load-{run}")
    streams = split_by_person(population.events[:load_events], 2)
    loaded: dict[str, float] = {}
    loader = threading.Thread(target=lambda: loaded.update(seconds=service(server.channel, streams, 2000)[0]))
    loader.start()
    _probe(server, run, acked, loader, interval)
    loader.join()
    deadline = time.monotonic() + 60
    while set(acked) - set(entered) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    latencies = sorted(entered[p] - acked[p] for p in acked if p in entered)
    return {"probes": len(acked), "entered": len(latencies), "load_events": load_events,
            "load_events_per_s": load_events / loaded["seconds"],
            "p50_s": statistics.median(latencies), "p95_s": latencies[int(0.95 * (len(latencies) - 1))],
            "max_s": latencies[-1]}


def _probe(server, run: str, acked: dict[str, float], loader: threading.Thread, interval: float) -> None:
    """One probe event at a time while the load runs; each makes a new profile that matches."""
    sent: dict[str, float] = {}

    def events() -> Iterator[pb.Event]:
        n = 0
        while loader.is_alive():
            n += 1
            stamp = Timestamp()
            stamp.FromDatetime(datetime.now(UTC) - timedelta(seconds=1))
            event_id = f"probe-{run}-{n}"
            sent[event_id] = time.monotonic()
            yield pb.Event(event_id=event_id, occurred_at=stamp, source="bench", type="signup",
                           identifiers=[common_pb2.Identifier(type="email", value=f"probe-{n}-{run}@example.com")],
                           traits={"probe": run})
            time.sleep(interval)

    with server.channel() as channel:
        for ack in identity_service_pb2_grpc.IdentityServiceStub(channel).Ingest(events(), timeout=24 * 3600):
            if ack.status == pb.ACK_STATUS_ACCEPTED:
                acked[ack.profile_id] = time.monotonic()


def _watch(server, name: str, entered: dict[str, float], stop: threading.Event) -> None:
    with server.channel() as channel:
        call = segment_service_pb2_grpc.SegmentServiceStub(channel).WatchSegment(
            seg.WatchSegmentRequest(name=name), timeout=24 * 3600)
        threading.Thread(target=lambda: (stop.wait(), call.cancel()), daemon=True).start()
        try:
            for change in call:
                if change.kind == seg.CHANGE_KIND_ENTER:
                    entered.setdefault(change.profile_id, time.monotonic())
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neo4j-home", type=Path, required=True, help="a home kept by bench/ingest.py --keep-home")
    parser.add_argument("--processes", type=int, default=1, help="server processes")
    parser.add_argument("--load-events", type=int, default=100_000, help="events ingested while probing")
    parser.add_argument("--probe-interval", type=float, default=0.1, help="seconds between probe events")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: full, latency")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    figures: dict[str, Any] = {}
    with bench_neo4j(args.neo4j_home) as neo4j, bench_server(neo4j, args.processes) as server, \
            GraphDatabase.driver(neo4j.uri, auth=(neo4j.user, neo4j.password)) as driver:
        (profiles,) = driver.execute_query("MATCH (p:Profile {active: true}) RETURN count(p) AS n").records[0]
        (events,) = driver.execute_query("MATCH (t:Touchpoint) RETURN count(t) AS n").records[0]
        figures["graph"] = {"active_profiles": profiles, "touchpoints": events}
        log(f"graph: {profiles} active profiles, {events} touchpoints")
        remove_bench_segments(driver)
        wait_for_quiet(driver, "before")
        if "full" not in skip:
            figures["full"] = full_evaluations(server, driver)
        if "latency" not in skip:
            probe_latency(server, WARM_UP_EVENTS, args.probe_interval)  # plans cached, JIT warm
            log("warmed up")
            figures["latency"] = probe_latency(server, args.load_events, args.probe_interval)
    graph = figures["graph"]
    print(f"graph: {graph['active_profiles']} active profiles, {graph['touchpoints']} touchpoints")
    if "full" in figures:
        print(f"{'segment':<26} {'members':>8} {'agrees':>6} {'cypher s':>9} {'service s':>10} {'ratio':>6} "
              f"{'re-eval s':>10} {'ratio':>6}")
        for r in figures["full"]:
            print(f"{r['segment']:<26} {r['members']:8d} {str(r['agrees']):>6} {r['baseline_s']:9.2f} "
                  f"{r['service_s']:10.2f} {r['ratio']:6.1f} {r['reevaluation_s']:10.2f} {r['reevaluation_ratio']:6.1f}")
    if "latency" in figures:
        r = figures["latency"]
        print(f"ack -> enter on WatchSegment, {r['entered']}/{r['probes']} probes while ingesting "
              f"{r['load_events']} events at {r['load_events_per_s']:.0f} events/s: p50 {r['p50_s']:.3f} s, "
              f"p95 {r['p95_s']:.3f} s, max {r['max_s']:.3f} s")
    print(f"figures saved to {save('segments', figures)}")


if __name__ == "__main__":
    main()
