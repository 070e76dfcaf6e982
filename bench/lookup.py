"""Profile lookups through gRPC LookupProfiles on a large graph: throughput and latency.

Uses the graph that `bench/ingest.py --keep-home DIR` left (by default the 1M-event run):
`python -m bench.lookup --neo4j-home DIR`. Samples identifiers of that graph, then for
--seconds each measures:
- 1 stream, closed loop (send one, wait for its profile, send the next);
- 1 stream, pipelined (--window requests in flight);
- 8 concurrent streams, closed loop, and pipelined (each on a connection of its own).
Latency is from send to receipt of that request's result. Prints lookups/s, p50, p99 and
the share found. Goal (issue 3): at least 3,000 lookups/s with p99 under 20 ms.
The load generator runs on the same 2 cores as Neo4j and the server.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import bench_neo4j, bench_server, log, save
from identity.v1 import common_pb2, identity_service_pb2 as pb, identity_service_pb2_grpc
from neo4j import GraphDatabase

SAMPLE = """
MATCH (i:Identifier) WHERE i.flag IS NULL AND rand() < $share
RETURN i.type AS type, i.value AS value LIMIT $limit
"""


def run_streams(server, keys: list[tuple[str, str]], streams: int, window: int, seconds: float,
                metadata: tuple[tuple[str, str], ...] = ()) -> dict[str, float]:
    latencies: list[float] = []
    found = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def one(seed: int) -> None:
        rng = random.Random(seed)
        slots = threading.Semaphore(window)
        sent: dict[str, float] = {}

        def requests() -> Iterator[pb.LookupRequest]:
            n = 0
            while time.monotonic() < deadline:
                slots.acquire()
                kind, value = rng.choice(keys)
                sent[str(n)] = time.perf_counter()
                yield pb.LookupRequest(request_id=str(n), ref=common_pb2.ProfileRef(
                    identifier=common_pb2.Identifier(type=kind, value=value)))
                n += 1

        mine: list[float] = []
        hits = 0
        with server.channel() as channel:
            stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
            for result in stub.LookupProfiles(requests(), timeout=seconds + 60, metadata=metadata):
                mine.append(time.perf_counter() - sent.pop(result.request_id))
                hits += result.WhichOneof("result") == "profile"
                slots.release()
        with lock:
            latencies.extend(mine)
            found[0] += hits

    began = time.monotonic()
    threads = [threading.Thread(target=one, args=(n,)) for n in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    count = len(latencies)
    return {"streams": streams, "window": window, "lookups": count, "lookups_per_s": count / elapsed,
            "p50_ms": latencies[count // 2] * 1000, "p99_ms": latencies[int(count * 0.99)] * 1000,
            "found": found[0] / max(count, 1)}


def sample_keys(neo4j, limit: int) -> list[tuple[str, str]]:
    with GraphDatabase.driver(neo4j.uri, auth=(neo4j.user, neo4j.password)) as driver:
        (total,) = driver.execute_query("MATCH (i:Identifier) RETURN count(i) AS n").records[0]
        records = driver.execute_query(SAMPLE, share=min(1.0, 2 * limit / max(total, 1)), limit=limit).records
    return [(r["type"], r["value"]) for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neo4j-home", type=Path, required=True, help="a home kept by bench/ingest.py --keep-home")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2, help="server processes")
    parser.add_argument("--sample", type=int, default=50_000, help="identifiers to look up, drawn at random")
    args = parser.parse_args()
    with bench_neo4j(args.neo4j_home) as neo4j, bench_server(neo4j, args.processes) as server:
        keys = sample_keys(neo4j, args.sample)
        log(f"{len(keys)} identifiers sampled")
        run_streams(server, keys, 2, 8, 5)  # warm-up: caches, connections, JIT
        rows = []
        for streams, window in ((1, 1), (1, args.window), (8, 1), (8, max(args.window // 8, 1))):
            rows.append(run_streams(server, keys, streams, window, args.seconds))
            log(f"{streams} stream(s), window {window}: {rows[-1]['lookups_per_s']:.0f}/s")
    print(f"{'streams':>7} {'window':>6} {'lookups/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'found':>6}")
    for r in rows:
        print(f"{r['streams']:7d} {r['window']:6d} {r['lookups_per_s']:10.0f} {r['p50_ms']:7.1f} {r['p99_ms']:7.1f} "
              f"{r['found']:6.1%}")
    print(f"figures saved to {save('lookup', {'processes': args.processes, 'rows': rows})}")


if __name__ == "__main__":
    main()
