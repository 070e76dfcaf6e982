"""`python -m server` as operators run it: start-up errors, health, SIGTERM draining."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from identity.v1 import common_pb2, identity_service_pb2 as pb, identity_service_pb2_grpc

from server.graph import Neo4jSettings

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(neo4j: Neo4jSettings, **overrides: str) -> dict[str, str]:
    # no collector unless a test asks for one: servers of one test must not contend for its port
    env = {**os.environ, "NEO4J_URI": neo4j.uri, "NEO4J_USER": neo4j.user, "NEO4J_PASSWORD": neo4j.password,
           "NEO4J_DATABASE": neo4j.database, "IDENTITY_COLLECT_LISTEN": "off"}
    return {**env, **overrides}


def start_server(env: dict[str, str], port: int, *flags: str) -> subprocess.Popen[str]:
    """In a session of its own, so that kill_all reaches the processes --processes starts too."""
    return subprocess.Popen([sys.executable, "-m", "server", "--listen", f"127.0.0.1:{port}", *flags],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def kill_all(proc: subprocess.Popen[str]) -> None:
    """SIGKILL to the server and every process it started: a test that failed leaves none behind."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def wait_serving(port: int, timeout: float = 60) -> grpc.Channel:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    health = health_pb2_grpc.HealthStub(channel)
    while time.monotonic() < deadline:
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING:
                return channel
        except grpc.RpcError:
            pass  # not listening yet
        time.sleep(0.2)
    raise AssertionError(f"server on {port} did not report SERVING within {timeout} s")


