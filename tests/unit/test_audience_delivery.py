"""Audiences as the tracking spec's messages, the Kafka sink's acknowledgements, retries and dead
letters (a fake producer here; tests/integration/test_kafka_delivery.py uses a real broker), and
that only the identifier types a destination allows leave."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from identity.v1 import segment_service_pb2 as seg

from activation import DeliveryRunner, DestinationsError, Outcome, parse_destinations
from activation.ad_audiences import GOOGLE, META, audience_records, google_phone, meta_phone, normalized_email, sha256_hex
from activation.audience_messages import AudienceChange, audience_key_of, identify, track
from activation.destinations import Kafka
from activation.kafka_sink import KafkaSender
from activation.profile_identifiers import allowed
from activation.sinks import Batch
from client.messages import SegmentChange

SEGMENT = "Repeat Buyers"


def change(position: int, profile_id: str, kind: int = seg.CHANGE_KIND_ENTER) -> SegmentChange:
    found = SegmentChange(position=position, segment=SEGMENT, profile_id=profile_id, kind=kind, cause="ingest")
    found.at.FromSeconds(1795860000 + position)
    return found


def test_an_enter_is_audience_entered_and_an_exit_audience_exited_with_the_key_true_or_false() -> None:
    entered = AudienceChange(change(7, "p1"), (("email", "ann@example.com"), ("phone", "+447700900123")))
    exited = AudienceChange(change(9, "p1", seg.CHANGE_KIND_EXIT), ())
    key = audience_key_of(SEGMENT)
    assert key == "repeat_buyers"
    assert track(entered, key) == {
        "type": "track", "event": "Audience Entered", "messageId": "audience-Repeat Buyers-7-track",
        "anonymousId": "p1", "timestamp": "2026-11-28T10:00:07Z",
        "properties": {"audience_key": "repeat_buyers", "repeat_buyers": True},
        "context": {"library": {"name": "identity-delivery", "version": "1"},
                    "externalIds": [{"id": "p1", "type": "profile_id", "collection": "users", "encoding": "none"},
                                    {"id": "ann@example.com", "type": "email", "collection": "users", "encoding": "none"},
                                    {"id": "+447700900123", "type": "phone", "collection": "users", "encoding": "none"}],
                    "traits": {"email": "ann@example.com", "phone": "+447700900123"}},
    }
    assert track(exited, key)["event"] == "Audience Exited"
    assert track(exited, key)["properties"] == {"audience_key": "repeat_buyers", "repeat_buyers": False}
    assert identify(exited, key)["traits"] == {"repeat_buyers": False}
    assert identify(entered, key)["traits"] == {"repeat_buyers": True, "email": "ann@example.com",
                                               "phone": "+447700900123"}


def test_a_known_user_id_is_the_user_and_message_ids_are_stable_per_change_and_call() -> None:
    known = AudienceChange(change(3, "p2"), (("user_id", "u-42"),))
    key = "vip"
    assert track(known, key)["userId"] == "u-42" and track(known, key)["anonymousId"] == "p2"
    assert track(known, key)["messageId"] == track(known, key)["messageId"] != identify(known, key)["messageId"]
    assert track(known, key)["messageId"] != track(AudienceChange(change(4, "p2"), ()), key)["messageId"]


def test_only_the_allowed_types_leave_in_the_destinations_order() -> None:
    found = {"p1": (("cookie", "c1"), ("phone", "+15550001"), ("email", "b@x.io"), ("email", "a@x.io"),
                    ("crm_id", "C1"))}
    assert allowed(found, ("email", "phone")) == {"p1": (("email", "a@x.io"), ("email", "b@x.io"),
                                                         ("phone", "+15550001"))}
    assert allowed(found, ()) == {"p1": ()}


class FakeProducer:
    """Acknowledges on flush; refuse() makes the next n messages fail, as a broker that timed out would."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.queued: list[tuple[str, bytes, bytes, Callable[[Any, Any], None]]] = []
        self.acked: list[tuple[str, bytes, bytes]] = []
        self.refusals = 0

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Callable[[Any, Any], None]) -> None:
        self.queued.append((topic, key, value, on_delivery))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for topic, key, value, done in self.queued:
            if self.refusals:
                self.refusals -= 1
                done("KafkaError{code=_MSG_TIMED_OUT}", None)
            else:
                self.acked.append((topic, key, value))
                done(None, None)
        self.queued.clear()
        return 0


