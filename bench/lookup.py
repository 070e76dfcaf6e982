"""Profile lookups through gRPC on a large graph: throughput, latency and CPU per lookup.

The graph is the one `bench/ingest.py --keep-home DIR` left (`--neo4j-home DIR`), or, without
one, a graph this script ingests itself through the service (--events, default 1M events of
the synthetic population). It samples identifiers of that graph, then for --seconds each:
- ghz (github.com/bojand/ghz, a Go load generator built from the Go module proxy by
  bench/ghz.py), unary `LookupProfile` over the sampled identifiers, at several
  concurrencies; latency is ghz's, per call;
- ghz on `LookupProfiles` streams of 20 lookups each (people's first cookies, at random;
  only for a graph of known prefix: one this script built, or --prefix); latency is the
  whole stream's, from opening to its last answer, an upper bound of each lookup's;
- with --python, also the old Python load generator on `LookupProfiles` streams (1 and 8
  streams, closed loop and pipelined), which spends as much CPU as the server it measures.
CPU per lookup is the server's and Neo4j's CPU over the run divided by the lookups answered;
ghz's own CPU per lookup is printed beside it (ghz, the server and Neo4j share the machine's 2
cores: at 3,000/s, all three together have 0.67 ms per lookup). Goal (issue 29): at least
3,000 lookups/s with p99 under 20 ms. The server runs without online linkage, whose
background model fits would otherwise be counted as lookup CPU. With --py-spy PATH, one more
run each of unary lookups and streams is profiled: the server's Python by kind of work.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import bench_neo4j, bench_server, empty_database, ingest_batched, log, save
from bench.ghz import Load, run_ghz, run_ghz_streams, summary
from bench.ingest import CpuWatch
from bench.profile_ingest import python_by_kind, python_profile, start_py_spy
from bench.population import generate, split_by_person
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


GHZ_LOADS = (Load(concurrency=8, connections=2, seconds=0), Load(concurrency=16, connections=4, seconds=0),
             Load(concurrency=32, connections=4, seconds=0))
PER_STREAM = 20  # lookups per LookupProfiles stream that ghz opens
PROTO = "identity/v1/identity_service.proto"


def children_cpu_seconds() -> float:
    """CPU spent by this process's finished children: ghz, once its run has ended."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ghz_lookups(server, neo4j, keys: list[tuple[str, str]], load: Load) -> dict[str, Any]:
    """One ghz run of unary LookupProfile over the keys, with the server's and Neo4j's CPU."""
    requests = [{"request_id": str(n), "ref": {"identifier": {"type": kind, "value": value}}}
                for n, (kind, value) in enumerate(keys)]
    return _measured(server, neo4j, load, "LookupProfile", 1, lambda: run_ghz(
        server.address, "identity.v1.IdentityService.LookupProfile", PROTO, requests, load))


def ghz_stream_lookups(server, neo4j, people: int, prefix: str, load: Load) -> dict[str, Any]:
    """One ghz run of LookupProfiles streams of PER_STREAM lookups each, by the first browser
    cookie of random people of the population (`<prefix>-c-<n>-0`). A call's latency is its
    stream's, from opening to the last answer: an upper bound of each of its lookups'."""
    template = json.dumps({"request_id": "{{.RequestNumber}}", "ref": {"identifier": {
        "type": "cookie", "value": f"{prefix}-c-{{{{randomInt 0 {people}}}}}-0"}}})
    return _measured(server, neo4j, load, f"LookupProfiles x{PER_STREAM}", PER_STREAM, lambda: run_ghz_streams(
        server.address, "identity.v1.IdentityService.LookupProfiles", PROTO, template, PER_STREAM, load))


