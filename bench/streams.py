"""Many open streams on one server process: --watchers WatchSegment streams beside lookups.

Runs its own Neo4j (temporary home, free ports) and one server process. Ingests a small graph
(--events of bench/population.py), defines --segments segments with UpsertSegment (one rule
under several names) and keeps a trickle of events (--trickle a second, each a new person
who enters every segment) going through the whole run, so that watchers have changes to
receive. Then, in the same run:

1. alone: health checks (grpc.health.v1 Check, one call after another, --health-interval
   apart) for --health-seconds; then lookups (LookupProfiles, --lookup-streams pipelined
   streams of --window requests in flight, identifiers sampled from the graph) for
   --seconds, with the health checks going on beside them;
2. under load: --watchers WatchSegment streams are opened and kept open; once each has
   received the changes logged so far (or ended), the server's RSS is read again and the
   same health and lookup measurements run;
3. the trickle stops; the watchers get up to --drain seconds to receive its last changes,
   and their counts are compared with the trickle's accepted events.

Prints the figures alone beside those under load with the goals of issue 13: health p99
under 50 ms, lookups under load at least 80% of lookups alone, no watcher refused, every
watcher receiving every change; and the server's memory per idle stream.

The load generator uses grpc.aio, one channel (connection) per --streams-per-channel
streams. Lookups and watchers run in client processes of their own, at a lower CPU priority
(--load-nice, 10): in a deployment the clients are on other machines, and here they would
otherwise take the two cores from the server and Neo4j they are meant to load. The health
probe runs in a process of its own at normal priority, like a load balancer's probe. All of
it shares the machine's cores with Neo4j and the server.

    python -m bench.streams --watchers 60                  # a quick look
    python -m bench.streams                                # 1,000 watchers, 100 lookup streams
    python -m bench.streams --server-arg=--max-workers=64  # flags passed on to the server
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from identity.v1 import common_pb2, identity_service_pb2 as pb, identity_service_pb2_grpc
from identity.v1 import segment_service_pb2 as seg, segment_service_pb2_grpc

from bench.common import Server, bench_neo4j, bench_server, children, ingest_windowed, log, save, status_kb
from bench.lookup import sample_keys
from bench.population import generate, split_by_person

TRAIT = "stream_bench"  # the trickle's events carry it; every bench segment's rule asks for it
HEALTH_P99_GOAL_MS = 50.0
LOOKUP_RATIO_GOAL = 0.80


def percentile(values: Sequence[float], share: float) -> float | None:
    """The value below which `share` of the sorted values lie; None for no values."""
    if not values:
        return None
    return values[min(int(len(values) * share), len(values) - 1)]


def watcher_summary(counts: Sequence[int], ended: Sequence[str | None], expected: int) -> dict[str, Any]:
    """Per-watcher change counts and endings (None: still open; else a status code name, OK if
    the server ended the stream) summed up against the changes every watcher should have had."""
    still_open = [count for count, end in zip(counts, ended) if end is None]
    return {
        "asked": len(counts),
        "open": len(still_open),
        "ended": dict(Counter(end for end in ended if end is not None)),
        "expected_changes": expected,
        "changes_min": min(still_open, default=0),
        "changes_median": statistics.median(still_open) if still_open else 0,
        "changes_max": max(still_open, default=0),
        "complete": sum(count >= expected for count in still_open),
    }


def aio_channel(address: str) -> grpc.aio.Channel:
    # a connection of its own per channel: one HTTP/2 connection carries at most so many streams
    return grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def server_rss_kib(pid: int) -> int:
    return sum(status_kb(p, "VmRSS") for p in (pid, *children(pid)) if Path(f"/proc/{p}").exists())


class Trickle:
    """One Ingest stream sending `rate` events a second, each of a new person with the bench
    trait, who therefore enters every bench segment once."""

    def __init__(self, server: Server, run: str, rate: float) -> None:
        self.server = server
        self.run = run
        self.rate = rate
        self.accepted = 0
        self.other: Counter[str] = Counter()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._ingest, daemon=True)
        self._thread.start()

    def _events(self) -> Iterator[pb.Event]:
        n = 0
        while not self._stop.is_set():
            n += 1
            stamp = Timestamp()
            stamp.FromDatetime(datetime.now(UTC) - timedelta(seconds=1))
            yield pb.Event(event_id=f"streams-{self.run}-{n}", occurred_at=stamp, source="bench", type="signup",
                           identifiers=[common_pb2.Identifier(type="email", value=f"streams-{n}-{self.run}@example.com")],
                           traits={TRAIT: self.run})
            self._stop.wait(1 / self.rate)

    def _ingest(self) -> None:
        try:
            with self.server.channel() as channel:
                for ack in identity_service_pb2_grpc.IdentityServiceStub(channel).Ingest(self._events(), timeout=24 * 3600):
                    if ack.status == pb.ACK_STATUS_ACCEPTED:
                        self.accepted += 1
                    else:
                        self.other[pb.AckStatus.Name(ack.status)] += 1
        except grpc.RpcError as exc:
            self.error = f"{exc.code().name}: {exc.details()}"
            log(f"trickle ended: {self.error}")

    def stop(self) -> int:
        """Stops sending; returns the events accepted, once every ack is in."""
        self._stop.set()
        self._thread.join(120)
        return self.accepted


class HealthProbe:
    """grpc.health.v1 Check, one call after another with `interval` between them, from a client
    process of its own (as a load balancer's or kubelet's probe would be), so that the figures
    are the server's answer time and not the load generator's own contention; take() returns
    the figures since the previous take()."""

    def __init__(self, server: Server, interval: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self.process = context.Process(target=_probe, args=(theirs, server.address, interval),
                                       name="bench-health-probe", daemon=True)
        self.process.start()

    def take(self) -> dict[str, Any]:
        self._conn.send("take")
        latencies, errors = self._conn.recv()
        latencies = sorted(latencies)
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        return {"checks": len(latencies) + sum(errors.values()), "errors": errors,
                "p50_ms": None if p50 is None else p50 * 1000, "p99_ms": None if p99 is None else p99 * 1000}

    def stop(self) -> dict[str, str]:
        self._conn.send("stop")
        examples: dict[str, str] = self._conn.recv()
        self.process.join(10)
        return examples


def _probe(conn: Connection, address: str, interval: float) -> None:
    """The probe process: checks on a thread, answers take/stop on the pipe."""
    lock = threading.Lock()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    stop = threading.Event()
    channel = grpc.insecure_channel(address)
    stub = health_pb2_grpc.HealthStub(channel)

    def check() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            try:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                with lock:
                    latencies.append(time.perf_counter() - began)
            except grpc.RpcError as exc:
                with lock:
                    errors[exc.code().name] += 1
                    examples.setdefault(exc.code().name, exc.details() or "")
            stop.wait(interval)

    checker = threading.Thread(target=check, daemon=True)
    checker.start()
    while (command := conn.recv()) != "stop":
        assert command == "take"
        with lock:
            conn.send((list(latencies), dict(errors)))
            latencies.clear()
            errors.clear()
    stop.set()
    checker.join(10)
    channel.close()
    conn.send(examples)


async def _lookups(address: str, keys: list[tuple[str, str]], streams: int, window: int, seconds: float,
                   per_channel: int) -> dict[str, Any]:
    channels = [aio_channel(address) for _ in range(-(-streams // per_channel))]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    found = 0
    deadline = time.monotonic() + seconds

    async def one(n: int) -> None:
        nonlocal found
        rng = random.Random(n)
        # one lookup until the first result, then `window`: a refused stream's status comes
        # back before a second write, which grpc.aio would otherwise report as INTERNAL
        slots = asyncio.Semaphore(1)
        opened = False
        sent: dict[str, float] = {}

        async def requests() -> AsyncIterator[pb.LookupRequest]:
            k = 0
            while True:
                await slots.acquire()
                if time.monotonic() >= deadline:
                    return
                kind, value = rng.choice(keys)
                sent[str(k)] = time.perf_counter()
                yield pb.LookupRequest(request_id=str(k), ref=common_pb2.ProfileRef(
                    identifier=common_pb2.Identifier(type=kind, value=value)))
                k += 1

        stub = identity_service_pb2_grpc.IdentityServiceStub(channels[n // per_channel])
        try:
            async for result in stub.LookupProfiles(requests(), timeout=seconds + 60):
                latencies.append(time.perf_counter() - sent.pop(result.request_id))
                found += result.WhichOneof("result") == "profile"
                for _ in range(1 if opened else window):
                    slots.release()
                opened = True
        except grpc.aio.AioRpcError as exc:
            errors[exc.code().name] += 1
            examples.setdefault(exc.code().name, exc.details() or "")

    began = time.monotonic()
    await asyncio.gather(*(one(n) for n in range(streams)))
    elapsed = time.monotonic() - began
    for channel in channels:
        await channel.close()
    latencies.sort()
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return {"streams": streams, "window": window, "lookups": len(latencies), "lookups_per_s": len(latencies) / elapsed,
            "p50_ms": None if p50 is None else p50 * 1000, "p99_ms": None if p99 is None else p99 * 1000,
            "found": found / max(len(latencies), 1), "failed_streams": dict(errors), "examples": examples}


def lookups(address: str, keys: list[tuple[str, str]], streams: int, window: int, seconds: float,
            per_channel: int, nice: int) -> dict[str, Any]:
    """LookupProfiles on `streams` pipelined streams for `seconds`: throughput, latency (send to
    result) and the streams that failed, by status. Runs in a load process of its own."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=os.nice, initargs=(nice,)) as pool:
        return pool.submit(_run_lookups, address, keys, streams, window, seconds, per_channel).result()