def kafka_sender(tmp_path: Path, fake: FakeProducer, **settings: Any) -> KafkaSender:
    config = parse_destinations({"state_dir": str(tmp_path), "destinations": [
        {"name": "bus", "segment": SEGMENT, "identifiers": ["email"],
         "kafka": {"topic": "audiences", "backoff_seconds": 0.001, "max_backoff_seconds": 0.002, **settings}}]})
    (destination,) = config.destinations
    assert isinstance(destination.target, Kafka)
    def producer(given: Mapping[str, Any]) -> FakeProducer:
        fake.settings = dict(given)
        return fake

    return KafkaSender(destination, destination.target, producer=producer)


def test_the_producer_is_idempotent_with_acks_all_and_each_message_is_keyed_by_profile(tmp_path: Path) -> None:
    producer = FakeProducer({})
    sender = kafka_sender(tmp_path, producer, producer={"linger.ms": 20})
    assert producer.settings["enable.idempotence"] is True and producer.settings["acks"] == "all"
    assert producer.settings["linger.ms"] == 20
    batch = Batch("bus", SEGMENT, (change(1, "p1"), change(2, "p2"), change(3, "p1", seg.CHANGE_KIND_EXIT)),
                  {"p1": (("email", "a@x.io"),)})
    assert sender.deliver(batch, threading.Event()) is Outcome.DELIVERED
    assert [(topic, key) for topic, key, _ in producer.acked] == [("audiences", b"p1"), ("audiences", b"p2"),
                                                                  ("audiences", b"p1")]
    values = [json.loads(value) for _, _, value in producer.acked]
    assert [v["event"] for v in values] == ["Audience Entered", "Audience Entered", "Audience Exited"]
    assert values[0]["context"]["traits"] == {"email": "a@x.io"} and "traits" not in values[1]["context"]


def test_a_batch_the_broker_did_not_acknowledge_is_sent_again_with_the_same_message_ids(tmp_path: Path) -> None:
    producer = FakeProducer({})
    sender = kafka_sender(tmp_path, producer)
    producer.refusals = 1
    batch = Batch("bus", SEGMENT, (change(1, "p1"), change(2, "p2")))
    assert sender.deliver(batch, threading.Event()) is Outcome.DELIVERED
    ids = [json.loads(value)["messageId"] for _, _, value in producer.acked]
    assert ids == ["audience-Repeat Buyers-2-track", "audience-Repeat Buyers-1-track",
                   "audience-Repeat Buyers-2-track"]  # the refused first one again, and a repeat of the second


def test_a_batch_refused_on_every_attempt_is_dead_lettered_with_its_messages(tmp_path: Path) -> None:
    producer = FakeProducer({})
    sender = kafka_sender(tmp_path, producer, max_attempts=3)
    producer.refusals = 100
    batch = Batch("bus", SEGMENT, (change(5, "p1"),))
    assert sender.deliver(batch, threading.Event()) is Outcome.DEAD_LETTERED
    (record,) = [json.loads(line) for line in (tmp_path / "bus.dead.jsonl").read_text().splitlines()]
    assert record["attempts"] == 3 and "_MSG_TIMED_OUT" in record["error"] and record["topic"] == "audiences"
    assert record["messages"][0]["key"] == "p1" and record["messages"][0]["value"]["event"] == "Audience Entered"


