"""Serving at scale: open streams hold no thread, so many more streams than the old thread
pool (32) leave health checks, lookups and ingest answered; overload of one method is refused
for that method alone; one poller feeds every watcher of a process."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from identity.v1 import common_pb2, identity_service_pb2 as pb, identity_service_pb2_grpc
from identity.v1 import segment_service_pb2 as seg, segment_service_pb2_grpc
from neo4j import Driver
from support import by_identifier, identifier, ingest, stamp

from server.api.app import RunningServer, create_server
from server.config import Settings
from server.graph import Graph

OLD_THREAD_LIMIT = 32
WATCHERS = 200
WATCH_METHOD = "/identity.v1.SegmentService/WatchSegment"


def member_event(event_id: str, email: str, uid: str) -> pb.Event:
    return pb.Event(event_id=event_id, occurred_at=stamp(datetime.now(UTC)), source="web", type="page_view",
                    channel=common_pb2.CHANNEL_ONLINE, identifiers=[identifier(f"email:{email}")],
                    traits={"scale_run": uid})


@pytest.fixture
def segment(channel: grpc.Channel, driver: Driver, uid: str) -> Iterator[str]:
    """A segment of this test's profiles only, removed afterwards."""
    name = f"scale-{uid}"
    stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
    rule = seg.Rule(trait=seg.TraitCondition(key="scale_run", equals=uid))
    stub.UpsertSegment(seg.UpsertSegmentRequest(name=name, rule=rule), timeout=120)
    yield name
    driver.execute_query("MATCH (s:Segment {name: $name}) OPTIONAL MATCH (s)-[:HAS_VERSION]->(v) DETACH DELETE s, v",
                         name=name)


def open_watchers(channel: grpc.Channel, name: str, count: int) -> list[grpc.Future]:
    """Watch streams started and left open; no client thread reads them."""
    stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
    return [stub.WatchSegment(seg.WatchSegmentRequest(name=name, after_position=0), timeout=120) for _ in range(count)]


def healthy(channel: grpc.Channel) -> bool:
    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return answer.status == health_pb2.HealthCheckResponse.SERVING


class Requests:
    """A LookupProfiles request stream the test writes to: the stream stays open between requests."""

    def __init__(self) -> None:
        self._queue: queue.Queue[pb.LookupRequest | None] = queue.Queue()

    def send(self, request: pb.LookupRequest) -> None:
        self._queue.put(request)

    def close(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[pb.LookupRequest]:
        while (request := self._queue.get()) is not None:
            yield request


def test_more_streams_than_the_old_thread_limit_leave_health_lookups_and_ingest_answered(
        channel: grpc.Channel, identity: identity_service_pb2_grpc.IdentityServiceStub, segment: str,
        grpc_server: RunningServer, uid: str) -> None:
    watchers = open_watchers(channel, segment, WATCHERS)
    feeds = [Requests() for _ in range(OLD_THREAD_LIMIT)]
    lookups = [identity.LookupProfiles(iter(feed), timeout=60) for feed in feeds]
    try:
        for feed in feeds:
            feed.send(pb.LookupRequest(request_id="x", ref=by_identifier(f"email:no-{uid}@x.org")))
        assert all(not next(stream).HasField("profile") for stream in lookups)  # each answered, and still open
        wait_for_open_calls(grpc_server, WATCH_METHOD, WATCHERS)
        wait_for_open_calls(grpc_server, "/identity.v1.IdentityService/LookupProfiles", OLD_THREAD_LIMIT)
        assert healthy(channel)  # with every watcher and lookup stream open
        acks = ingest(identity, [member_event(f"{uid}-{n}", f"{n}-{uid}@example.com", uid) for n in range(3)])
        assert {a.status for a in acks} == {pb.ACK_STATUS_ACCEPTED}
        for feed in feeds:  # the open lookup streams answer again, now finding the new profile
            feed.send(pb.LookupRequest(request_id="y", ref=by_identifier(f"email:0-{uid}@example.com")))
        assert all(next(stream).HasField("profile") for stream in lookups)
        # every watcher gets the three entries, fed by the process's one poller
        for watcher in watchers:
            entered = {next(watcher).profile_id for _ in range(3)}
            assert len(entered) == 3
        assert grpc_server.feed.watchers == WATCHERS
    finally:
        for feed in feeds:
            feed.close()
        for watcher in watchers:
            watcher.cancel()


@pytest.fixture
def limited_server(settings: Settings, graph: Graph) -> Iterator[RunningServer]:
    running = create_server(replace(settings, max_concurrent_rpcs=5, online_linkage=False), graph)
    yield running
    running.stop(grace=1)


def test_a_method_over_its_limit_is_refused_alone_naming_the_limit(limited_server: RunningServer, segment: str,
                                                                   uid: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{limited_server.port}") as channel:
        watchers = open_watchers(channel, segment, 5)
        try:
            wait_for_open_calls(limited_server, WATCH_METHOD, 5)  # the five are in before the sixth asks
            (extra,) = open_watchers(channel, segment, 1)
            with pytest.raises(grpc.RpcError) as refused:
                next(extra)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "SegmentService/WatchSegment" in refused.value.details()
            assert "--max-concurrent-rpcs 5" in refused.value.details()
            # other methods, and health, are not starved by the watchers
            assert healthy(channel)
            identity = identity_service_pb2_grpc.IdentityServiceStub(channel)
            acks = ingest(identity, [member_event(f"{uid}-limit", f"limit-{uid}@example.com", uid)])
            assert acks[0].status == pb.ACK_STATUS_ACCEPTED
        finally:
            for watcher in watchers:
                watcher.cancel()
        # a closed stream frees its place
        wait_for_open_calls(limited_server, WATCH_METHOD, 0)
        again = open_watchers(channel, segment, 1)[0]
        identity_stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
        ingest(identity_stub, [member_event(f"{uid}-limit-2", f"limit2-{uid}@example.com", uid)])
        assert next(again).kind == seg.CHANGE_KIND_ENTER
        again.cancel()


def wait_for_open_calls(running: RunningServer, method: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while running.limits.open[method] != count:
        assert time.monotonic() < deadline, f"{method}: {running.limits.open[method]} calls still open"
        time.sleep(0.02)


def test_stopping_ends_open_watches_at_once_with_unavailable(settings: Settings, graph: Graph, segment: str) -> None:
    """A watch never ends by itself; on SIGTERM its consumer is told to resume elsewhere, and
    the server does not wait out the grace period for it."""
    running = create_server(replace(settings, online_linkage=False), graph)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        watchers = open_watchers(channel, segment, 20)
        wait_for_open_calls(running, WATCH_METHOD, 20)
        began = time.monotonic()
        running.stop(grace=30)
        assert time.monotonic() - began < 10
        for watcher in watchers:
            with pytest.raises(grpc.RpcError) as ended:
                next(watcher)
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "resume after the last position" in ended.value.details()
