"""Ingest throughput through gRPC against a direct-driver baseline measured in the same run.

For each size (default 10k, 100k and 1M events of the synthetic population: anonymous page
views, logins, app opens, e-mail opens, store purchases with junk at the till, CRM exports,
shared family tablets), on an emptied database:
- baseline: the same events written with the neo4j driver directly, in UNWIND batches of
  1,000 over as many threads as the service gets streams: touchpoints, identifiers, CARRIED
  edges, LINKED edges between identifiers seen together, a profile per new identifier.
  No stitching, no merge protection, no golden record: a lower bound on the work;
- service: the same events through `Ingest` over --streams concurrent bidi streams, each
  keeping at most --window unacked events in flight, and acked only once committed;
- with --batches, the service again through `IngestBatches` (batches of 500 events, one
  message each way per batch), on an emptied database.
Prints events/s of both, their ratio, the cost per event relative to the smallest size, the
server's peak resident memory, and the CPU each spent per event (Neo4j's, and the writer's:
the benchmark's own driver threads for the baseline, the server for the service), which
neighbours on a shared machine disturb less than wall time. Goals (issues 3, 13): service >=
50% of the baseline; per-event cost at 1M no more than 25% above 10k; bounded server memory.
Issue 29's goals, printed last: service CPU per event at most 2x the baseline's, and at 1M
within 25% of 10k's.

Runs its own Neo4j and server; --keep-home DIR keeps the Neo4j home with the largest graph
for bench/lookup.py (`--neo4j-home DIR`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench.common import (MemoryWatch, bench_neo4j, bench_server, empty_database, ingest_batched, ingest_windowed, log,
                          run_threads, save)
from bench.ingest_flaws import cpu_seconds
from bench.population import EventSpec, generate, split_by_person
from localneo4j import LocalNeo4j
from neo4j import GraphDatabase
from server.graph import epoch_millis

BASELINE = """
UNWIND $rows AS row
WITH row, datetime({epochMillis: row.occurred_at}) AS occurred_at
MERGE (t:Touchpoint {event_id: row.event_id})
  ON CREATE SET t.occurred_at = occurred_at, t.source = row.source, t.channel = row.channel,
                t.type = row.type, t.traits = row.traits, t.properties = row.properties
WITH t, row, occurred_at
UNWIND row.identifiers AS carried
MERGE (i:Identifier {type: carried.type, value: carried.value})
  ON CREATE SET i.first_seen = occurred_at, i.last_seen = occurred_at
  ON MATCH SET i.last_seen = occurred_at
MERGE (t)-[:CARRIED]->(i)
WITH row, i, occurred_at
CALL (i) {
  WITH i WHERE NOT (i)-[:BELONGS_TO]->()
  CREATE (i)-[:BELONGS_TO]->(:Profile {profile_id: randomUUID(), active: true})
}
WITH row, occurred_at, collect(i) AS ids
UNWIND range(0, size(ids) - 2) AS k
WITH ids[k] AS a, ids[k + 1] AS b, occurred_at
MERGE (a)-[l:LINKED]->(b)
  ON CREATE SET l.first_seen = occurred_at, l.times_seen = 0