def test_the_runner_looks_up_identifiers_per_batch_and_passes_on_only_the_allowed_ones(tmp_path: Path) -> None:
    """Data minimisation end to end in the runner: the profile holds a cookie and a CRM id too."""
    changes = [change(1, "p1"), change(2, "p2")]
    looked_up: list[Sequence[str]] = []

    def identifiers(profile_ids: Sequence[str]) -> dict[str, tuple[tuple[str, str], ...]]:
        looked_up.append(list(profile_ids))
        return {"p1": (("email", "a@x.io"), ("cookie", "c1"), ("crm_id", "C1"))}

    delivered: list[Batch] = []

    class Keep:
        def resume_position(self, saved: int) -> int:
            return saved

        def deliver(self, batch: Batch, stop: threading.Event) -> Outcome:
            delivered.append(batch)
            return Outcome.DELIVERED

    config = parse_destinations({"state_dir": str(tmp_path), "destinations": [
        {"name": "bus", "segment": SEGMENT, "identifiers": ["email"], "kafka": {"topic": "t", "batch_size": 2}}]})
    runner = DeliveryRunner(config, lambda segment, after: iter([c for c in changes if c.position > after]),
                            idle_seconds=0.5, sinks=lambda d: Keep(), identifiers=identifiers)
    (status,) = runner.run()
    assert status.error is None and status.delivered == 2
    assert looked_up == [["p1", "p2"]]
    assert dict(delivered[0].identifiers) == {"p1": (("email", "a@x.io"),)}
    assert delivered[0].record(changes[0])["identifiers"] == [{"type": "email", "value": "a@x.io"}]


# ---- ad audiences: each platform's normalisation and hashing --------------------------------

# Meta, Conversions API customer information parameters (the same rules as Custom Audiences):
# https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
# "Input: John_Smith@gmail.com / Normalized format: john_smith@gmail.com / Expected SHA256 output: 62a14e44..."
# "Input: US phone number (650)555-1212 / Normalized format: 16505551212 / Expected SHA256 output: e323ec62..."
META_EMAIL = ("John_Smith@gmail.com", "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f")
META_PHONE = ("+16505551212", "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176")
# Google Ads Customer Match (https://developers.google.com/google-ads/api/docs/remarketing/audience-types/customer-match
# and https://support.google.com/google-ads/answer/7476159): e-mails trimmed and lower-cased, phones in
# E.164 "starting with a + sign (e.g. +12125650000, +442070313000)", then SHA-256. Google's pages give
# no digests; these are SHA-256 of the normalised forms the pages name.
GOOGLE_PHONES = (("+12125650000", "d360a79e746532a6a1e7b8164440b04cdd8797e23126f7a4de7a4b67fdcdba98"),
                 ("+442070313000", "f3d7e96c73fb0de1b66acfce541d7af758fbd4f3fa3af0ea4e10110000d3625e"))


def audience_batch(*identifiers: tuple[str, str], kind: int = seg.CHANGE_KIND_ENTER) -> Batch:
    return Batch("ads", SEGMENT, (change(11, "p1", kind), change(12, "p2")), {"p1": tuple(identifiers)})


def test_meta_hashes_as_its_documentation_shows_and_its_phones_carry_no_plus() -> None:
    assert sha256_hex(normalized_email("  " + META_EMAIL[0] + " ")) == META_EMAIL[1]
    assert meta_phone(META_PHONE[0]) == META_PHONE[1]
    records = audience_records(audience_batch(("email", META_EMAIL[0]), ("phone", META_PHONE[0]),
                                              ("advertising_id", "AEBE52E7-03EE-455A-B3C4-E57283966239")), META)
    assert records == [{"position": 11, "operation": "add", "schema": ["EMAIL_SHA256", "PHONE_SHA256", "MADID"],
                        "data": [[META_EMAIL[1], META_PHONE[1], "AEBE52E7-03EE-455A-B3C4-E57283966239"]]}]
    (removed,) = audience_records(audience_batch(("email", META_EMAIL[0]), kind=seg.CHANGE_KIND_EXIT), META)
    assert removed["operation"] == "remove" and removed["data"] == [[META_EMAIL[1], "", ""]]


def test_google_hashes_phones_in_e164_with_the_plus_and_keeps_advertising_ids_unhashed() -> None:
    for phone, digest in GOOGLE_PHONES:
        assert google_phone(phone) == digest
    assert google_phone(META_PHONE[0]) != META_PHONE[1]  # the two platforms differ on phones
    records = audience_records(audience_batch(("email", " Ann@Example.COM"), ("phone", GOOGLE_PHONES[0][0]),
                                              ("advertising_id", "cdda802e-fb9c-47ad-9866-0794d394c912")), GOOGLE)
    assert records == [{"position": 11, "operation": "create", "userIdentifiers": [
        {"hashedEmail": "71d4f55f72fa128dfb468a1a3901507c804b74316488744d769d7f4b16696476"},  # ann@example.com
        {"hashedPhoneNumber": GOOGLE_PHONES[0][1]},
        {"mobileId": "cdda802e-fb9c-47ad-9866-0794d394c912"}]}]


