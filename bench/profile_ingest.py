"""Where ingest's cost goes: CPU per event of the server and of Neo4j, and Neo4j's time by query.

Runs its own Neo4j and server, warms both up, then ingests --events events of the synthetic
population (as bench/ingest.py does; through Ingest, or with --batches IngestBatches) and prints:
- CPU ms per event of the server and of Neo4j (from /proc, over the ingest only);
- each named query's share of the time spent in queries (the server's metric
  identity_neo4j_query_seconds, read before and after): count, ms per call, ms per event;
- with --py-spy PATH (a py-spy binary, e.g. from `pip install py-spy` in any venv), the
  server's Python CPU by function, and by kind of work (PYTHON_KINDS): samples taken only
  while a thread holds the GIL, so waiting on Neo4j is not counted. The raw profile is saved
  beside the figures.
This is the profile issue 29 asks to start from; the goals themselves are bench/ingest.py's.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import bench_neo4j, bench_server, empty_database, free_port, ingest_batched, ingest_windowed, log, save
from bench.ingest import CpuWatch
from bench.population import generate, split_by_person

QUERY_SAMPLE = re.compile(r'^identity_neo4j_query_seconds_(count|sum)\{query="([^"]+)"\} (\S+)$', re.M)


def query_times(metrics_url: str) -> dict[str, tuple[float, float]]:
    """(calls, seconds) of each named query so far, from the server's metrics."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    found: dict[str, list[float]] = {}
    for kind, name, value in QUERY_SAMPLE.findall(text):
        found.setdefault(name, [0.0, 0.0])[kind == "sum"] = float(value)
    return {name: (calls, seconds) for name, (calls, seconds) in found.items()}


def by_query(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]],
             events: int) -> list[dict[str, Any]]:
    rows = []
    for name, (calls, seconds) in after.items():
        calls_0, seconds_0 = before.get(name, (0.0, 0.0))
        if calls > calls_0:
            rows.append({"query": name, "calls": calls - calls_0, "seconds": seconds - seconds_0})
    total = sum(r["seconds"] for r in rows) or 1.0
    for r in rows:
        r["share"] = r["seconds"] / total
        r["ms_per_call"] = r["seconds"] * 1000 / r["calls"]
        r["ms_per_event"] = r["seconds"] * 1000 / events
    return sorted(rows, key=lambda r: -r["seconds"])


def python_profile(raw: Path, top: int) -> list[tuple[str, float, float]]:
    """(function, own share, inclusive share) of py-spy's raw samples, the top by inclusive."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    return [(frame, own[frame] / total, n / total) for frame, n in inclusive.most_common(top)] if total else []


# Kinds of the server's Python work: a sample counts for the innermost frame that matches one.
PYTHON_KINDS = (
    ("Neo4j driver: Bolt packing, unpacking, sockets", ("neo4j/",)),
    ("protobuf to domain values and back (api/convert.py)", ("api/convert.py",)),
    ("validation and normalisation", ("normalize.py", "validate_event", "_check_size", "read_statements")),
    ("stitching's planner (stitching.py)", ("stitching.py",)),
    ("JSON text (traits, properties, golden records)", ("json/",)),
    ("query rows and records (ingest, link_commit, golden, consent, graph)",
     ("ingest.py", "link_commit.py", "golden.py", "quarantine.py", "consent.py", "graph.py")),
    ("segment worker", ("segments/",)),
    ("grpc and asyncio", ("grpc/", "asyncio")),
)


Kinds = tuple[tuple[str, tuple[str, ...]], ...]


def python_by_kind(raw: Path, kinds: Kinds = PYTHON_KINDS) -> dict[str, float]:
    """Shares of py-spy's raw samples by kind of work (the first of kinds that the innermost
    matching frame names; else "other")."""
    counted: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        counted[_kind(stack.split(";"), kinds)] += int(count)
    total = sum(counted.values()) or 1
    return {kind: n / total for kind, n in counted.most_common()}


def _kind(frames: list[str], kinds: Kinds) -> str:
    for frame in reversed(frames):
        for kind, marks in kinds:
            if any(mark in frame for mark in marks):
                return kind
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--window", type=int, default=2000)
    parser.add_argument("--py-spy", type=Path, help="a py-spy binary: also profile the server's Python")
    parser.add_argument("--jfr", action="store_true",
                        help="also profile Neo4j's Java CPU with Java Flight Recorder (jcmd and jfr of the JDK)")
    parser.add_argument("--top", type=int, default=40, help="functions shown from the Python profile")
    parser.add_argument("--batches", action="store_true", help="ingest through IngestBatches (batches of 500)")
    args = parser.parse_args()
    ingest = ingest_batched if args.batches else ingest_windowed
    http_port = free_port()
    metrics_url = f"http://127.0.0.1:{http_port}/metrics"
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as scratch:
        with bench_neo4j(Path(scratch) / "neo4j") as neo4j, \
                bench_server(neo4j, 1, ["--http-listen", f"127.0.0.1:{http_port}"]) as server:
            ingest_windowed(server.channel, split_by_person(generate(500, 5000, prefix="warm").events, args.streams),
                            args.window)
            empty_database(neo4j)
            population = generate(people=max(args.events // 10, 1), events=args.events, prefix=f"p{args.events}")
            streams = split_by_person(population.events[:args.events], args.streams)
            raw = Path(scratch) / "python.raw"
            spy = start_py_spy(args.py_spy, server.process.pid, raw) if args.py_spy else None
            recording = Path(scratch) / "neo4j.jfr"
            if args.jfr:
                _jcmd(neo4j.pid() or 0, "JFR.start", "name=profile", "settings=profile")
            before, cpu, began = query_times(metrics_url), CpuWatch(neo4j.pid() or 0, server.process.pid), time.monotonic()
            run = ingest(server.channel, streams, args.window)
            seconds, spent, after = time.monotonic() - began, cpu.per_event_ms(args.events), query_times(metrics_url)
            if args.jfr:
                _jcmd(neo4j.pid() or 0, "JFR.stop", "name=profile", f"filename={recording}")
            java = java_profile(recording, args.top) if args.jfr and recording.exists() else {}
            jfr_bytes = recording.read_bytes() if java else b""
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(120)
            functions = python_profile(raw, args.top) if spy is not None and raw.exists() else []
            kinds = python_by_kind(raw) if functions else {}
            raw_text = raw.read_text() if functions else ""
    queries = by_query(before, after, args.events)
    report(args.events, seconds, spent, dict(run.statuses), queries, functions)
    if kinds:
        print("\nserver Python CPU by kind of work:")
        for kind, share in kinds.items():
            print(f"  {kind:75} {share:6.1%}")
    report_java(java)
    figures = {"events": args.events, "rpc": "IngestBatches" if args.batches else "Ingest", "seconds": seconds, "cpu_ms_per_event": spent, "acks": dict(run.statuses),
               "queries": queries, "python": functions, "python_by_kind": kinds, "java": java}
    path = save("profile-ingest", figures)
    if raw_text:
        path.with_suffix(".pyspy.raw").write_text(raw_text)
    if jfr_bytes:
        path.with_suffix(".jfr").write_bytes(jfr_bytes)  # `jfr print --events jdk.ExecutionSample` shows stacks
    print(f"figures saved to {path}")


def _jcmd(pid: int, *command: str) -> None:
    subprocess.run(["jcmd", str(pid), *command], check=True, capture_output=True)


# Where a Neo4j thread's sample is counted: the first of these found in its stack, innermost first.
JAVA_STAGES = (
    ("commit: writing the transaction's changes", ("TransactionCommitProcess", "KernelTransactionImplementation.commit",
                                                  "TransactionImpl.commit", "commitTransaction")),
    ("index updates", ("IndexUpdates", "IndexingService.apply", "IndexTransactionApplier")),
    ("locks", ("ForsetiClient", "LockManager")),
    ("query planning", ("CypherPlanner", "QueryPlanner", "logical.plans", "planner.")),
    ("query execution", ("org.neo4j.cypher", "org.neo4j.kernel.impl.newapi", "org.neo4j.codegen")),
    ("bolt: messages in and out", ("org.neo4j.bolt", "io.netty", "PackStream")),
)


def java_profile(recording: Path, top: int) -> dict[str, Any]:
    """Neo4j's CPU samples (jdk.ExecutionSample) by stage and by innermost Neo4j method."""
    done = subprocess.run(["jfr", "print", "--events", "jdk.ExecutionSample", "--stack-depth", "64", str(recording)],
                          capture_output=True, text=True, check=True)
    return java_samples(done.stdout, top)


