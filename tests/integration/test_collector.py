"""The HTTP collector end to end: the stock Segment and RudderStack Python SDKs and plain HTTP
(as curl sends it) against the real server and Neo4j; what they stored is read back with a
plain Neo4j driver and through LookupProfiles."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests
from identity.v1 import identity_service_pb2_grpc
from neo4j import Driver
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from server.access.tokens import Caller, TokenRegistry, token_hash
from server.api.app import RunningServer, create_server
from server.config import Settings
from server.graph import Graph
from server.identity.tracking_config import CollectorLimits
from tests.integration.support import by_identifier, identifiers_of, lookup

INGEST_KEY, READ_KEY, POS_KEY = "wk-ingest-" + "a" * 20, "wk-read-" + "b" * 20, "wk-pos-" + "c" * 20


def url(server: RunningServer, path: str = "") -> str:
    return f"http://127.0.0.1:{server.collect_port}{path}"


def touchpoints(driver: Driver, *event_ids: str) -> dict[str, dict[str, Any]]:
    """The stored touchpoints of these event ids, each with the identifiers it carries."""
    records = driver.execute_query(
        "MATCH (t:Touchpoint) WHERE t.event_id IN $ids "
        "OPTIONAL MATCH (t)--(i:Identifier) "
        "RETURN t, collect(i.type + ':' + i.value) AS ids, count { (u:Touchpoint {event_id: t.event_id}) } AS copies",
        ids=list(event_ids)).records
    return {r["t"]["event_id"]: {**dict(r["t"]), "ids": set(r["ids"]), "copies": r["copies"]} for r in records}


def wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def post(server: RunningServer, path: str, body: Any, **kwargs: Any) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(url(server, path), data=data, timeout=30, **kwargs)


# ---- the stock SDKs --------------------------------------------------------------------------

def send_every_call(client: Any, uid: str) -> None:
    """What a site and an app send for one person: anonymous page views, then who they are."""
    anon, user = f"{uid}-anon", f"{uid}-user"
    client.page(anonymous_id=anon, name="Home", properties={"path": "/"}, message_id=f"{uid}-page")
    client.screen(anonymous_id=anon, name="Cart", message_id=f"{uid}-screen")
    client.track(anonymous_id=anon, event="Product Viewed", properties={"sku": "S-1", "price": 9.5},
                 message_id=f"{uid}-track")
    client.identify(user_id=user, anonymous_id=anon, traits={"email": f"{uid}@example.org", "firstName": "Ann"},
                    message_id=f"{uid}-identify")
    client.group(user_id=user, group_id=f"{uid}-acme", traits={"name": "Acme"}, message_id=f"{uid}-group")
    client.alias(previous_id=f"{uid}-old-anon", user_id=user, message_id=f"{uid}-alias")
    client.track(anonymous_id=anon, event="Product Viewed", properties={"sku": "S-1", "price": 9.5},
                 message_id=f"{uid}-track")  # sent twice: stored once
    client.flush()


def check_every_call(driver: Driver, identity: identity_service_pb2_grpc.IdentityServiceStub, uid: str,
                     client_library: str) -> None:
    kinds = ("page", "screen", "track", "identify", "group", "alias")
    stored = touchpoints(driver, *(f"{uid}-{kind}" for kind in kinds))
    assert set(stored) == {f"{uid}-{kind}" for kind in kinds}
    assert all(t["copies"] == 1 for t in stored.values())
    assert stored[f"{uid}-page"]["type"] == "page_view" and stored[f"{uid}-screen"]["type"] == "screen_view"
    assert stored[f"{uid}-track"]["type"] == "Product Viewed"
    assert json.loads(stored[f"{uid}-track"]["properties"])["sku"] == "S-1"
    assert stored[f"{uid}-identify"]["ids"] == {f"user_id:{uid}-user", f"anonymous_id:{uid}-anon",
                                                 f"email:{uid}@example.org"}
    assert json.loads(stored[f"{uid}-identify"]["traits"]) == {"first_name": "Ann"}
    group = json.loads(stored[f"{uid}-group"]["properties"])
    assert group.items() >= {"group_id": f"{uid}-acme", "group.name": "Acme"}.items()
    assert group["library.name"] == client_library  # context.library, as config/collector.yaml keeps it
    assert stored[f"{uid}-alias"]["ids"] == {f"user_id:{uid}-user", f"anonymous_id:{uid}-old-anon"}
    # the anonymous page views and the later identify, alias included, are one person now
    [result] = lookup(identity, by_identifier(f"anonymous_id:{uid}-anon"))
    assert {f"anonymous_id:{uid}-anon", f"user_id:{uid}-user", f"email:{uid}@example.org",
            f"anonymous_id:{uid}-old-anon"} <= identifiers_of(result.profile)


@pytest.mark.parametrize("sdk", [SegmentClient, RudderClient], ids=["segment-analytics-python", "rudder-sdk-python"])
def test_the_stock_python_sdks_send_every_call_type_unchanged(
        sdk: type, grpc_server: RunningServer, driver: Driver, identity: identity_service_pb2_grpc.IdentityServiceStub,
        uid: str) -> None:
    """segment-analytics-python sends plain JSON with the key in the body and as Basic auth;
    rudder-sdk-python gzips its batches (its default) and sends the key as Basic auth only."""
    errors: list[Any] = []
    client = sdk(write_key="any-key", host=url(grpc_server), on_error=lambda e, batch: errors.append(e), max_retries=2)
    assert client.gzip == (sdk is RudderClient)  # each SDK's default
    send_every_call(client, uid)
    client.shutdown()
    assert not errors
    check_every_call(driver, identity, uid, "analytics-python")


# ---- each call type as plain HTTP (the README's curl examples) ---------------------------------

def test_each_call_type_over_plain_http_and_the_answer_names_what_was_stored(
        grpc_server: RunningServer, driver: Driver, uid: str) -> None:
    calls = {
        "identify": {"userId": f"{uid}-u", "traits": {"email": f"{uid}@example.org"}},
        "track": {"userId": f"{uid}-u", "event": "Order Completed", "properties": {"revenue": 30}},
        "page": {"anonymousId": f"{uid}-a", "name": "Home", "context": {"page": {"url": "https://shop.test/"}}},
        "screen": {"anonymousId": f"{uid}-a", "name": "Cart"},
        "group": {"userId": f"{uid}-u", "groupId": "g1"},
        "alias": {"previousId": f"{uid}-a", "userId": f"{uid}-u"},
    }
    for call, message in calls.items():
        answer = post(grpc_server, f"/v1/{call}", {**message, "messageId": f"{uid}-{call}"})
        assert (answer.status_code, answer.json()) == (200, {"success": True, "accepted": 1, "duplicates": 0,
                                                             "rejected": [], "warnings": []}), call
    again = post(grpc_server, "/v1/track", {**calls["track"], "messageId": f"{uid}-track"})
    assert again.json()["duplicates"] == 1
    stored = touchpoints(driver, *(f"{uid}-{call}" for call in calls))
    assert len(stored) == 6 and stored[f"{uid}-page"]["source"] == "web" and stored[f"{uid}-page"]["channel"] == "online"
    assert json.loads(stored[f"{uid}-page"]["properties"]) == {"name": "Home", "page.url": "https://shop.test/"}


def test_a_batch_stores_good_messages_and_lists_each_flawed_one(grpc_server: RunningServer, driver: Driver,
                                                                 uid: str) -> None:
    batch = {"batch": [
        {"type": "track", "event": "a", "userId": f"{uid}-u", "messageId": f"{uid}-ok"},
        {"type": "track", "event": "a", "traits": {"email": "x@y.test"}, "messageId": f"{uid}-nouser"},
        {"type": "page", "anonymousId": f"{uid}-a", "timestamp": "yesterday", "messageId": f"{uid}-badtime"},
        {"type": "identify", "userId": f"{uid}-u", "traits": {"email": "not-an-email"}, "messageId": f"{uid}-warn"},
    ], "context": {"app": {"version": "3.1"}}}
    answer = post(grpc_server, "/v1/batch", batch)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["success"], body["accepted"]) == (True, 2)
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, "no_user_or_anonymous_id"), (2, "bad_timestamp")]
    assert [(w["index"], w["field"]) for w in body["warnings"]] == [(3, "identifiers.email")]
    stored = touchpoints(driver, f"{uid}-ok", f"{uid}-nouser", f"{uid}-badtime", f"{uid}-warn")
    assert set(stored) == {f"{uid}-ok", f"{uid}-warn"}
    assert json.loads(stored[f"{uid}-ok"]["properties"]) == {"app.version": "3.1"}  # the batch's context
    kept = driver.execute_query("MATCH (r:Rejected) WHERE r.subject_id IN $ids RETURN r.subject_id AS id, r.code AS code",
                                ids=[f"{uid}-nouser", f"{uid}-badtime"]).records
    assert {(r["id"], r["code"]) for r in kept} == {(f"{uid}-nouser", "no_user_or_anonymous_id"),
                                                     (f"{uid}-badtime", "bad_timestamp")}  # in quarantine


# ---- bad input: a clear 4xx, and nothing accepted before is lost -------------------------------

def bomb(size: int) -> bytes:
    return gzip.compress(b'{"batch": [' + b" " * size + b"]}")


@pytest.mark.parametrize(("path", "body", "headers", "status", "code"), [
    ("/v1/track", b'{"userId": "u", "event": ', {}, 400, "invalid_json"),
    ("/v1/track", b"[1]", {}, 400, "invalid_json"),
    ("/v1/track", {"userId": "u", "event": "x", "properties": {"blob": "x" * 40_000}}, {}, 413, "message_too_large"),
    ("/v1/batch", gzip.compress(json.dumps({"batch": [{"type": "track", "userId": "u", "event": "x",
                                                       "properties": {"blob": "x" * 40_000}}]}).encode()),
     {"Content-Encoding": "gzip"}, 413, "message_too_large"),
    ("/v1/batch", {"batch": [{"type": "track", "userId": "u", "event": "x", "properties": {"p": "y" * 30_000}}] * 18},
     {}, 413, "request_too_large"),
    ("/v1/batch", bomb(50_000_000), {"Content-Encoding": "gzip"}, 413, "request_too_large"),
    ("/v1/batch", {"batch": [{"type": "track", "userId": "u", "event": "x"}] * 2501}, {}, 413, "too_many_messages"),
    ("/v1/batch", {"batch": [{"type": "purchase", "userId": "u"}]}, {}, 400, "unknown_type"),
    ("/v1/batch", {"messages": []}, {}, 400, "no_batch"),
    ("/v1/track", {"event": "x", "properties": {}}, {}, 400, "no_user_or_anonymous_id"),
    ("/v1/track", {"userId": "u", "event": "x", "timestamp": "12/05/2026"}, {}, 400, "bad_timestamp"),
    ("/v1/track", {"userId": "u"}, {}, 400, "no_event"),
    ("/v1/purchase", {"userId": "u"}, {}, 404, "not_found"),
])
def test_bad_input_gets_a_clear_4xx(grpc_server: RunningServer, driver: Driver, uid: str, path: str, body: Any,
                                    headers: dict[str, str], status: int, code: str) -> None:
    accepted = post(grpc_server, "/v1/track", {"userId": f"{uid}-u", "event": "before", "messageId": f"{uid}-before"})
    assert accepted.status_code == 200
    answer = post(grpc_server, path, body, headers=headers)
    assert answer.status_code == status
    assert answer.json()["success"] is False and answer.json()["code"] == code and answer.json()["message"]
    assert touchpoints(driver, f"{uid}-before")  # still there


# ---- write keys: tokens, scopes, sources --------------------------------------------------------

@pytest.fixture(scope="module")
def keyed_server(settings: Settings, graph: Graph) -> Iterator[RunningServer]:
    tokens = TokenRegistry({
        token_hash(INGEST_KEY): Caller("web-site", frozenset({"ingest"}), frozenset({"web-site"})),
        token_hash(READ_KEY): Caller("dashboard", frozenset({"read"})),
        token_hash(POS_KEY): Caller("tills", frozenset({"ingest"}), frozenset({"pos"})),
    })
    running = create_server(replace(settings, tokens=tokens), graph)
    yield running
    running.stop(grace=5)


def test_a_write_key_is_an_ingest_token_as_basic_user_or_in_the_body(keyed_server: RunningServer, driver: Driver,
                                                                    uid: str) -> None:
    message = {"userId": f"{uid}-u", "event": "x"}
    assert post(keyed_server, "/v1/track", {**message, "messageId": f"{uid}-1"}, auth=(INGEST_KEY, "")).status_code == 200
    assert post(keyed_server, "/v1/track", {**message, "messageId": f"{uid}-2", "writeKey": INGEST_KEY}).status_code == 200
    till = post(keyed_server, "/v1/track", {**message, "messageId": f"{uid}-3"}, auth=(POS_KEY, ""))
    assert till.status_code == 200
    stored = touchpoints(driver, f"{uid}-1", f"{uid}-2", f"{uid}-3")
    # the token's source (never the key), and that source's channel from config/collector.yaml
    assert {k: (t["source"], t["channel"]) for k, t in stored.items()} == {
        f"{uid}-1": ("web-site", "online"), f"{uid}-2": ("web-site", "online"), f"{uid}-3": ("pos", "offline")}
    assert INGEST_KEY not in json.dumps({k: {p: str(v) for p, v in t.items()} for k, t in stored.items()})


@pytest.mark.parametrize(("auth", "body_key", "status", "code"), [
    (None, None, 401, "missing_write_key"),
    (("wk-unknown", ""), None, 401, "unknown_write_key"),
    (None, "wk-unknown", 401, "unknown_write_key"),
    ((READ_KEY, ""), None, 403, "forbidden"),
])
def test_a_missing_or_wrong_key_gets_401_and_the_wrong_scope_403(keyed_server: RunningServer, driver: Driver,
                                                                 uid: str, auth: Any, body_key: str | None,
                                                                 status: int, code: str) -> None:
    message = {"userId": f"{uid}-u", "event": "x", "messageId": f"{uid}-m", **({"writeKey": body_key} if body_key else {})}
    answer = post(keyed_server, "/v1/track", message, auth=auth)
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert not touchpoints(driver, f"{uid}-m")


def test_the_segment_sdk_with_a_write_key_reaches_a_server_with_tokens(keyed_server: RunningServer, driver: Driver,
                                                                      uid: str) -> None:
    errors: list[Any] = []
    client = SegmentClient(write_key=INGEST_KEY, host=url(keyed_server), on_error=lambda e, b: errors.append(e),
                           max_retries=1)
    client.track(user_id=f"{uid}-u", event="Signed Up", message_id=f"{uid}-m")
    client.flush()
    client.shutdown()
    assert not errors and touchpoints(driver, f"{uid}-m")[f"{uid}-m"]["source"] == "web-site"


# ---- busy, down, browsers, metrics --------------------------------------------------------------

def test_beyond_the_concurrency_limit_a_request_gets_429_with_retry_after(settings: Settings, graph: Graph,
                                                                         uid: str) -> None:
    assert settings.collector is not None
    one_at_a_time = replace(settings.collector, limits=CollectorLimits(max_concurrent_requests=1))
    running = create_server(replace(settings, collector=one_at_a_time), graph)
    try:
        with socket.create_connection(("127.0.0.1", running.collect_port)) as slow:
            # a request whose body is still on its way holds the only place
            slow.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{")
            time.sleep(0.5)
            busy = post(running, "/v1/track", {"userId": f"{uid}-u", "event": "x", "messageId": f"{uid}-m"})
            assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
            assert busy.json()["code"] == "too_many_requests"
        wait_for(lambda: post(running, "/v1/track", {"userId": f"{uid}-u", "event": "x",
                                                     "messageId": f"{uid}-m"}).status_code == 200)
    finally:
        running.stop(grace=5)


def test_while_neo4j_is_unreachable_the_collector_answers_503_so_sdks_retry(grpc_server: RunningServer,
                                                                             uid: str) -> None:
    grpc_server.readiness._set(False, "Neo4j at bolt://... is unreachable")  # what the readiness probe sets
    try:
        answer = post(grpc_server, "/v1/track", {"userId": f"{uid}-u", "event": "x"})
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
        assert "unreachable" in answer.json()["message"]
    finally:
        grpc_server.readiness._set(True, "")


def test_browsers_get_cors_for_allowed_origins_and_the_preflight(grpc_server: RunningServer, uid: str) -> None:
    preflight = requests.options(url(grpc_server, "/v1/t"), timeout=10, headers={
        "Origin": "https://shop.test", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.test"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    # analytics.js posts text/plain to the one-letter paths, so that no preflight is needed
    sent = requests.post(url(grpc_server, "/v1/t"), timeout=10, data=json.dumps(
        {"anonymousId": f"{uid}-a", "event": "x"}), headers={"Origin": "https://shop.test", "Content-Type": "text/plain"})
    assert sent.status_code == 200 and sent.headers["Access-Control-Allow-Origin"] == "https://shop.test"


def test_origins_not_allowed_get_no_cors(settings: Settings, graph: Graph) -> None:
    assert settings.collector is not None
    only_shop = replace(settings.collector, limits=CollectorLimits(allowed_origins=("https://shop.test",)))
    running = create_server(replace(settings, collector=only_shop), graph)
    try:
        refused = requests.options(url(running, "/v1/track"), timeout=10, headers={
            "Origin": "https://evil.test", "Access-Control-Request-Method": "POST"})
        assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
        allowed = requests.options(url(running, "/v1/track"), timeout=10, headers={
            "Origin": "https://shop.test", "Access-Control-Request-Method": "POST"})
        assert allowed.status_code == 204
    finally:
        running.stop(grace=5)


def test_metrics_count_requests_by_status_and_messages_by_type_and_outcome(grpc_server: RunningServer,
                                                                           uid: str) -> None:
    assert grpc_server.http is not None
    post(grpc_server, "/v1/page", {"anonymousId": f"{uid}-a", "messageId": f"{uid}-p"})
    post(grpc_server, "/v1/page", {"anonymousId": f"{uid}-a", "messageId": f"{uid}-p"})
    post(grpc_server, "/v1/page", b"{")
    text = requests.get(f"http://127.0.0.1:{grpc_server.http.port}/metrics", timeout=10).text
    assert 'identity_collector_requests_total{status="200"}' in text
    assert 'identity_collector_requests_total{status="400"}' in text
    assert 'identity_collector_messages_total{outcome="accepted",type="page"}' in text
    assert 'identity_collector_messages_total{outcome="duplicate",type="page"}' in text