def test_wrong_password_gives_a_clear_start_up_error(neo4j_settings: Neo4jSettings) -> None:
    env = server_env(neo4j_settings, NEO4J_PASSWORD="certainly-not-the-password")
    done = subprocess.run([sys.executable, "-m", "server", "--listen", "127.0.0.1:0"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "rejected user 'neo4j'" in done.stderr and "NEO4J_PASSWORD" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_neo4j_gives_a_clear_start_up_error(neo4j_settings: Neo4jSettings) -> None:
    env = server_env(neo4j_settings, NEO4J_URI=f"bolt://127.0.0.1:{free_port()}")
    done = subprocess.run([sys.executable, "-m", "server", "--listen", "127.0.0.1:0"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "is not reachable" in done.stderr


def test_bad_flag_value_is_refused_before_connecting() -> None:
    done = subprocess.run([sys.executable, "-m", "server", "--neo4j-uri", "http://localhost:7474"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "must start with bolt:// or neo4j://" in done.stderr


class Feed:
    """An Ingest request stream the test writes to: each event goes when the test sends it, so
    that the stream is provably open at every step, with no pacing by the clock."""

    def __init__(self) -> None:
        self._events: queue.Queue[pb.Event | None] = queue.Queue()

    def send(self, event: pb.Event) -> None:
        self._events.put(event)

    def close(self) -> None:
        self._events.put(None)

    def __iter__(self) -> Iterator[pb.Event]:
        while (event := self._events.get()) is not None:
            yield event


def cookie_event(uid: str, n: int) -> pb.Event:
    return pb.Event(event_id=f"{uid}-{n}", type="page_view", source="web",
                    identifiers=[common_pb2.Identifier(type="cookie", value=f"ck-{uid}")])


def open_ingest(channel: grpc.Channel, uid: str) -> tuple[Feed, Iterator[pb.IngestAck]]:
    """An Ingest stream left open after its first event is acked: what a drain must wait for."""
    feed = Feed()
    acks = identity_service_pb2_grpc.IdentityServiceStub(channel).Ingest(iter(feed), timeout=120)
    feed.send(cookie_event(uid, 0))
    assert next(acks).status == pb.ACK_STATUS_ACCEPTED
    return feed, acks


def finish_drain(feed: Feed, acks: Iterator[pb.IngestAck], proc: subprocess.Popen[str], uid: str) -> None:
    """The draining server still serves the open stream; once it ends, the process exits 0."""
    feed.send(cookie_event(uid, 1))
    feed.close()
    assert [a.status for a in acks] == [pb.ACK_STATUS_ACCEPTED]
    assert proc.wait(timeout=60) == 0


def watch_health(channel: grpc.Channel) -> tuple[grpc.Future, Iterator[int]]:
    """Health.Watch of the whole server: the call (to cancel) and its statuses as they change."""
    call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=120)
    return call, (answer.status for answer in call)


def test_sigterm_drains_an_open_ingest_stream_then_exits(neo4j_settings: Neo4jSettings, uid: str) -> None:
    """Events sent on an open stream after draining began are still accepted; then the process exits 0."""
    port = free_port()
    proc = start_server(server_env(neo4j_settings), port, "--shutdown-grace", "60")
    try:
        channel = wait_serving(port)
        watch, statuses = watch_health(channel)
        assert next(statuses) == health_pb2.HealthCheckResponse.SERVING
        feed = Feed()
        acks = identity_service_pb2_grpc.IdentityServiceStub(channel).Ingest(iter(feed), timeout=120)
        feed.send(cookie_event(uid, 0))
        first = next(acks)
        proc.send_signal(signal.SIGTERM)
        assert next(statuses) == health_pb2.HealthCheckResponse.NOT_SERVING  # draining has begun
        watch.cancel()
        for n in range(1, 6):
            feed.send(cookie_event(uid, n))
        feed.close()
        assert [(a.event_id, a.status) for a in [first, *acks]] == [
            (f"{uid}-{n}", pb.ACK_STATUS_ACCEPTED) for n in range(6)]
        assert proc.wait(timeout=60) == 0
        output = proc.stdout.read() if proc.stdout else ""
        assert "draining" in output and "stopped" in output
    finally:
        kill_all(proc)


def test_a_burst_of_sigterm_and_sigint_during_a_drain_still_stops_the_server(neo4j_settings: Neo4jSettings,
                                                                             uid: str) -> None:
    """However many signals arrive, and whenever (also inside the handling of an earlier one),
    the server drains and exits: a handler that takes a lock can deadlock on its own thread."""
    port = free_port()
    proc = start_server(server_env(neo4j_settings), port, "--shutdown-grace", "60")
    try:
        channel = wait_serving(port)
        feed, acks = open_ingest(channel, uid)
        for n in range(2000):  # as fast as they go: many land while an earlier one is handled
            proc.send_signal(signal.SIGTERM if n % 2 else signal.SIGINT)
        finish_drain(feed, acks, proc, uid)
    finally:
        kill_all(proc)


def test_health_reports_not_serving_while_draining(neo4j_settings: Neo4jSettings, uid: str) -> None:
    """While an ingest stream is kept open, health says NOT_SERVING to a watcher, and a new
    caller is told NOT_SERVING or refused: a balancer sends no more work."""
    port = free_port()
    proc = start_server(server_env(neo4j_settings), port, "--shutdown-grace", "60")
    try:
        channel = wait_serving(port)
        watch, statuses = watch_health(channel)
        assert next(statuses) == health_pb2.HealthCheckResponse.SERVING
        feed, acks = open_ingest(channel, uid)
        proc.send_signal(signal.SIGTERM)
        assert next(statuses) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert proc.poll() is None, "the server drains the open stream before it exits"
        watch.cancel()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as newcomer:
            try:
                answer = health_pb2_grpc.HealthStub(newcomer).Check(health_pb2.HealthCheckRequest(), timeout=30)
            except grpc.RpcError as refused:  # a server that stopped accepting cancels new calls
                assert refused.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE), refused
            else:
                assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        finish_drain(feed, acks, proc, uid)
    finally:
        kill_all(proc)


def accepted_by_processes(http: int, processes: int) -> float | None:
    """The events all processes counted as accepted; None while one does not answer yet."""
    acked = 0.0
    for k in range(processes):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http + k}/metrics", timeout=10) as answer:
                acked += sum(float(line.rsplit(" ", 1)[1]) for line in answer.read().decode().splitlines()
                             if line.startswith("identity_ingest_events_total{") and 'status="ACCEPTED"' in line)
        except OSError:
            return None
    return acked


def test_several_processes_share_the_port_and_stop_together(neo4j_settings: Neo4jSettings, uid: str) -> None:
    port, http = free_port(), free_port()
    proc = start_server(server_env(neo4j_settings), port, "--processes", "2", "--http-listen", f"127.0.0.1:{http}")
    try:
        channels = [wait_serving(port) for _ in range(4)]  # separate connections, spread by the kernel
        for n, channel in enumerate(channels):
            stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
            (ack,) = stub.Ingest(iter([pb.Event(event_id=f"{uid}-{n}", type="page_view", identifiers=[
                common_pb2.Identifier(type="cookie", value=f"ck-{uid}")])]), timeout=30)
            assert ack.status == pb.ACK_STATUS_ACCEPTED
        # each process serves its own metrics, process k on the HTTP port + k: together they count every
        # ack (a process that is still starting on a loaded machine may not listen yet: asked again)
        deadline = time.monotonic() + 60
        while (acked := accepted_by_processes(http, 2)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert acked == 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        output = proc.stdout.read() if proc.stdout else ""
        assert "2 server processes started" in output
        assert output.count("serving gRPC on") == 2
    finally:
        kill_all(proc)


def test_several_processes_need_a_fixed_port() -> None:
    done = subprocess.run([sys.executable, "-m", "server", "--listen", "127.0.0.1:0", "--processes", "2"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "needs a fixed port" in done.stderr


def test_a_server_killed_mid_ingest_loses_no_acked_event(neo4j_settings: Neo4jSettings, driver, uid: str) -> None:
    """SIGKILL (no draining) while a stream has events in flight: every event acked ACCEPTED is
    in Neo4j, since an ack is sent only after its transaction committed; the rest may be lost
    (the client resends them, and event ids make that idempotent)."""
    port = free_port()
    proc = start_server(server_env(neo4j_settings), port)
    try:
        channel = wait_serving(port)
        feed = Feed()
        acks = identity_service_pb2_grpc.IdentityServiceStub(channel).Ingest(iter(feed), timeout=120)
        for n in range(200):
            feed.send(cookie_event(uid, n))
        acked = [next(acks) for _ in range(50)]  # some committed, many still in flight
        for n in range(200, 400):
            feed.send(cookie_event(uid, n))
        proc.kill()
        proc.wait(timeout=30)
        try:
            acked += list(acks)
        except grpc.RpcError:
            pass  # the stream died with the process: what it acked before that is what counts
        accepted = {a.event_id for a in acked if a.status == pb.ACK_STATUS_ACCEPTED}
        assert len(accepted) >= 50
        records, _, _ = driver.execute_query(
            "UNWIND $ids AS id MATCH (t:Touchpoint {event_id: id}) RETURN count(t) AS stored", ids=sorted(accepted))
        assert records[0]["stored"] == len(accepted)
    finally:
        kill_all(proc)
