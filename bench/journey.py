"""Journey traversal in constant server memory.

Ingests one person with --touchpoints touchpoints (default 100,000) spread over a cookie, a
device and a user id, then streams the whole journey through gRPC TraverseJourney, once
ascending and once descending. Prints steps/s and the server's resident memory before and
after each traversal, against the same figures for a person with a tenth as many
touchpoints in the same run: a server that held the journey in memory would grow with it.

Runs its own Neo4j (temporary home, free ports) and its own server; stops both at the end.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from bench.common import bench_neo4j, bench_server, log, save, status_kb
from identity.v1 import common_pb2, identity_service_pb2 as pb, identity_service_pb2_grpc


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    return status_kb(pid, field) / 1024


def person_events(tag: str, count: int) -> Iterator[pb.Event]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    kinds = [("cookie", f"c-{tag}"), ("device_id", f"d-{tag}"), ("user_id", f"u-{tag}")]
    for n in range(count):
        stamp = Timestamp()
        stamp.FromDatetime(start + timedelta(seconds=n * 37))
        carried = [kinds[n % 3]] if n % 50 else kinds  # every 50th event links all three
        yield pb.Event(event_id=f"{tag}-{n}", occurred_at=stamp, source="web", channel=common_pb2.CHANNEL_ONLINE,
                       type="page_view", identifiers=[common_pb2.Identifier(type=t, value=v) for t, v in carried],
                       properties={"path": f"/p/{n % 400}"})


def traverse(stub: identity_service_pb2_grpc.IdentityServiceStub, tag: str, pid: int, descending: bool) -> dict[str, float]:
    ref = common_pb2.ProfileRef(identifier=common_pb2.Identifier(type="user_id", value=f"u-{tag}"))
    before = rss_mb(pid)
    peak = before
    began = time.monotonic()
    steps = 0
    last = None
    for step in stub.TraverseJourney(pb.TraverseJourneyRequest(ref=ref, descending=descending), timeout=3600):
        steps += 1
        if steps % 5000 == 0:
            peak = max(peak, rss_mb(pid))
        moment = step.touchpoint.occurred_at.ToDatetime()
        assert last is None or (moment <= last if descending else moment >= last), "out of order"
        last = moment
    seconds = time.monotonic() - began
    return {"steps": steps, "seconds": seconds, "steps_per_s": steps / seconds, "rss_before_mb": before,
            "rss_peak_mb": max(peak, rss_mb(pid))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--touchpoints", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-journey-") as scratch:
        with bench_neo4j(Path(scratch) / "neo4j") as neo4j, bench_server(neo4j) as server:
            rows = []
            with server.channel() as channel:
                stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
                for tag, count in (("small", args.touchpoints // 10), ("large", args.touchpoints)):
                    began = time.monotonic()
                    acks = sum(1 for a in stub.Ingest(person_events(tag, count), timeout=3600)
                               if a.status == pb.ACK_STATUS_ACCEPTED)
                    log(f"ingested {acks} touchpoints of one person in {time.monotonic() - began:.1f} s")
                    for descending in (False, True):
                        rows.append((tag, "descending" if descending else "ascending",
                                     traverse(stub, tag, server.process.pid, descending)))
            peak = rss_mb(server.process.pid, "VmHWM")
    print(f"{'person':8} {'order':11} {'steps':>8} {'steps/s':>9} {'RSS before MB':>14} {'RSS peak MB':>12}")
    for tag, order, r in rows:
        print(f"{tag:8} {order:11} {r['steps']:8.0f} {r['steps_per_s']:9.0f} {r['rss_before_mb']:14.1f} "
              f"{r['rss_peak_mb']:12.1f}")
    print(f"server peak RSS over the run: {peak:.1f} MB")
    print(f"figures saved to {save('journey', [{'person': t, 'order': o, **r} for t, o, r in rows])}")


if __name__ == "__main__":
    main()