def test_a_profile_with_nothing_a_platform_matches_on_is_left_out_and_a_bad_phone_is_never_hashed() -> None:
    assert audience_records(audience_batch(("phone", "650-555-1212")), GOOGLE) == []  # no country code
    assert audience_records(audience_batch(), META) == []


def test_an_audience_format_needs_matchable_identifiers_and_allows_nothing_else() -> None:
    base = {"name": "ads", "segment": SEGMENT, "file": {"path": "a.jsonl", "format": "meta_custom_audience"}}
    with pytest.raises(DestinationsError, match="format meta_custom_audience matches people by identifiers"):
        parse_destinations({"destinations": [base]})
    with pytest.raises(DestinationsError, match="matches on email, phone, advertising_id only, not cookie"):
        parse_destinations({"destinations": [{**base, "identifiers": ["email", "cookie"]}]})
    with pytest.raises(DestinationsError, match="webhook: format must be one of changes, google_customer_match"):
        parse_destinations({"destinations": [{"name": "w", "segment": SEGMENT, "identifiers": ["email"],
                                              "webhook": {"url": "http://x", "format": "tiktok"}}]})
    (ok,) = parse_destinations({"destinations": [{**base, "identifiers": ["email", "phone"]}]}).destinations
    assert ok.identifiers == ("email", "phone")


def test_the_tracking_sink_posts_identify_and_track_with_the_write_key_and_honours_retry_after(
        tmp_path: Path) -> None:
    import base64
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from activation.tracking_sink import TrackingSender

    received: list[tuple[str, dict[str, Any]]] = []
    answers = [429, 200]

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path + " " + self.headers["Authorization"], body))
            status = answers.pop(0)
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0.3")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = parse_destinations({"state_dir": str(tmp_path), "destinations": [
            {"name": "braze", "segment": SEGMENT, "identifiers": ["email"],
             "tracking": {"url": f"http://127.0.0.1:{server.server_port}/", "write_key": "wk-secret",
                          "backoff_seconds": 0.01, "max_backoff_seconds": 1}}]})
        (destination,) = config.destinations
        sender = TrackingSender(destination, destination.target)  # type: ignore[arg-type]
        batch = Batch("braze", SEGMENT, (change(1, "p1"),), {"p1": (("email", "a@x.io"),)})
        began = time.monotonic()
        assert sender.deliver(batch, threading.Event()) is Outcome.DELIVERED
        assert time.monotonic() - began >= 0.3  # waited what the endpoint asked
    finally:
        server.shutdown()
    basic = base64.b64encode(b"wk-secret:").decode()
    assert [path for path, _ in received] == [f"/v1/batch Basic {basic}"] * 2
    body = received[-1][1]
    assert [(m["type"], m["messageId"]) for m in body["batch"]] == [
        ("identify", "audience-Repeat Buyers-1-identify"), ("track", "audience-Repeat Buyers-1-track")]
    assert body["batch"][0]["traits"] == {"repeat_buyers": True, "email": "a@x.io"}
    assert "wk-secret" not in json.dumps(body)


def test_a_webhook_in_an_ad_format_posts_that_platforms_operations(tmp_path: Path) -> None:
    from activation.destinations import Webhook
    from activation.webhook import WebhookSender

    config = parse_destinations({"state_dir": str(tmp_path), "destinations": [
        {"name": "meta", "segment": SEGMENT, "identifiers": ["email"],
         "webhook": {"url": "http://127.0.0.1:9/hook", "format": "meta_custom_audience"}}]})
    (destination,) = config.destinations
    assert isinstance(destination.target, Webhook)
    payload = WebhookSender(destination, destination.target).payload(audience_batch(("email", META_EMAIL[0])))
    assert payload == {"destination": "ads", "segment": SEGMENT, "format": "meta_custom_audience", "operations": [
        {"position": 11, "operation": "add", "schema": ["EMAIL_SHA256", "PHONE_SHA256", "MADID"],
         "data": [[META_EMAIL[1], "", ""]]}]}