def _measured(server, neo4j, load: Load, rpc: str, per_call: int, run: Callable[[], Any]) -> dict[str, Any]:
    """A ghz run's figures, with the server's and Neo4j's CPU and ghz's own per lookup
    (per_call lookups per ghz call)."""
    cpu, ghz_0 = CpuWatch(neo4j.pid() or 0, server.process.pid), children_cpu_seconds()
    figures = summary(run())
    lookups = max(figures["calls"] * per_call, 1)
    return {"load_generator": "ghz", "rpc": rpc, "concurrency": load.concurrency, "connections": load.connections,
            **figures, "lookups_per_s": figures["calls_per_s"] * per_call, "cpu_ms_per_lookup": cpu.per_event_ms(lookups),
            "ghz_cpu_ms_per_lookup": (children_cpu_seconds() - ghz_0) * 1000 / lookups}


def build_graph(neo4j, server, events: int) -> tuple[str, int]:
    """Ingests `events` events of the synthetic population through the service (IngestBatches);
    returns its prefix and number of people."""
    population = generate(people=max(events // 10, 1), events=events, prefix=f"lookup{events}")
    empty_database(neo4j)
    log(f"ingesting {events} events to look up ...")
    run = ingest_batched(server.channel, split_by_person(population.events[:events], 2), 2000)
    log(f"ingested in {run.seconds:.0f} s: {dict(run.statuses)}")
    return f"lookup{events}", max(events // 10, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neo4j-home", type=Path, help="a home kept by bench/ingest.py --keep-home")
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="without --neo4j-home: events to ingest into a fresh graph first")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2, help="server processes")
    parser.add_argument("--sample", type=int, default=50_000, help="identifiers to look up, drawn at random")
    parser.add_argument("--python", action="store_true", help="also run the Python load generator on streams")
    parser.add_argument("--prefix", help="with --neo4j-home: the population's prefix (bench.ingest's is s<events>), "
                                         "for the stream runs, which look up people's cookies by number")
    parser.add_argument("--people", type=int, default=100_000, help="with --prefix: people in that population")
    parser.add_argument("--py-spy", type=Path, help="a py-spy binary: after the measured runs, profile the server's "
                                                    "Python over one more ghz run each, unary at 16 and streams at 8")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as scratch:
        home = args.neo4j_home or Path(scratch) / "neo4j"
        # online linkage off: on a kept graph its worker fits a model in the background (and the
        # synthetic population's fits are refused and retried), CPU that is no lookup's
        with bench_neo4j(home) as neo4j, bench_server(neo4j, args.processes, ["--online-linkage", "off"]) as server:
            population = build_graph(neo4j, server, args.events) if args.neo4j_home is None else None
            if population is None and args.prefix:
                population = (args.prefix, args.people)
            keys = sample_keys(neo4j, args.sample)
            rows = measure(server, neo4j, keys, population, args)
            profiles = (profile_server(server, neo4j, keys, population, args.py_spy, Path(scratch), args.seconds)
                       if args.py_spy else None)
    print(f"{'load':>6} {'rpc':>19} {'conc':>5} {'lookups/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/lookup':>14} "
          f"{'(Neo4j)':>8} {'ghz CPU ms':>10}  statuses")
    for r in rows:
        cpu = r["cpu_ms_per_lookup"]
        ghz = f"{r['ghz_cpu_ms_per_lookup']:10.3f}" if "ghz_cpu_ms_per_lookup" in r else f"{'':>10}"
        print(f"{r['load_generator']:>6} {r['rpc']:>19} {r['concurrency']:5d} {r['lookups_per_s']:10.0f} "
              f"{r['p50_ms']:7.1f} {r['p99_ms']:7.1f} {cpu['neo4j'] + cpu['writer']:14.3f} {cpu['neo4j']:8.3f} {ghz}  "
              f"{r['statuses']}")
    for profile in profiles or []:
        print(f"\nserver Python CPU (GIL held) over {profile['run']}, by kind of work:")
        for kind, share in profile["kinds"].items():
            print(f"  {kind:75} {share:6.1%}")
        print(f"by function: {'own':>6} {'incl':>6}")
        for frame, own, inclusive in profile["functions"]:
            print(f"  {frame[:110]:110} {own:6.1%} {inclusive:6.1%}")
    print(f"figures saved to {save('lookup', {'processes': args.processes, 'rows': rows, 'python': profiles})}")


# Kinds of the server's Python work on the lookup path (bench.profile_ingest.python_by_kind).
LOOKUP_KINDS = (
    ("Neo4j driver: Bolt packing, unpacking, sockets", ("neo4j/",)),
    ("pb messages from views (api/convert.py)", ("api/convert.py",)),
    ("views from records (profiles, golden, consent, graph)",
     ("profiles.py", "golden.py", "consent.py", "graph.py", "values.py")),
    ("coalescer hand-offs (batching.py)", ("batching.py",)),
    ("servicer, status, auth, metrics", ("identity_servicer.py", "api/status.py", "api/auth.py", "api/metrics.py",
                                         "prometheus_client")),
    ("grpc and asyncio", ("grpc/", "asyncio")),
)


def profile_server(server, neo4j, keys: list[tuple[str, str]], population: tuple[str, int] | None, py_spy: Path,
                   scratch: Path, seconds: float) -> list[dict[str, Any]]:
    """The server's Python CPU by kind of work and by function, over one more ghz run each of
    unary lookups at 16 and (for a population of known prefix) streams at 8."""
    runs: list[tuple[str, Callable[[], object]]] = [
        ("ghz unary at 16", lambda: ghz_lookups(server, neo4j, keys, Load(16, 4, seconds)))]
    if population is not None:
        runs.append((f"ghz streams of {PER_STREAM} at 8",
                     lambda: ghz_stream_lookups(server, neo4j, population[1], population[0], Load(8, 4, seconds))))
    profiles = []
    for n, (name, run) in enumerate(runs):
        raw = scratch / f"lookup-{n}.pyspy.raw"
        spy = start_py_spy(py_spy, server.process.pid, raw)
        time.sleep(1.0)  # py-spy attached before the load starts
        run()
        spy.send_signal(signal.SIGINT)
        spy.wait(120)
        if raw.exists():
            profiles.append({"run": name, "kinds": python_by_kind(raw, LOOKUP_KINDS),
                             "functions": python_profile(raw, 30)})
    return profiles


def measure(server, neo4j, keys: list[tuple[str, str]], population: tuple[str, int] | None,
            args: argparse.Namespace) -> list[dict[str, Any]]:
    log(f"{len(keys)} identifiers sampled")
    ghz_lookups(server, neo4j, keys, Load(8, 2, 5))  # warm-up: caches, connections, JIT
    rows = []
    for load in GHZ_LOADS:
        rows.append(ghz_lookups(server, neo4j, keys, Load(load.concurrency, load.connections, args.seconds)))
        log(f"ghz unary, concurrency {load.concurrency}: {rows[-1]['lookups_per_s']:.0f}/s, "
            f"p99 {rows[-1]['p99_ms']:.1f} ms")
    if population is not None:
        for concurrency in (4, 8, 16):
            load = Load(concurrency, min(concurrency, 4), args.seconds)
            rows.append(ghz_stream_lookups(server, neo4j, population[1], population[0], load))
            log(f"ghz streams of {PER_STREAM}, concurrency {concurrency}: {rows[-1]['lookups_per_s']:.0f}/s, "
                f"stream p99 {rows[-1]['p99_ms']:.1f} ms")
    if args.python:
        for streams, window in ((1, 1), (1, args.window), (8, 1), (8, max(args.window // 8, 1))):
            cpu = CpuWatch(neo4j.pid() or 0, server.process.pid)
            run = run_streams(server, keys, streams, window, args.seconds)
            rows.append({"load_generator": "python", "rpc": "LookupProfiles", "concurrency": streams * window,
                         "calls": run["lookups"], "lookups_per_s": run["lookups_per_s"], "p50_ms": run["p50_ms"],
                         "p99_ms": run["p99_ms"], "statuses": {"found": run["found"]},
                         "cpu_ms_per_lookup": cpu.per_event_ms(max(run["lookups"], 1))})
            log(f"{streams} stream(s), window {window}: {run['lookups_per_s']:.0f}/s")
    return rows


if __name__ == "__main__":
    main()