def _run_lookups(address: str, keys: list[tuple[str, str]], streams: int, window: int, seconds: float,
                 per_channel: int) -> dict[str, Any]:
    return asyncio.run(_lookups(address, keys, streams, window, seconds, per_channel))


def watch_segments(conn: Connection, address: str, names: Sequence[str], watchers: int, per_channel: int,
                   nice: int) -> None:
    """The watchers' process: opens the WatchSegment streams at once, spread over the segments,
    and answers each message from `conn` with every watcher's change count and ending; "stop"
    cancels them first and ends the process."""
    os.nice(nice)
    asyncio.run(_watch_segments(conn, address, names, watchers, per_channel))


async def _watch_segments(conn: Connection, address: str, names: Sequence[str], watchers: int,
                          per_channel: int) -> None:
    channels = [aio_channel(address) for _ in range(-(-watchers // per_channel))]
    counts = [0] * watchers
    ended: list[str | None] = [None] * watchers
    examples: dict[str, str] = {}

    async def one(n: int) -> None:
        stub = segment_service_pb2_grpc.SegmentServiceStub(channels[n // per_channel])
        try:
            async for _ in stub.WatchSegment(seg.WatchSegmentRequest(name=names[n % len(names)])):
                counts[n] += 1
            ended[n] = "OK"
        except grpc.aio.AioRpcError as exc:
            ended[n] = exc.code().name
            examples.setdefault(exc.code().name, exc.details() or "")

    tasks = [asyncio.create_task(one(n)) for n in range(watchers)]
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "stop":
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        conn.send({"counts": counts, "ended": ended, "examples": examples})
        if command == "stop":
            break
    for channel in channels:
        await channel.close()


class Watchers:
    """The WatchSegment streams, held by a client process of their own."""

    def __init__(self, address: str, names: Sequence[str], watchers: int, per_channel: int, nice: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self.process = context.Process(target=watch_segments, args=(theirs, address, list(names), watchers, per_channel, nice),
                                       name="bench-watchers", daemon=True)
        self.process.start()

    def status(self, command: str = "status") -> dict[str, Any]:
        self._conn.send(command)
        return dict(self._conn.recv())

    def wait(self, done: Any, timeout: float, what: str) -> dict[str, Any]:
        """Polls until done(status) or timeout; returns the last status."""
        deadline = time.monotonic() + timeout
        while not done(state := self.status()) and time.monotonic() < deadline:
            time.sleep(0.5)
        log(f"watchers {what}: {sum(e is None for e in state['ended'])} open, "
            f"{dict(Counter(e for e in state['ended'] if e is not None))} ended")
        return state

    def stop(self) -> dict[str, Any]:
        final = self.status("stop")
        self.process.join(30)
        return final


def populate(server: Server, events: int, run: str) -> None:
    population = generate(people=max(events // 10, 1), events=events, prefix=f"s{run}")
    ingested = ingest_windowed(server.channel, split_by_person(population.events, 2), 500)
    log(f"populated: {dict(ingested.statuses)} in {ingested.seconds:.1f} s")


def define_segments(server: Server, run: str, count: int) -> list[str]:
    names = [f"bench-streams-{run}-{k}" for k in range(count)]
    with server.channel() as channel:
        stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
        for name in names:
            stub.UpsertSegment(seg.UpsertSegmentRequest(
                name=name, rule=seg.Rule(trait=seg.TraitCondition(key=TRAIT, equals=run))), timeout=600)
    return names


def _busy(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def health_beside_busy_cores(probe: HealthProbe, seconds: float) -> dict[str, Any]:
    """Health checks while two processes that make no RPC keep both cores busy: how much of
    the tail under lookups is the machine's CPU being full, rather than the server."""
    context = multiprocessing.get_context("spawn")
    hogs = [context.Process(target=_busy, args=(seconds,), daemon=True) for _ in range(2)]
    probe.take()
    for hog in hogs:
        hog.start()
    for hog in hogs:
        hog.join()
    beside = probe.take()
    log(f"health beside two busy cores, no RPCs: {beside}")
    return beside


def measure(server: Server, probe: HealthProbe, keys: list[tuple[str, str]], args: argparse.Namespace,
            what: str) -> dict[str, Any]:
    """Health alone for --health-seconds, then lookups for --seconds with health beside them."""
    probe.take()
    time.sleep(args.health_seconds)
    health = probe.take()
    log(f"{what}: health {health}")
    found = lookups(server.address, keys, args.lookup_streams, args.window, args.seconds, args.streams_per_channel,
                    args.load_nice)
    beside = probe.take()
    log(f"{what}: {found['lookups_per_s']:.0f} lookups/s, p99 {found['p99_ms']} ms, failed {found['failed_streams']}; "
        f"health beside them {beside}")
    return {"health": health, "lookups": found, "health_beside_lookups": beside}


def run(args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    figures: dict[str, Any] = {"settings": dict(vars(args))}
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as scratch, \
            bench_neo4j(Path(scratch) / "neo4j") as neo4j, bench_server(neo4j, 1, args.server_arg) as server:
        populate(server, args.events, tag)
        names = define_segments(server, tag, args.segments)
        keys = sample_keys(neo4j, args.sample)
        log(f"{len(keys)} identifiers sampled; segments {names}")
        trickle = Trickle(server, tag, args.trickle)
        probe = HealthProbe(server, args.health_interval)
        lookups(server.address, keys, min(args.lookup_streams, 10), args.window, 3, args.streams_per_channel,
                args.load_nice)  # warm-up
        figures["alone"] = measure(server, probe, keys, args, "alone")
        figures["busy_cores"] = health_beside_busy_cores(probe, args.health_seconds)

        rss_before = server_rss_kib(server.process.pid)
        began = time.monotonic()
        watchers = Watchers(server.address, names, args.watchers, args.streams_per_channel, args.load_nice)
        # live once it has had the changes of the run so far (from position 0), or ended
        opened = watchers.wait(lambda s: all(e is not None or c > 0 for c, e in zip(s["counts"], s["ended"])),
                               args.open_timeout, "opened")
        open_s = time.monotonic() - began
        time.sleep(2)  # let the backlog's buffers go before memory is read
        rss_after = server_rss_kib(server.process.pid)
        still_open = sum(e is None for e in opened["ended"])
        figures["memory"] = {"rss_before_kib": rss_before, "rss_after_kib": rss_after, "open_watchers": still_open,
                             "kib_per_idle_stream": (rss_after - rss_before) / still_open if still_open else None,
                             "open_s": open_s}
        log(f"memory: {figures['memory']}")
        figures["loaded"] = measure(server, probe, keys, args, f"{args.watchers} watchers")

        expected = trickle.stop()
        log(f"trickle: {expected} accepted, {dict(trickle.other)} otherwise, error {trickle.error}")
        watchers.wait(lambda s: all(e is not None or c >= expected for c, e in zip(s["counts"], s["ended"])),
                      args.drain, "drained")
        final = watchers.stop()
        figures["watchers"] = {**watcher_summary(final["counts"], final["ended"], expected),
                               "examples": final["examples"], "trickle_error": trickle.error}
        figures["health_examples"] = probe.stop()
    return figures


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _errors(counts: dict[str, int]) -> str:
    return ", ".join(f"{code} {n}" for code, n in sorted(counts.items())) or "none"


def _failed_checks(phase: dict[str, Any]) -> str:
    health, beside = phase["health"], phase["health_beside_lookups"]
    failed = Counter(health["errors"]) + Counter(beside["errors"])
    return f"{_errors(failed) if failed else 0} of {health['checks'] + beside['checks']}"


def report(figures: dict[str, Any]) -> list[str]:
    """The table and the goals, as printed lines."""
    alone, loaded, w, memory = figures["alone"], figures["loaded"], figures["watchers"], figures["memory"]
    la, ll = alone["lookups"], loaded["lookups"]
    ratio = ll["lookups_per_s"] / la["lookups_per_s"] if la["lookups_per_s"] else None
    health_p99 = [loaded["health"]["p99_ms"], loaded["health_beside_lookups"]["p99_ms"]]
    health_ok = all(p is not None and p < HEALTH_P99_GOAL_MS for p in health_p99) and \
        not loaded["health"]["errors"] and not loaded["health_beside_lookups"]["errors"]
    rows = [
        ("lookups/s", f"{la['lookups_per_s']:.0f}", f"{ll['lookups_per_s']:.0f}",
         f">= {LOOKUP_RATIO_GOAL:.0%} of alone: {'n/a' if ratio is None else f'{ratio:.2f}'}"),
        ("lookup p50 ms", _ms(la["p50_ms"]), _ms(ll["p50_ms"]), ""),
        ("lookup p99 ms", _ms(la["p99_ms"]), _ms(ll["p99_ms"]), ""),
        ("lookup streams failed", _errors(la["failed_streams"]), _errors(ll["failed_streams"]), "none"),
        ("health p50 ms", _ms(alone["health"]["p50_ms"]), _ms(loaded["health"]["p50_ms"]), ""),
        ("health p99 ms", _ms(alone["health"]["p99_ms"]), _ms(loaded["health"]["p99_ms"]), f"< {HEALTH_P99_GOAL_MS:.0f}"),
        ("health p99 ms, lookups on", _ms(alone["health_beside_lookups"]["p99_ms"]),
         _ms(loaded["health_beside_lookups"]["p99_ms"]), f"< {HEALTH_P99_GOAL_MS:.0f}"),
        ("health checks failed", _failed_checks(alone), _failed_checks(loaded), "none"),
        ("health p99 ms, 2 busy cores", _ms(figures["busy_cores"]["p99_ms"]), "", "(no RPCs: the machine's share)"),
        ("server RSS MiB", f"{memory['rss_before_kib'] / 1024:.1f}", f"{memory['rss_after_kib'] / 1024:.1f}", "report"),
    ]
    loaded_title = f"{w['asked']} watchers"
    lines = [f"{'':27} {'alone':>30} {loaded_title:>30}   goal"]
    lines += [f"{name:27} {a:>30} {b:>30}   {goal}" for name, a, b, goal in rows]
    per_stream = memory["kib_per_idle_stream"]
    lines += [
        f"watchers: {w['open']} of {w['asked']} open to the end; ended: {_errors(w['ended'])}",
        f"changes per open watcher: min {w['changes_min']}, median {w['changes_median']:g}, max {w['changes_max']} "
        f"of {w['expected_changes']} logged; {w['complete']} watchers received them all",
        f"memory per idle stream: {'n/a' if per_stream is None else f'{per_stream:.1f} KiB'} "
        f"({memory['open_watchers']} streams open, {memory['open_s']:.1f} s to open them, client process start included)",
    ]
    if la["failed_streams"]:
        lines.append(f"note: {sum(la['failed_streams'].values())} of {la['streams']} lookup streams failed without "
                     "watchers, so lookups alone ran on fewer streams (a thread-pool server's limit: "
                     "--server-arg=--max-workers=N raises it)")
    for source, examples in (("health", figures["health_examples"]), ("lookups", {**la["examples"], **ll["examples"]}),
                             ("watchers", w["examples"])):
        lines += [f"  {source} {code}: {example}" for code, example in examples.items()]
    verdicts = [
        ("health p99 under load < 50 ms, no check refused", health_ok),
        ("lookups under load >= 0.80 of alone", ratio is not None and ratio >= LOOKUP_RATIO_GOAL
         and not ll["failed_streams"]),
        ("every watcher open to the end", w["open"] == w["asked"]),
        ("every watcher received every change", w["complete"] == w["asked"]),
    ]
    lines += [f"goal {'met' if ok else 'NOT met'}: {goal}" for goal, ok in verdicts]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watchers", type=int, default=1000, help="WatchSegment streams held open")
    parser.add_argument("--lookup-streams", type=int, default=100, help="concurrent LookupProfiles streams")
    parser.add_argument("--window", type=int, default=4, help="lookups in flight per lookup stream")
    parser.add_argument("--seconds", type=float, default=15, help="seconds of lookups, alone and under load")
    parser.add_argument("--health-seconds", type=float, default=5, help="seconds of health checks alone")
    parser.add_argument("--health-interval", type=float, default=0.02, help="seconds between two health checks")
    parser.add_argument("--events", type=int, default=3000, help="events of the population ingested first")
    parser.add_argument("--segments", type=int, default=4, help="segments the watchers are spread over")
    parser.add_argument("--trickle", type=float, default=1, help="events a second entering the segments")
    parser.add_argument("--sample", type=int, default=5000, help="identifiers to look up, drawn at random")
    parser.add_argument("--streams-per-channel", type=int, default=100, help="streams sharing one connection")
    parser.add_argument("--open-timeout", type=float, default=60, help="seconds for the watchers to open")
    parser.add_argument("--drain", type=float, default=30, help="seconds for the watchers to get the last changes")
    parser.add_argument("--load-nice", type=int, default=10,
                        help="niceness of the lookup and watcher client processes (0: the server's priority)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="a flag for the server, repeatable: --server-arg=--max-workers=64")
    args = parser.parse_args()
    began = time.monotonic()
    figures = run(args)
    figures["run_s"] = time.monotonic() - began
    for line in report(figures):
        print(line)
    print(f"run took {figures['run_s']:.0f} s; figures saved to {save('streams', figures)}")


if __name__ == "__main__":
    main()
