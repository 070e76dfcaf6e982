"""Neo4j killed with SIGKILL mid-ingest: nothing acked ACCEPTED is lost, the open streams end
with a clear UNAVAILABLE instead of hanging, and the server serves again once Neo4j is back.

The Neo4j here is a private one (its own home in a temporary folder, its own free ports),
started with the project's launcher, so the Neo4j the other tests share is never touched. The
server is `python -m server` in a process of its own, as operators run it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from identity.v1 import identity_service_pb2 as pb, identity_service_pb2_grpc
from neo4j import GraphDatabase

from localneo4j import DEFAULT_PASSWORD, LocalNeo4j
from localneo4j.launcher import ENTRY_POINT, POM
from server.graph import Neo4jSettings
from tests.integration.support import event
from tests.integration.test_server_process import REPO, Feed, free_port, server_env, wait_serving

Stub = identity_service_pb2_grpc.IdentityServiceStub

STREAMS = 2
COMMITTED_BEFORE_KILL = 200  # acks per stream before the kill
IN_FLIGHT = 100  # events per stream sent and not acked yet, at any moment until the kill
# the server's driver retries a transaction for RETRY_SECONDS (--neo4j-retry-seconds) before it gives up
RETRY_SECONDS = 5
STREAM_END_DEADLINE = 60.0
HTTP_PORT = free_port()  # the server's operator port: /readyz and /metrics while Neo4j is down
START_TIMEOUT = 240.0  # Neo4j start on a loaded 2-core machine; about 15 s when idle
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


class AckReader:
    """One Ingest stream: the test sends events on it, a thread of its own reads every ack
    until the stream ends, and keeps how it ended."""

    def __init__(self, stub: Stub, timeout: float) -> None:
        self.feed = Feed()
        self.acks: list[pb.IngestAck] = []
        self.sent = 0
        self.error: grpc.RpcError | None = None
        self.ended_at: float | None = None
        self._call = stub.Ingest(iter(self.feed), timeout=timeout)
        self._thread = threading.Thread(target=self._read, daemon=True, name="ack-reader")
        self._thread.start()

    def _read(self) -> None:
        try:
            for ack in self._call:
                self.acks.append(ack)
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()

    def keep_ahead(self, events: list[pb.Event]) -> None:
        """Sends more events; the caller keeps a window of them unacked, so acks keep flowing."""
        assert self.ended_at is None, f"the stream ended before the kill: {self.error}"
        for item in events:
            self.feed.send(item)
        self.sent += len(events)

    def join(self, deadline: float) -> bool:
        """True once the stream has ended; False if it is still open at the deadline."""
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    def ending(self, since: float) -> tuple[grpc.StatusCode, str, float]:
        """How the stream ended: its status, details and seconds after since."""
        if self.error is None:
            return grpc.StatusCode.OK, "", round((self.ended_at or since) - since, 1)
        return self.error.code(), self.error.details() or "", round((self.ended_at or since) - since, 1)

    def close(self) -> None:
        self.feed.close()
        self._call.cancel()


def cookie_events(uid: str, stream: int, numbers: range) -> list[pb.Event]:
    """Events with ids unique to this test, each carrying a cookie of its own."""
    return [event(f"{uid}-{stream}-{n}", f"cookie:ck-{uid}-{stream}-{n}", minute=n % 1000) for n in numbers]


def cookie_of(event_id: str) -> str:
    return f"ck-{event_id}"


def reuse_cached_jars(neo4j: LocalNeo4j) -> None:
    """Links the jars of the repository's Neo4j into a fresh home when they match the pom, so
    the launcher's fetch finds them current instead of copying 140 MB with Maven."""
    cached = LocalNeo4j().home
    stamp = cached / "lib" / ".pom-sha256"
    if not stamp.exists() or stamp.read_text().strip() != hashlib.sha256(POM.read_bytes()).hexdigest():
        return  # the launcher fetches them itself
    for folder in ("lib", "plugins"):
        (neo4j.home / folder).mkdir(parents=True)
        for jar in (cached / folder).glob("*.jar"):
            (neo4j.home / folder / jar.name).symlink_to(jar.resolve())
    shutil.copy(stamp, neo4j.lib / ".pom-sha256")


