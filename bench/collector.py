"""The HTTP collector's throughput against gRPC `Ingest`, measured in the same run.

The same events (default 100k: a web shop's visitors, each with anonymous page views, an
identify that names them, product views and orders) go, on an emptied database each time:
- grpc: through `Ingest` over --streams bidi streams, each keeping at most --window
  unacked events in flight;
- http: as tracking-spec messages through the collector's `/v1/batch`, in batches of 100 (as
  the SDKs batch), from --senders concurrent senders, each waiting for its answer before the
  next batch (as an SDK's consumer thread does), gzip as rudder-sdk-python sends it.
The gRPC events are made from the very messages the collector receives, by the collector's
own mapping (server/identity/tracking.py), so both paths store the same touchpoints.

Prints events/s of both, their ratio (goal: the collector >= 0.8 of gRPC), and the server's
and Neo4j's CPU per event on each path (the collector's cost per event). With --rounds N the
two alternate N times, and the ratio is of the medians.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from google.protobuf.timestamp_pb2 import Timestamp
from identity.v1 import common_pb2, identity_service_pb2 as pb

from bench.common import bench_neo4j, bench_server, empty_database, free_port, ingest_windowed, log, save
from bench.ingest_flaws import cpu_seconds
from server.identity.identity_config import DEFAULT_RULES_FILE, load_rules
from server.identity.tracking import Delivery, call_type, to_event
from server.identity.tracking_config import DEFAULT_COLLECTOR_FILE, load_collector_config

GOAL = 0.8
BATCH = 100
START = datetime(2026, 11, 1, tzinfo=UTC)
RULES = load_collector_config(DEFAULT_COLLECTOR_FILE, frozenset(load_rules(DEFAULT_RULES_FILE).identifier_types)).tracking


def visitor(rng: random.Random, prefix: str, n: int) -> list[dict[str, Any]]:
    """One visitor's messages: anonymous first, then known."""
    anon, user = f"{prefix}-a{n}", f"{prefix}-u{n}"
    moment = START + timedelta(minutes=rng.randrange(40_000))

    def message(kind: str, k: int, **fields: Any) -> dict[str, Any]:
        at = (moment + timedelta(minutes=k)).isoformat()
        return {"type": kind, "messageId": f"{prefix}-{n}-{k}", "timestamp": at,
                "context": {"library": {"name": "bench", "version": "1"}, "page": {"url": f"https://shop.test/{k}"}},
                **fields}

    return [
        message("page", 0, anonymousId=anon, name="Home", properties={"path": "/"}),
        message("page", 1, anonymousId=anon, name="Product", properties={"path": f"/p/{rng.randrange(500)}"}),
        message("identify", 2, anonymousId=anon, userId=user, traits={
            "email": f"{user}@example.org", "firstName": rng.choice(("Ann", "Bob", "Cem", "Dia")), "lastName": "Lee"}),
        message("track", 3, userId=user, event="Product Viewed", properties={"sku": f"S-{rng.randrange(500)}",
                                                                              "price": rng.randrange(100)}),
        message("track", 4, userId=user, event="Order Completed", properties={"revenue": rng.randrange(200)}),
    ]


