"""ACCEPTED only after commit: when the commit of an Ingest batch fails, none of its events is
acked ACCEPTED, the stream ends UNAVAILABLE, and every event acked before is in Neo4j.

The fault sits below the graph layer, on the wire: the server's Graph reaches Neo4j through a
proxy that, once told to, cuts the connection of every transaction at its COMMIT. The COMMIT
never reaches Neo4j (the transaction rolls back) and the driver loses its connection while
committing. Only create_server and the gRPC contract are used, so the test holds for any
implementation of the server, threaded or asyncio, sync or async driver.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import grpc
import pytest
from identity.v1 import identity_service_pb2 as pb, identity_service_pb2_grpc
from neo4j import Driver

from server.api.app import create_server
from server.config import Settings
from server.graph import Graph, Neo4jSettings
from tests.integration.support import event

Stub = identity_service_pb2_grpc.IdentityServiceStub

BATCH = 4
# Bolt's COMMIT on the wire: a chunk of two bytes (a struct with no fields, tag 0x12), then the
# end-of-message marker. The driver sends it alone, once the transaction's results are read.
COMMIT = b"\x00\x02\xb0\x12\x00\x00"


class CommitCutter:
    """A TCP proxy in front of Neo4j that, once armed, cuts every connection that sends COMMIT.

    The driver then fails with IncompleteCommit, a ServiceUnavailable it does not retry (a
    commit may or may not have happened), so the failure is immediate, not 30 s of retries.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._armed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.commits_cut = 0
        threading.Thread(target=self._accept, daemon=True, name="commit-cutter").start()

    def cut_commits(self) -> None:
        """From now on every COMMIT cuts its connection instead of reaching Neo4j."""
        self._armed.set()

    def close(self) -> None:
        _shut(self._listener)  # wakes the blocked accept
        with self._lock:
            for sock in self._sockets:
                _shut(sock)

    def _accept(self) -> None:
        while True:
            try:
                driver_side, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                neo4j_side = socket.create_connection(self._upstream, timeout=10)
                neo4j_side.settimeout(None)
            except OSError:
                _shut(driver_side)
                continue
            with self._lock:
                self._sockets += [driver_side, neo4j_side]
            threading.Thread(target=self._pump, args=(driver_side, neo4j_side, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(neo4j_side, driver_side, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_driver: bool) -> None:
        seen = b""  # the last bytes forwarded, for a COMMIT split across two reads
        try:
            while data := source.recv(65536):
                if from_driver and self._armed.is_set() and COMMIT in seen + data:
                    with self._lock:
                        self.commits_cut += 1
                    return
                sink.sendall(data)
                seen = (seen + data)[-(len(COMMIT) - 1):]
        except OSError:
            pass  # the other pump, or close(), shut the connection
        finally:
            _shut(source)
            _shut(sink)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class EventFeed:
    """The request side of an Ingest stream, fed by the test while it reads the acks."""

    def __init__(self) -> None:
        self._events: queue.Queue[pb.Event | None] = queue.Queue()

    def send(self, events: Iterable[pb.Event]) -> None:
        for item in events:
            self._events.put(item)

    def close(self) -> None:
        self._events.put(None)

    def __iter__(self) -> Iterator[pb.Event]:
        while (item := self._events.get()) is not None:
            yield item


@pytest.fixture
def cut_server(settings: Settings, graph: Graph, neo4j_settings: Neo4jSettings) -> Iterator[tuple[Stub, CommitCutter]]:
    """A server whose Graph reaches Neo4j through a CommitCutter, its batches cut by size alone
    (graph is asked for only for the schema it applies)."""
    target = urlsplit(neo4j_settings.uri)
    if target.scheme.endswith(("+s", "+ssc")):
        pytest.skip("the commit cutter reads Bolt in the clear")
    with contextlib.ExitStack() as cleanup:
        cutter = CommitCutter((target.hostname or "127.0.0.1", target.port or 7687))
        cleanup.callback(cutter.close)
        # bolt://, not neo4j://: a routing table would send the driver around the proxy
        cut_graph = cleanup.enter_context(Graph(replace(neo4j_settings, uri=f"bolt://127.0.0.1:{cutter.port}")))
        # a wait far beyond the test, so that only the size cuts batches and their bounds are known
        running = create_server(replace(settings, ingest_batch_size=BATCH, ingest_batch_wait=30.0,
                                        online_linkage=False), cut_graph)
        cleanup.callback(running.stop, grace=5)
        channel = cleanup.enter_context(grpc.insecure_channel(f"127.0.0.1:{running.port}"))
        yield Stub(channel), cutter


def stored(driver: Driver, event_ids: Iterable[str]) -> set[str]:
    records, _, _ = driver.execute_query("MATCH (t:Touchpoint) WHERE t.event_id IN $ids RETURN t.event_id AS id",
                                         ids=list(event_ids))
    return {record["id"] for record in records}


def batch_of(uid: str, numbers: range) -> list[pb.Event]:
    return [event(f"{uid}-e{n}", f"cookie:{uid}-c{n}", minute=n) for n in numbers]


def test_a_batch_whose_commit_fails_is_never_acked_and_the_stream_ends_unavailable(
        cut_server: tuple[Stub, CommitCutter], driver: Driver, uid: str) -> None:
    stub, cutter = cut_server
    committed = batch_of(uid, range(0, BATCH))
    failing = batch_of(uid, range(BATCH, 2 * BATCH))
    later = batch_of(uid, range(2 * BATCH, 3 * BATCH))
    feed = EventFeed()
    acks = stub.Ingest(iter(feed), timeout=60)
    try:
        feed.send(committed)
        for sent in committed:
            ack = next(acks)
            assert (ack.event_id, ack.status) == (sent.event_id, pb.ACK_STATUS_ACCEPTED), ack.reason
            assert stored(driver, [ack.event_id]) == {ack.event_id}, f"{ack.event_id} acked ACCEPTED, not in Neo4j"

        cutter.cut_commits()
        feed.send(failing + later)
        after_fault: list[pb.IngestAck] = []
        with contextlib.suppress(grpc.RpcError):
            after_fault.extend(acks)
    finally:
        feed.close()

    assert after_fault == [], f"acked although no commit succeeded: {[(a.event_id, a.status) for a in after_fault]}"
    assert acks.code() == grpc.StatusCode.UNAVAILABLE, acks.details()
    assert cutter.commits_cut >= 1
    assert stored(driver, (e.event_id for e in committed + failing + later)) == {e.event_id for e in committed}
