"""Audiences leaving the service through the real server and Neo4j: only the identifier types a
destination allows, ad-platform operations hashed as each platform documents, and tracking-spec
batches that the service's own HTTP collector (the Segment-compatible parser) accepts and stores.
Kafka, against a real broker, is in test_kafka_delivery.py."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from identity.v1 import segment_service_pb2 as seg
from neo4j import Driver
from support import event, eventually, ingest, remove_segments

from activation import DeliveryRunner, DestinationStatus, parse_destinations
from activation.profile_identifiers import lookup_identifiers
from client.api import IdentityClient
from server.api.app import RunningServer

WAIT = 60.0


def phone_of(uid: str) -> str:
    """A valid US number of this test's own (a shared one would join other tests' profiles)."""
    return f"+1650{2_000_000 + int(uid[:8], 16) % 8_000_000}"


@pytest.fixture(autouse=True)
def segments_of_this_test_removed_after_it(driver: Driver, uid: str) -> Iterator[None]:
    yield
    remove_segments(driver, f"d-{uid}-")


def gold_customers(identity: Any, segments: Any, uid: str) -> tuple[str, dict[str, str]]:
    """Three gold customers (one with a phone), each also known by a cookie and a CRM id, and a
    fourth who is gold, then not: four enters and an exit. Answers the segment and e-mail by person."""
    people = {n: f"Gold.{n}-{uid}@Example.com" for n in range(4)}
    ingest(identity, [event(f"{uid}-{n}", f"email:{email}", f"cookie:c{n}-{uid}", f"crm_id:C{n}-{uid}",
                            *([f"phone:{phone_of(uid)}"] if n == 0 else []), minute=n, tier="gold", run=uid)
                      for n, email in people.items()])
    name = f"d-{uid}-gold"
    segments.UpsertSegment(seg.UpsertSegmentRequest(name=name, rule=seg.Rule(all=seg.RuleList(rules=[
        seg.Rule(trait=seg.TraitCondition(key="run", equals=uid)),
        seg.Rule(trait=seg.TraitCondition(key="tier", equals="gold"))]))), timeout=120)
    ingest(identity, [event(f"{uid}-down", f"email:{people[3]}", minute=9, tier="silver")])
    return name, people


def deliver(channel: grpc.Channel, destinations: list[dict[str, Any]], state: Path, until: Callable[[], bool]) -> \
        list[DestinationStatus]:
    """Runs the destinations until `until` holds (or the deadline), then stops them."""
    identity = IdentityClient(channel)
    runner = DeliveryRunner(parse_destinations({"state_dir": str(state), "destinations": destinations}),
                            identity.segments.watch, identifiers=lookup_identifiers(identity))
    statuses: list[DestinationStatus] = []
    thread = threading.Thread(target=lambda: statuses.extend(runner.run()), daemon=True)
    thread.start()
    try:
        eventually(until, "the destinations received the changes")
    finally:
        runner.stop()
        thread.join(30)
    assert all(s.error is None for s in statuses), statuses
    return statuses


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_only_the_allowed_identifier_types_leave_and_ad_audiences_are_hashed_per_platform(
        identity, segments, channel, tmp_path: Path, uid: str) -> None:
    name, people = gold_customers(identity, segments, uid)
    changes_file, meta_file, google_file = tmp_path / "changes.jsonl", tmp_path / "meta.jsonl", tmp_path / "google.jsonl"
    deliver(channel, [
        {"name": "crm", "segment": name, "identifiers": ["email"], "file": {"path": str(changes_file), "batch_size": 1}},
        {"name": "meta", "segment": name, "identifiers": ["email", "phone"],
         "file": {"path": str(meta_file), "format": "meta_custom_audience", "batch_size": 1}},
        {"name": "google", "segment": name, "identifiers": ["email", "phone"],
         "file": {"path": str(google_file), "format": "google_customer_match", "batch_size": 1}},
    ], tmp_path / "state", lambda: all(len(lines(f)) >= 5 for f in (changes_file, meta_file, google_file)))

    records = lines(changes_file)
    assert [r["kind"] for r in records].count("enter") == 4 and [r["kind"] for r in records][-1] == "exit"
    assert {i["type"] for r in records for i in r["identifiers"]} == {"email"}
    assert {i["value"] for r in records for i in r["identifiers"]} == {e.lower() for e in people.values()}
    text = changes_file.read_text()  # no cookie, no CRM id
    assert "cookie" not in text and "crm_id" not in text and f"c0-{uid}" not in text and f"C0-{uid}" not in text
    for path in (meta_file, google_file):  # nothing in clear: no e-mail, no phone
        assert uid not in path.read_text() and phone_of(uid) not in path.read_text()

    hashed = {hashlib.sha256(e.lower().encode()).hexdigest(): n for n, e in people.items()}
    meta = lines(meta_file)
    assert [m["operation"] for m in meta] == ["add"] * 4 + ["remove"]
    assert {hashed[m["data"][0][0]] for m in meta[:4]} == {0, 1, 2, 3} and hashed[meta[4]["data"][0][0]] == 3
    meta_phones = {m["data"][0][1] for m in meta} - {""}
    assert meta_phones == {hashlib.sha256(phone_of(uid).lstrip("+").encode()).hexdigest()}  # digits, no "+"
    google = lines(google_file)
    assert [g["operation"] for g in google] == ["create"] * 4 + ["remove"]
    google_phones = {i["hashedPhoneNumber"] for g in google for i in g["userIdentifiers"] if "hashedPhoneNumber" in i}
    assert google_phones == {hashlib.sha256(phone_of(uid).encode()).hexdigest()}  # E.164 with its "+"


def test_tracking_batches_reach_the_collector_which_stores_each_identify_and_track_once(
        identity, segments, channel, grpc_server: RunningServer, driver: Driver, tmp_path: Path, uid: str) -> None:
    """The service's own collector parses what the Segment and RudderStack SDKs send; delivered
    twice (a restart from position 0), every message is stored once, by its stable messageId."""
    name, people = gold_customers(identity, segments, uid)
    collector = f"http://127.0.0.1:{grpc_server.collect_port}"
    destination = {"name": "messaging", "segment": name, "identifiers": ["email"],
                   "tracking": {"url": collector, "write_key": "wk-test-key", "batch_size": 2, "batch_seconds": 0.2}}

    def stored() -> dict[str, dict[str, Any]]:
        records = driver.execute_query(
            "MATCH (t:Touchpoint) WHERE t.event_id STARTS WITH $prefix RETURN t, count { (u:Touchpoint "
            "{event_id: t.event_id}) } AS copies", prefix=f"audience-{name}-").records
        return {r["t"]["event_id"]: {**dict(r["t"]), "copies": r["copies"]} for r in records}

    for state in ("first", "again"):  # the second run has no saved position: it sends everything again
        deliver(channel, [destination], tmp_path / state, lambda: len(stored()) >= 10)
    touchpoints = stored()
    assert len(touchpoints) == 10 and all(t["copies"] == 1 for t in touchpoints.values())
    tracks = sorted((t for t in touchpoints.values() if t["event_id"].endswith("-track")), key=lambda t: t["event_id"])
    assert sorted(t["type"] for t in tracks) == ["Audience Entered"] * 4 + ["Audience Exited"]
    identifies = [t for t in touchpoints.values() if t["event_id"].endswith("-identify")]
    assert len(identifies) == 5