SET l.times_seen = l.times_seen + 1, l.last_seen = occurred_at
"""


class CpuWatch:
    """CPU time spent from now on by Neo4j and by the writer: the server process (with its
    workers), or, without one, this process (the baseline's driver threads)."""

    def __init__(self, neo4j_pid: int, server_pid: int | None) -> None:
        self.neo4j_pid, self.server_pid = neo4j_pid, server_pid
        self.start = self._now()

    def _now(self) -> tuple[float, float]:
        writer = cpu_seconds([self.server_pid]) if self.server_pid else time.process_time()
        return cpu_seconds([self.neo4j_pid]), writer

    def per_event_ms(self, events: int) -> dict[str, float]:
        (neo4j_0, writer_0), (neo4j_1, writer_1) = self.start, self._now()
        return {"neo4j": (neo4j_1 - neo4j_0) * 1000 / events, "writer": (writer_1 - writer_0) * 1000 / events}


def baseline(neo4j: LocalNeo4j, streams: list[list[EventSpec]]) -> float:
    """Seconds to write all streams with the driver directly, one thread per stream."""
    def rows(events: list[EventSpec]) -> Iterator[list[dict[str, object]]]:
        for start in range(0, len(events), 1000):
            yield [{"event_id": e.event_id, "occurred_at": epoch_millis(e.occurred_at), "source": e.source,
                    "channel": e.channel, "type": e.type, "traits": json.dumps(e.traits),
                    "properties": json.dumps(e.properties),
                    "identifiers": [{"type": t, "value": v} for t, v in e.identifiers]}
                   for e in events[start:start + 1000]]

    with GraphDatabase.driver(neo4j.uri, auth=(neo4j.user, neo4j.password)) as driver:
        def write(events: list[EventSpec]) -> None:
            with driver.session() as session:
                for batch in rows(events):
                    session.execute_write(lambda tx, b=batch: tx.run(BASELINE, rows=b).consume())

        return _timed_threads(write, streams)


def service(address_channel, streams: list[list[EventSpec]], window: int,
            batches: bool = False) -> tuple[float, Counter[str]]:
    """Seconds to ingest all streams through gRPC (Ingest, or with batches IngestBatches in
    batches of 500), and the acks by status."""
    run = (ingest_batched(address_channel, streams, window) if batches
           else ingest_windowed(address_channel, streams, window))
    return run.seconds, run.statuses


def _timed_threads(work, streams: list[list[EventSpec]]) -> float:
    began = time.monotonic()
    run_threads(work, streams)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--window", type=int, default=2000, help="unacked events in flight per stream")
    parser.add_argument("--processes", type=int, default=1, help="server processes")
    parser.add_argument("--keep-home", type=Path, help="keep the Neo4j home with the largest graph here")
    parser.add_argument("--batches", action="store_true",
                        help="also ingest each size through IngestBatches (batches of 500), after Ingest")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        home = args.keep_home or Path(scratch) / "neo4j"
        with bench_neo4j(home) as neo4j, bench_server(neo4j, args.processes) as server:
            warm_up = split_by_person(generate(people=500, events=5000, prefix="warm").events, args.streams)
            baseline(neo4j, warm_up)  # plans cached and JIT warm on both paths before anything counts
            empty_database(neo4j)
            service(server.channel, warm_up, args.window)
            if args.batches:
                empty_database(neo4j)
                service(server.channel, warm_up, args.window, batches=True)
            log("warmed up")
            for size in sizes:
                population = generate(people=max(size // 10, 1), events=size, prefix=f"s{size}")
                events = population.events[:size]
                streams = split_by_person(events, args.streams)
                log(f"{len(events)} events, {len(population.people)} people; baseline ...")
                empty_database(neo4j)
                database = neo4j.pid() or 0
                cpu = CpuWatch(database, None)
                base_s = baseline(neo4j, streams)
                base_cpu = cpu.per_event_ms(len(events))
                log(f"baseline {len(events) / base_s:.0f} events/s; service ...")
                empty_database(neo4j)
                watch = MemoryWatch(server.process.pid)
                cpu = CpuWatch(database, server.process.pid)
                service_s, statuses = service(server.channel, streams, args.window)
                service_cpu = cpu.per_event_ms(len(events))
                peak = watch.stop()
                log(f"service {len(events) / service_s:.0f} events/s, acks {dict(statuses)}, peak RSS {peak:.0f} MB")
                row = {"events": len(events), "baseline_s": base_s, "service_s": service_s,
                       "baseline_eps": len(events) / base_s, "service_eps": len(events) / service_s,
                       "acks": dict(statuses), "server_peak_rss_mb": peak,
                       "baseline_cpu_ms_per_event": base_cpu, "service_cpu_ms_per_event": service_cpu}
                if args.batches:
                    empty_database(neo4j)
                    cpu = CpuWatch(database, server.process.pid)
                    batched_s, batched_statuses = service(server.channel, streams, args.window, batches=True)
                    row.update(batches_s=batched_s, batches_eps=len(events) / batched_s,
                               batches_acks=dict(batched_statuses), batches_cpu_ms_per_event=cpu.per_event_ms(len(events)))
                    log(f"IngestBatches {len(events) / batched_s:.0f} events/s, acks {dict(batched_statuses)}")
                rows.append(row)
    first = rows[0]["service_s"] / rows[0]["events"]
    print(f"{'events':>9} {'baseline ev/s':>14} {'service ev/s':>13} {'ratio':>6} {'us/event':>9} "
          f"{'vs smallest':>11} {'server peak RSS MB':>19} {'CPU ms/event: baseline':>23} {'service':>17}  acks")
    for r in rows:
        per_event = r["service_s"] / r["events"]
        r["ratio"] = r["service_eps"] / r["baseline_eps"]
        r["cost_vs_smallest"] = per_event / first
        base, served = r["baseline_cpu_ms_per_event"], r["service_cpu_ms_per_event"]
        print(f"{r['events']:9d} {r['baseline_eps']:14.0f} {r['service_eps']:13.0f} {r['ratio']:6.2f} "
              f"{per_event * 1e6:9.0f} {r['cost_vs_smallest']:11.2f} {r['server_peak_rss_mb']:19.0f} "
              f"{base['neo4j'] + base['writer']:8.2f} ({base['neo4j']:.2f} Neo4j) "
              f"{served['neo4j'] + served['writer']:6.2f} ({served['neo4j']:.2f} Neo4j)  {r['acks']}")
    cpu_ratios(rows)
    print(f"figures saved to {save('ingest', {'streams': args.streams, 'window': args.window, 'rows': rows})}")
    if args.keep_home:
        print(f"graph kept: python -m bench.lookup --neo4j-home {args.keep_home}")


def cpu_ratios(rows: list[dict]) -> None:
    """Issue 29's figures: service CPU per event against the baseline's (goal <= 2), and per-event
    CPU against the smallest size's (goal <= 1.25), for Ingest and, when run, IngestBatches."""
    def total(cpu: dict[str, float]) -> float:
        return cpu["neo4j"] + cpu["writer"]

    print(f"\n{'events':>9} {'rpc':>14} {'CPU ms/event':>13} {'vs baseline':>12} {'vs smallest':>12}")
    for key, rpc in (("service_cpu_ms_per_event", "Ingest"), ("batches_cpu_ms_per_event", "IngestBatches")):
        if key not in rows[0]:
            continue
        smallest = total(rows[0][key])
        for r in rows:
            r.setdefault("cpu_ratios", {})[rpc] = {"vs_baseline": total(r[key]) / total(r["baseline_cpu_ms_per_event"]),
                                                  "vs_smallest": total(r[key]) / smallest}
            ratios = r["cpu_ratios"][rpc]
            print(f"{r['events']:9d} {rpc:>14} {total(r[key]):13.3f} {ratios['vs_baseline']:12.2f} "
                  f"{ratios['vs_smallest']:12.2f}")


if __name__ == "__main__":
    main()