def java_samples(printed: str, top: int) -> dict[str, Any]:
    """Shares by stage and by innermost Neo4j method of `jfr print`'s execution samples."""
    stages: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    for sample in printed.split("jdk.ExecutionSample")[1:]:
        frames = [line.strip().split("(")[0] for line in sample.splitlines() if "line:" in line]
        if not frames:
            continue
        stages[next((stage for stage, marks in JAVA_STAGES if any(m in f for f in frames for m in marks)),
                    "other")] += 1
        methods[next((f for f in frames if f.startswith("org.neo4j")), frames[0])] += 1
    total = sum(stages.values()) or 1
    return {"samples": total, "stages": {k: v / total for k, v in stages.most_common()},
            "methods": {k: v / total for k, v in methods.most_common(top)}}


def report_java(java: dict[str, Any]) -> None:
    if not java:
        return
    print(f"\nNeo4j Java CPU ({java['samples']} samples), by stage:")
    for stage, share in java["stages"].items():
        print(f"  {stage:50} {share:6.1%}")
    print("innermost Neo4j method:")
    for method, share in java["methods"].items():
        print(f"  {method[:110]:110} {share:6.1%}")


def start_py_spy(binary: Path, pid: int, raw: Path) -> subprocess.Popen[bytes]:
    """py-spy recording the process and its children (a server's worker processes) until SIGINT."""
    return subprocess.Popen([str(binary), "record", "--pid", str(pid), "--format", "raw", "--output", str(raw),
                             "--rate", "50", "--nonblocking", "--gil", "--subprocesses"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def report(events: int, seconds: float, spent: dict[str, float], acks: dict[str, int],
           queries: list[dict[str, Any]], functions: list[tuple[str, float, float]]) -> None:
    print(f"{events} events in {seconds:.0f} s ({events / seconds:.0f}/s), acks {acks}")
    print(f"CPU ms per event: server {spent['writer']:.3f}, Neo4j {spent['neo4j']:.3f}, "
          f"total {spent['writer'] + spent['neo4j']:.3f}")
    print(f"\n{'query':40} {'calls':>7} {'share':>6} {'ms/call':>8} {'ms/event':>9}")
    for q in queries:
        print(f"{q['query']:40} {q['calls']:7.0f} {q['share']:6.1%} {q['ms_per_call']:8.1f} {q['ms_per_event']:9.3f}")
    if functions:
        print(f"\nserver Python CPU (GIL held), by function: {'own':>6} {'incl':>6}")
        for frame, own, inclusive in functions:
            print(f"  {frame[:110]:110} {own:6.1%} {inclusive:6.1%}")


if __name__ == "__main__":
    main()
