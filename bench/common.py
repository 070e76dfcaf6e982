"""What the benchmarks share: their own Neo4j and server processes, memory readings, output."""

from __future__ import annotations

import json
from collections import Counter
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

T = TypeVar("T")
R = TypeVar("R")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(REPO))

from localneo4j import LocalNeo4j  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_threads(work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """Runs work(item) for every item on a thread of its own; the first error is raised after
    all threads end, so none is left running."""
    results: list[R | None] = [None] * len(items)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            results[n] = work(items[n])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(items))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class MemoryWatch:
    """Samples a process tree's resident memory every half second; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak_mb = max(self.peak_mb, self.current_mb())

    def current_mb(self) -> float:
        pids = [self.pid, *children(self.pid)]
        return sum(status_kb(pid, "VmRSS") for pid in pids if Path(f"/proc/{pid}").exists()) / 1024

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    address: str
    credentials: grpc.ChannelCredentials | None = None  # TLS, for a server started with --tls-cert

    def channel(self) -> grpc.Channel:
        # a channel of its own for each stream: several server processes share the port
        options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 64 << 20)]
        if self.credentials is not None:
            return grpc.secure_channel(self.address, self.credentials, options=options)
        return grpc.insecure_channel(self.address, options=options)


@contextmanager
def bench_neo4j(home: Path) -> Iterator[LocalNeo4j]:
    """A Neo4j of the benchmark's own (jars copied from the Maven cache), stopped at the end."""
    neo4j = LocalNeo4j(home=home, bolt_port=free_port(), http_port=free_port())
    began = time.monotonic()
    neo4j.start(timeout=300)
    log(f"bench Neo4j up at {neo4j.uri} (home {home}) in {time.monotonic() - began:.0f} s")
    try:
        yield neo4j
    finally:
        neo4j.stop()


@contextmanager
def bench_server(neo4j: LocalNeo4j, processes: int = 1, server_args: Sequence[str] = (),
                 credentials: grpc.ChannelCredentials | None = None) -> Iterator[Server]:
    """The server on a free port against this Neo4j; server_args are passed on (e.g. --max-workers 64);
    credentials are the clients' TLS, for a server given --tls-cert."""
    port = free_port()
    env = {"IDENTITY_COLLECT_LISTEN": "off", **os.environ, "NEO4J_URI": neo4j.uri, "NEO4J_PASSWORD": neo4j.password}
    process = subprocess.Popen([sys.executable, "-m", "server", "--listen", f"127.0.0.1:{port}", "--log-level",
                                os.environ.get("BENCH_SERVER_LOG_LEVEL", "WARNING"), "--processes", str(processes),
                                *([] if "--http-listen" in server_args else ["--http-listen", "127.0.0.1:0"]),
                                *server_args], cwd=REPO, env=env)
    server = Server(process, f"127.0.0.1:{port}", credentials)
    try:
        _wait_until_serving(server, 120)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=120)


def _wait_until_serving(server: Server, timeout: float) -> None:
    """Waits for SERVING on the health service; fails at once if the process exits first."""
    deadline = time.monotonic() + timeout
    with server.channel() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {server.process.returncode} before serving")
            try:
                stub.Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=2)
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED or time.monotonic() > deadline:
                    raise


def empty_database(neo4j: LocalNeo4j) -> None:
    from neo4j import GraphDatabase

    with GraphDatabase.driver(neo4j.uri, auth=(neo4j.user, neo4j.password)) as driver, driver.session() as session:
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()


def save(name: str, figures: object) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(figures, indent=2, default=str))
    return path


@dataclass
class IngestRun:
    """One ingest through gRPC: its time, its acks by status and the warnings they carried."""

    seconds: float
    statuses: Counter[str]
    warnings: Counter[str]  # by field: identifiers.email, traits.date_of_birth, ...

    def count(self, status: str) -> int:
        return self.statuses.get(f"ACK_STATUS_{status}", 0)


def ingest_windowed(channel: Callable[[], grpc.Channel], streams: Sequence[Sequence[Any]], window: int) -> IngestRun:
    """Ingests the streams through gRPC, one thread and channel per stream, each keeping at most
    `window` unacked events in flight (acks come only once committed). Events need to_proto()."""
    from identity.v1 import identity_service_pb2_grpc

    def acks(opened: grpc.Channel, events: Sequence[Any]) -> Iterator[list[Any]]:
        in_flight = threading.Semaphore(window)

        def requests() -> Iterator[Any]:
            for event in events:
                in_flight.acquire()
                yield event.to_proto()

        for ack in identity_service_pb2_grpc.IdentityServiceStub(opened).Ingest(requests(), timeout=24 * 3600):
            in_flight.release()
            yield [ack]

    return _ingest_streams(channel, streams, acks)


def ingest_batched(channel: Callable[[], grpc.Channel], streams: Sequence[Sequence[Any]], window: int,
                   batch: int = 500) -> IngestRun:
    """As ingest_windowed, through IngestBatches: each stream sends its events in batches of
    `batch`, keeping at most `window` unacked events in flight."""
    from identity.v1 import identity_service_pb2 as pb, identity_service_pb2_grpc

    def acks(opened: grpc.Channel, events: Sequence[Any]) -> Iterator[list[Any]]:
        in_flight = threading.Semaphore(max(window // batch, 1))

        def requests() -> Iterator[Any]:
            for start in range(0, len(events), batch):
                in_flight.acquire()
                yield pb.EventBatch(events=[event.to_proto() for event in events[start:start + batch]])

        for answer in identity_service_pb2_grpc.IdentityServiceStub(opened).IngestBatches(requests(),
                                                                                         timeout=24 * 3600):
            in_flight.release()
            yield list(answer.acks)

    return _ingest_streams(channel, streams, acks)


def _ingest_streams(channel: Callable[[], grpc.Channel], streams: Sequence[Sequence[Any]],
                    acks: Callable[[grpc.Channel, Sequence[Any]], Iterator[list[Any]]]) -> IngestRun:
    """Runs each stream on a thread and channel of its own; acks(channel, events) yields its
    acks as they come, and they are counted by status and by the fields warned about."""
    from identity.v1 import identity_service_pb2 as pb

    statuses: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    lock = threading.Lock()

    def send(events: Sequence[Any]) -> None:
        counted: Counter[str] = Counter()
        warned: Counter[str] = Counter()
        with channel() as opened:
            for answered in acks(opened, events):
                for ack in answered:
                    counted[pb.AckStatus.Name(ack.status)] += 1
                    warned.update(w.field for w in ack.warnings)
        with lock:
            statuses.update(counted)
            warnings.update(warned)

    began = time.monotonic()
    run_threads(send, list(streams))
    return IngestRun(time.monotonic() - began, statuses, warnings)