def kill_jvm(neo4j: LocalNeo4j) -> None:
    """SIGKILL to the Neo4j JVM itself, after checking that the pid is that of this private one."""
    pid = neo4j.pid()
    assert pid is not None, "the private Neo4j is not running"
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert ENTRY_POINT in argv and f"--home-dir={neo4j.home.resolve()}" in argv, f"pid {pid} is not our JVM: {argv}"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while neo4j.pid() is not None:  # pid() reaps the JVM, a child of this process
        assert time.monotonic() < deadline, f"Neo4j (pid {pid}) outlived SIGKILL"
        time.sleep(0.05)


@pytest.fixture
def private_neo4j() -> Iterator[LocalNeo4j]:
    """A Neo4j of this test's own, stopped and deleted at the end, whatever happened."""
    home = Path(tempfile.mkdtemp(prefix="neo4j-killed-"))
    neo4j = LocalNeo4j(home=home, password=DEFAULT_PASSWORD, bolt_port=free_port(), http_port=free_port(),
                       heap="512m", pagecache="128m")
    try:
        reuse_cached_jars(neo4j)
        neo4j.start(timeout=START_TIMEOUT)
        yield neo4j
    finally:
        neo4j.stop(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def server_log(tmp_path: Path) -> Path:
    return tmp_path / "server.log"


@pytest.fixture
def server(private_neo4j: LocalNeo4j, server_log: Path) -> Iterator[tuple[subprocess.Popen[bytes], grpc.Channel]]:
    """`python -m server` against the private Neo4j, its output in server_log, and a channel
    to it once it serves; killed at the end."""
    settings = Neo4jSettings(private_neo4j.uri, private_neo4j.user, private_neo4j.password, "neo4j")
    port = free_port()
    with open(server_log, "wb") as log:
        # writes give up on an unreachable Neo4j after RETRY_SECONDS rather than the default 30
        proc = subprocess.Popen([sys.executable, "-m", "server", "--listen", f"127.0.0.1:{port}",
                                 "--http-listen", f"127.0.0.1:{HTTP_PORT}",
                                 "--neo4j-retry-seconds", str(RETRY_SECONDS)], cwd=REPO,
                                env=server_env(settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        with wait_serving(port, timeout=120) as channel:
            yield proc, channel
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def stored_with_identifier(neo4j: LocalNeo4j, event_ids: list[str]) -> set[str]:
    """The events stored as a Touchpoint that CARRIED its own cookie, read with a plain driver."""
    with GraphDatabase.driver(neo4j.uri, auth=(neo4j.user, neo4j.password)) as driver:
        records, _, _ = driver.execute_query(
            "UNWIND $rows AS row "
            "MATCH (:Touchpoint {event_id: row.id})-[:CARRIED]->(:Identifier {type: 'cookie', value: row.cookie}) "
            "RETURN DISTINCT row.id AS id",
            rows=[{"id": event_id, "cookie": cookie_of(event_id)} for event_id in event_ids])
    return {record["id"] for record in records}


def ingest_when_back(stub: Stub, item: pb.Event, deadline: float) -> tuple[pb.IngestAck, list[str]]:
    """One event on a fresh stream, retried while the server still finds Neo4j unavailable;
    the ack, and the refusals before it."""
    refusals: list[str] = []
    while True:
        try:
            (ack,) = stub.Ingest(iter([item]), timeout=max(1.0, deadline - time.monotonic()))
            return ack, refusals
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            refusals.append(f"{exc.code().name}: {exc.details()}")
            time.sleep(1)


def test_neo4j_killed_mid_ingest_loses_no_acked_event_and_the_server_serves_again(
        private_neo4j: LocalNeo4j, server: tuple[subprocess.Popen[bytes], grpc.Channel], server_log: Path,
        uid: str) -> None:
    """SIGKILL of the Neo4j JVM while two Ingest streams have events in flight: both streams end
    UNAVAILABLE within the driver's retry time, every event acked ACCEPTED is in the store once
    Neo4j has recovered it, and the same server process accepts events again."""
    proc, channel = server
    stub = Stub(channel)
    readers = [AckReader(stub, timeout=STREAM_END_DEADLINE + START_TIMEOUT) for _ in range(STREAMS)]
    try:
        began = time.monotonic()
        while any(len(reader.acks) < COMMITTED_BEFORE_KILL for reader in readers):
            assert time.monotonic() < began + 60, f"acks so far: {[len(reader.acks) for reader in readers]}"
            for n, reader in enumerate(readers):
                reader.keep_ahead(cookie_events(uid, n, range(reader.sent, len(reader.acks) + IN_FLIGHT)))
            time.sleep(0.01)
        kill_jvm(private_neo4j)  # acks are coming in and IN_FLIGHT events per stream are not acked yet
        killed_at = time.monotonic()
        print(f"\nkilled Neo4j {killed_at - began:.1f} s after the first event")
        for n, reader in enumerate(readers):  # a stream whose events were all acked just before the kill
            if reader.ended_at is None:
                reader.keep_ahead(cookie_events(uid, n, range(reader.sent, reader.sent + 10)))  # must write again
        hung = [n for n, reader in enumerate(readers) if not reader.join(killed_at + STREAM_END_DEADLINE)]
        assert not hung, f"streams {hung} still open {STREAM_END_DEADLINE:g} s after Neo4j died"
        # Neo4j is still down: health answers at once, and says NOT_SERVING; /readyz says why
        health = eventually_health(channel, health_pb2.HealthCheckResponse.NOT_SERVING)
        readyz = http_get("/readyz")
        assert readyz[0] == 503 and "Neo4j" in readyz[1], readyz
        assert "identity_neo4j_up 0.0" in http_get("/metrics")[1]
    finally:
        for reader in readers:
            reader.close()
    endings = [reader.ending(killed_at) for reader in readers]
    print(f"streams ended (code, details, s after the kill): {endings}; acks per stream: "
          f"{[len(reader.acks) for reader in readers]} of {[reader.sent for reader in readers]} sent; "
          f"health while Neo4j was down: {health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}")
    for code, details, _ in endings:
        assert code == grpc.StatusCode.UNAVAILABLE and "Neo4j" in details, (code, details)

    acked = [ack for reader in readers for ack in reader.acks]
    assert {ack.status for ack in acked} == {pb.ACK_STATUS_ACCEPTED}
    accepted = [ack.event_id for ack in acked]
    assert len(set(accepted)) == len(accepted) >= STREAMS * COMMITTED_BEFORE_KILL
    assert len(accepted) < sum(reader.sent for reader in readers), "the kill came after every event was acked"

    began = time.monotonic()
    assert private_neo4j.start(timeout=START_TIMEOUT) is True
    print(f"Neo4j restarted on the same store in {time.monotonic() - began:.1f} s")
    sent = [f"{uid}-{n}-{k}" for n, reader in enumerate(readers) for k in range(reader.sent)]
    stored = stored_with_identifier(private_neo4j, sent)
    print(f"stored: {len(stored)} of {len(sent)} sent, {len(accepted)} acked")  # committed, never acked: resent
    missing = set(accepted) - stored
    assert not missing, f"{len(missing)} of {len(accepted)} events acked ACCEPTED are not stored: {sorted(missing)[:9]}"

    eventually_health(channel, health_pb2.HealthCheckResponse.SERVING)  # ready again once Neo4j answers
    assert http_get("/readyz")[0] == 200
    began = time.monotonic()
    ack, refusals = ingest_when_back(stub, event(f"{uid}-after", f"cookie:ck-{uid}-after"), deadline=began + 60)
    print(f"first event after the restart acked in {time.monotonic() - began:.1f} s, after refusals {refusals}")
    assert (ack.event_id, ack.status) == (f"{uid}-after", pb.ACK_STATUS_ACCEPTED)
    assert stored_with_identifier(private_neo4j, [f"{uid}-after"]) == {f"{uid}-after"}

    assert proc.poll() is None, "the server exited while Neo4j was down"
    crashes = [record for record in log_records(server_log) if "Traceback" in record and not retried_outage(record)]
    assert not crashes, "\n".join(crashes)


def eventually_health(channel: grpc.Channel, status: int, within: float = 15) -> health_pb2.HealthCheckResponse:
    """The health answer once it says status (the readiness probe runs every second)."""
    deadline = time.monotonic() + within
    while True:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        if health.status == status or time.monotonic() > deadline:
            assert health.status == status, health
            return health
        time.sleep(0.2)


def http_get(path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def log_records(path: Path) -> list[str]:
    """The server's log split into records: a record is its line with a time stamp and the
    lines after it (a traceback) up to the next."""
    records: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        if LOG_RECORD.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return records


def retried_outage(record: str) -> bool:
    """A background worker's report that Neo4j was unavailable and that it will try again:
    handled, not a crash (the worker logs it with its traceback)."""
    header, *_ = record.splitlines()
    last_traceback = record.rsplit("Traceback (most recent call last):", 1)[1].splitlines()[1:]
    raised = next((line for line in last_traceback if not line.startswith(" ")), "")
    return header.endswith("; retrying") and raised.startswith("server.errors.StorageUnavailable: ")