def world(events: int, prefix: str, seed: int) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    return [visitor(rng, prefix, n) for n in range(events // 5)]


@dataclass(frozen=True)
class GrpcEvent:
    message: pb.Event

    def to_proto(self) -> pb.Event:
        return self.message


def as_proto(message: dict[str, Any]) -> pb.Event:
    """The event the collector makes of this message, as an `Ingest` client would send it."""
    event = to_event(message, call_type(message, None), Delivery(RULES.default_source, datetime.now(UTC)), RULES)
    stamp = Timestamp()
    if event.occurred_at is not None:
        stamp.FromDatetime(event.occurred_at)
    return pb.Event(event_id=event.event_id, occurred_at=stamp, source=event.source, channel=common_pb2.CHANNEL_ONLINE,
                    type=event.type, identifiers=[common_pb2.Identifier(type=t, value=v) for t, v in event.identifiers],
                    traits=event.traits, properties=event.properties)


def split(people: list[list[dict[str, Any]]], parts: int) -> list[list[dict[str, Any]]]:
    """A person's messages in one part, in order (as one device's SDK sends them)."""
    return [[m for person in people[k::parts] for m in person] for k in range(parts)]


def send_http(url: str, parts: Sequence[list[dict[str, Any]]]) -> tuple[float, Counter[str]]:
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def sender(messages: list[dict[str, Any]]) -> None:
        counted: Counter[str] = Counter()
        with requests.Session() as session:
            for start in range(0, len(messages), BATCH):
                body = {"batch": messages[start:start + BATCH], "sentAt": datetime.now(UTC).isoformat()}
                answer = session.post(url, data=gzip.compress(json.dumps(body).encode()), timeout=120,
                                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
                                      auth=("bench", ""))
                if answer.status_code != 200:
                    raise RuntimeError(f"the collector answered {answer.status_code}: {answer.text[:300]}")
                result = answer.json()
                counted.update(accepted=result["accepted"], duplicates=result["duplicates"],
                               rejected=len(result["rejected"]))
        with lock:
            outcomes.update(counted)

    threads = [threading.Thread(target=sender, args=(part,)) for part in parts]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - began, outcomes


def measure(path: str, run: Any, server_pid: int, neo4j_pid: int, events: int) -> dict[str, Any]:
    cpu_before = cpu_seconds([server_pid]), cpu_seconds([neo4j_pid])
    seconds, outcomes = run()
    server_cpu, neo4j_cpu = cpu_seconds([server_pid]) - cpu_before[0], cpu_seconds([neo4j_pid]) - cpu_before[1]
    figures = {"path": path, "seconds": seconds, "events_per_s": events / seconds, "outcomes": dict(outcomes),
               "server_cpu_ms_per_event": 1000 * server_cpu / events, "neo4j_cpu_ms_per_event": 1000 * neo4j_cpu / events}
    log(f"{path}: {events} events in {seconds:.1f} s = {figures['events_per_s']:.0f}/s; server CPU "
        f"{figures['server_cpu_ms_per_event']:.3f} ms/event, Neo4j {figures['neo4j_cpu_ms_per_event']:.3f}; {dict(outcomes)}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1, help="gRPC and HTTP alternate this many times")
    parser.add_argument("--streams", type=int, default=4, help="gRPC Ingest streams")
    parser.add_argument("--window", type=int, default=1000, help="unacked events per gRPC stream")
    parser.add_argument("--senders", type=int, default=8, help="concurrent HTTP senders (SDK instances)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    collect_port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as scratch:
        with bench_neo4j(Path(scratch) / "neo4j") as neo4j, \
                bench_server(neo4j, server_args=["--collect-listen", f"127.0.0.1:{collect_port}"]) as server:
            neo4j_pid = neo4j.pid() or 0
            # warm-up, not measured: Neo4j's JIT and page cache, the server's pools and connections
            # (a tenth of the events on each path: a cold first round ran at half the speed)
            warm = world(max(2000, args.events // 10), "warm", args.seed)
            half = len(warm) // 2
            ingest_windowed(server.channel, [[GrpcEvent(as_proto(m)) for m in part] for part in split(warm[:half], 2)],
                            args.window)
            send_http(f"http://127.0.0.1:{collect_port}/v1/batch", split(warm[half:], 2))
            for round_ in range(args.rounds):
                for path in ("grpc", "http"):
                    people = world(args.events, f"c{round_}{path}", args.seed + round_)
                    events = sum(map(len, people))
                    empty_database(neo4j)
                    if path == "grpc":
                        streams = [[GrpcEvent(as_proto(m)) for m in part] for part in split(people, args.streams)]

                        def run(streams: Any = streams) -> tuple[float, Counter[str]]:
                            result = ingest_windowed(server.channel, streams, args.window)
                            return result.seconds, result.statuses
                    else:
                        parts = split(people, args.senders)

                        def run(parts: Any = parts) -> tuple[float, Counter[str]]:
                            return send_http(f"http://127.0.0.1:{collect_port}/v1/batch", parts)
                    rows.append({"round": round_, "events": events, **measure(
                        path, run, server.process.pid, neo4j_pid, events)})
    report(rows)


def report(rows: list[dict[str, Any]]) -> None:
    by_path = {path: [r for r in rows if r["path"] == path] for path in ("grpc", "http")}
    median = {path: {key: statistics.median(r[key] for r in runs) for key in
                     ("events_per_s", "server_cpu_ms_per_event", "neo4j_cpu_ms_per_event")}
              for path, runs in by_path.items()}
    ratio = median["http"]["events_per_s"] / median["grpc"]["events_per_s"]
    print(f"\n{'path':>6} {'events/s':>9} {'server CPU ms/event':>20} {'Neo4j CPU ms/event':>19}")
    for path, figures in median.items():
        print(f"{path:>6} {figures['events_per_s']:>9.0f} {figures['server_cpu_ms_per_event']:>20.3f} "
              f"{figures['neo4j_cpu_ms_per_event']:>19.3f}")
    print(f"\ncollector / gRPC throughput: {ratio:.2f} (goal >= {GOAL}: {'met' if ratio >= GOAL else 'NOT met'}); "
          f"server CPU per event, collector / gRPC: "
          f"{median['http']['server_cpu_ms_per_event'] / median['grpc']['server_cpu_ms_per_event']:.2f}")
    print(f"figures saved to {save('collector', {'goal': GOAL, 'runs': rows, 'median': median, 'ratio': ratio})}")


if __name__ == "__main__":
    main()
