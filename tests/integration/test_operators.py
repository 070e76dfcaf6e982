"""What operators see of a running server, on its HTTP port: Prometheus metrics that move with
the work, liveness and readiness; and gRPC health that reports NOT_SERVING while Neo4j does
not answer."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from identity.v1 import identity_service_pb2 as pb
from support import by_identifier, event, ingest, lookup

from server.api.app import RunningServer, create_server
from server.config import Settings
from server.graph import Graph, Neo4jSettings
from tests.integration.test_server_process import free_port


def get(server: RunningServer, path: str) -> tuple[int, str, dict[str, str]]:
    assert server.http is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.http.port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus exposition (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$", re.M)
    for found, value in pattern.findall(text):
        if ",".join(sorted(found.split(","))) == wanted or (not wanted and not found):
            return float(value)
    return 0.0


def test_the_change_feeds_replay_budget_is_exported(grpc_server: RunningServer, settings: Settings) -> None:
    """The server's own pacer, not a stand-in: a rate between its floor and --replay-rate, and
    no catch-up waiting while nobody replays."""
    _, text, _ = get(grpc_server, "/metrics")
    rate = sample(text, "identity_segment_replay_rate")
    assert settings.replay_rate * 0.02 <= rate <= settings.replay_rate
    assert "identity_segment_replay_waiting 0.0" in text


def test_metrics_move_with_ingest_and_lookups(grpc_server: RunningServer, identity, uid: str) -> None:
    status, before, headers = get(grpc_server, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    events = [event(f"{uid}-{n}", f"cookie:c-{uid}-{n}", f"email:{uid}-{n}@example.com") for n in range(20)]
    acks = ingest(identity, [*events, event(f"{uid}-bad", type="")])  # one rejected: no identifier, no type
    assert [a.status for a in acks].count(pb.ACK_STATUS_ACCEPTED) == 20
    lookup(identity, *[by_identifier(f"cookie:c-{uid}-{n}") for n in range(5)], by_identifier(f"cookie:none-{uid}"))
    _, after, _ = get(grpc_server, "/metrics")
    accepted = ("identity_ingest_events_total", {"status": "ACCEPTED", "reason": ""})
    assert sample(after, accepted[0], **accepted[1]) - sample(before, accepted[0], **accepted[1]) == 20
    no_type = ("identity_ingest_events_total", {"status": "REJECTED", "reason": "no_type"})
    assert sample(after, no_type[0], **no_type[1]) - sample(before, no_type[0], **no_type[1]) == 1, \
        "this test's rejection, counted by its reason code"
    assert sample(after, "identity_ingest_batch_events_count") > sample(before, "identity_ingest_batch_events_count")
    assert sample(after, "identity_ingest_commit_seconds_count") > sample(before, "identity_ingest_commit_seconds_count")
    assert sample(after, "identity_lookup_seconds_count") - sample(before, "identity_lookup_seconds_count") == 6
    assert sample(after, "identity_lookups_total", result="not_found") - sample(before, "identity_lookups_total",
                                                                               result="not_found") == 1
    for query in ("ingest/record_touchpoints", "stitching/write_plan", "profiles/lookup"):  # Neo4j's time, by query
        assert sample(after, "identity_neo4j_query_seconds_count", query=query) > \
            sample(before, "identity_neo4j_query_seconds_count", query=query), query
        assert sample(after, "identity_neo4j_query_seconds_sum", query=query) > 0, query
    for gauge in ("identity_neo4j_up", "identity_neo4j_sessions_in_use", "identity_linkage_queue",
                  "identity_linkage_oldest_wait_seconds", "identity_segment_queue",
                  "identity_segment_oldest_wait_seconds", "identity_linkage_probabilistic_on"):
        assert re.search(rf"^{gauge} ", after, re.M), gauge
    assert sample(after, "identity_neo4j_up") == 1


def test_open_streams_are_counted_per_method(grpc_server: RunningServer, channel: grpc.Channel, uid: str) -> None:
    from identity.v1 import segment_service_pb2 as seg, segment_service_pb2_grpc

    segments = segment_service_pb2_grpc.SegmentServiceStub(channel)
    name = f"ops-{uid}"
    segments.UpsertSegment(seg.UpsertSegmentRequest(
        name=name, rule=seg.Rule(identifier=seg.IdentifierCondition(has_type="crm_id"))), timeout=60)
    watch = segments.WatchSegment(seg.WatchSegmentRequest(name=name), timeout=60)
    try:
        deadline = time.monotonic() + 10
        while sample(get(grpc_server, "/metrics")[1], "identity_open_calls",
                     method="identity.v1.SegmentService/WatchSegment") < 1:
            assert time.monotonic() < deadline, "the open watch is not counted"
            time.sleep(0.1)
    finally:
        watch.cancel()


def test_liveness_and_readiness_answer_while_neo4j_does(grpc_server: RunningServer) -> None:
    assert get(grpc_server, "/healthz")[:2] == (200, "ok\n")
    status, body, _ = get(grpc_server, "/readyz")  # then notes that do not change the status (linkage on or off)
    assert status == 200 and body.startswith("ready\n")
    assert get(grpc_server, "/nothing")[0] == 404
    assert grpc_server.http is not None  # monitors that probe with HEAD get the status, no body
    head = urllib.request.Request(f"http://127.0.0.1:{grpc_server.http.port}/readyz", method="HEAD")
    with urllib.request.urlopen(head, timeout=10) as answer:
        assert answer.status == 200 and answer.read() == b""


def test_a_server_whose_neo4j_does_not_answer_is_not_serving(settings: Settings, graph: Graph) -> None:
    """The readiness probe finds Neo4j unreachable: gRPC health says NOT_SERVING, /readyz 503."""
    unreachable = Neo4jSettings(f"bolt://127.0.0.1:{free_port()}", "neo4j", "unused", "neo4j", retry_seconds=1)
    with Graph(unreachable) as nowhere:
        running = create_server(replace(settings, online_linkage=False), nowhere)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                deadline = time.monotonic() + 15
                while health.Check(health_pb2.HealthCheckRequest(), timeout=5).status != \
                        health_pb2.HealthCheckResponse.NOT_SERVING:
                    assert time.monotonic() < deadline, "still SERVING with Neo4j unreachable"
                    time.sleep(0.2)
            status, body, _ = get(running, "/readyz")
            assert status == 503 and "Neo4j does not answer" in body
            assert sample(get(running, "/metrics")[1], "identity_neo4j_up") == 0
        finally:
            running.stop(grace=1)


def test_ingest_labels_identifiers_by_type_and_flagged_ones(identity, driver, uid: str) -> None:
    """Neo4j Browser styles by label: ingest writes :Email, :Cookie ... beside :Identifier, and
    :Flagged with a flag (here a family tablet seen with three people's e-mails: shared)."""
    tablet = f"device_id:tab-{uid}"
    ingest(identity, [event(f"{uid}-1", f"cookie:c-{uid}", f"email:{uid}@example.com", f"user_id:u-{uid}"),
                      *[event(f"{uid}-t{n}", tablet, f"email:{uid}-{n}@example.com", minute=n) for n in range(3)]])
    records, _, _ = driver.execute_query(
        "MATCH (i:Identifier) WHERE i.value IN $values "
        "RETURN i.type AS type, i.flag AS flag, [l IN labels(i) WHERE l <> 'Identifier'] AS labels",
        values=[f"c-{uid}", f"{uid}@example.com", f"u-{uid}", f"tab-{uid}"])
    labels = {(r["type"], r["flag"], tuple(sorted(r["labels"]))) for r in records}
    assert labels == {("cookie", None, ("Cookie",)), ("email", None, ("Email",)), ("user_id", None, ("UserId",)),
                      ("device_id", "shared", ("DeviceId", "Flagged"))}
    # and a profile carries its size, which Browser captions it with
    (size,) = driver.execute_query("MATCH (:Identifier {type: 'cookie', value: $v})-[:BELONGS_TO]->(p) RETURN p.size AS n",
                                   v=f"c-{uid}").records
    assert size["n"] == 3


def test_the_backfill_labels_identifiers_written_before_labels(identity, driver, graph: Graph, uid: str) -> None:
    from server.backfill import label_identifiers

    ingest(identity, [event(f"{uid}-1", f"cookie:old-{uid}", f"email:old-{uid}@example.com")])
    driver.execute_query("MATCH (i:Identifier) WHERE i.value IN $values REMOVE i:Cookie, i:Email",
                         values=[f"old-{uid}", f"old-{uid}@example.com"])  # as an older version wrote them
    assert label_identifiers(graph) >= 2
    records, _, _ = driver.execute_query(
        "MATCH (i:Identifier) WHERE i.value IN $values RETURN i.type AS type, labels(i) AS labels",
        values=[f"old-{uid}", f"old-{uid}@example.com"])
    assert {r["type"]: sorted(r["labels"]) for r in records} == {"cookie": ["Cookie", "Identifier"],
                                                                 "email": ["Email", "Identifier"]}
    assert label_identifiers(graph) == 0, "a second run has nothing left to do"


def test_a_taken_http_port_stops_the_start_with_its_flag_named(settings: Settings, graph: Graph) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            create_server(replace(settings, http_listen=f"127.0.0.1:{port}"), graph)
        except OSError as exc:
            assert f"cannot listen on 127.0.0.1:{port} for HTTP (--http-listen)" in str(exc)
        else:
            raise AssertionError("the server started on a taken HTTP port")


@pytest.mark.parametrize(("port_of", "message"), [
    (lambda running: {"listen": f"127.0.0.1:{running.port}"}, "cannot listen on"),
    (lambda running: {"collect_listen": f"127.0.0.1:{running.collect_port}"}, r"for the collector \(--collect-listen\)"),
], ids=["grpc", "collector"])
def test_a_second_server_on_a_taken_port_stops_instead_of_sharing_it(
        grpc_server: RunningServer, settings: Settings, graph: Graph, port_of: Any, message: str) -> None:
    """SO_REUSEPORT is for --processes only: a server started by mistake on a taken port must
    not quietly take half of another's calls."""
    with pytest.raises(OSError, match=message):
        create_server(replace(settings, **port_of(grpc_server)), graph)


def test_only_the_browser_assets_carry_cors_and_a_silent_connection_is_dropped(grpc_server: RunningServer) -> None:
    """/metrics and the probes are for Prometheus and orchestrators, never for a web page of
    another origin; a client that opens a connection and sends nothing holds no thread for long."""
    import socket

    from server.api.operator_http import REQUEST_TIMEOUT_S
    from server.operators.browser import STYLE_PATH

    assert grpc_server.http is not None
    for path in ("/metrics", "/readyz", "/healthz"):
        assert "Access-Control-Allow-Origin" not in get(grpc_server, path)[2], path
    assert get(grpc_server, STYLE_PATH)[2]["Access-Control-Allow-Origin"] == "*"
    base = f"http://127.0.0.1:{grpc_server.http.port}"
    preflight = urllib.request.Request(base + "/metrics", method="OPTIONS", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(preflight, timeout=10)
    assert refused.value.code == 404 and "Access-Control-Allow-Origin" not in refused.value.headers
    assert REQUEST_TIMEOUT_S <= 10
    with socket.create_connection(("127.0.0.1", grpc_server.http.port)) as silent:
        silent.settimeout(REQUEST_TIMEOUT_S + 10)
        began = time.monotonic()
        assert silent.recv(1) == b""  # the server closed it
        assert time.monotonic() - began < REQUEST_TIMEOUT_S + 5


def test_slow_importers_never_hold_the_threads_admin_calls_need(grpc_server: RunningServer, channel: grpc.Channel,
                                                                uid: str) -> None:
    """Imports have a pool of their own and a limit of as many open calls: importers that wait
    on their clients leave ForgetProfile its threads, and one import too many is refused
    RESOURCE_EXHAUSTED naming the limit rather than queued unseen."""
    import queue
    import threading

    from identity.v1 import identity_service_pb2_grpc

    identity = identity_service_pb2_grpc.IdentityServiceStub(channel)
    importers = grpc_server.pools.imports.threads
    stops: list[queue.Queue[None]] = []
    calls = []

    def slow_records(n: int, stop: queue.Queue[None]) -> Any:
        yield pb.SourceRecord(record_id=f"{uid}-{n}", source="crm", traits={"given_name": "ann"})
        stop.get()  # the importer's client goes quiet, its call open

    for n in range(importers):
        stop: queue.Queue[None] = queue.Queue()
        stops.append(stop)
        calls.append(identity.ImportRecords(slow_records(n, stop), timeout=60))
    threads = [threading.Thread(target=lambda call=call: list(call), daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 20
        while grpc_server.limits.open.get("/identity.v1.IdentityService/ImportRecords", 0) < importers:
            assert time.monotonic() < deadline, "the imports did not open"
            time.sleep(0.05)
        ingest(identity, [event(f"{uid}-1", f"email:{uid}@example.com")])
        began = time.monotonic()
        forgotten = identity.ForgetProfile(pb.ForgetProfileRequest(ref=by_identifier(f"email:{uid}@example.com")),
                                           timeout=20)
        assert forgotten.identifiers_forgotten == 1 and time.monotonic() - began < 10
        with pytest.raises(grpc.RpcError) as refused:
            list(identity.ImportRecords(iter([]), timeout=20))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"--method-limit ImportRecords={importers}" in (refused.value.details() or "")
    finally:
        for stop in stops:
            stop.put(None)
        for thread in threads:
            thread.join(timeout=30)
