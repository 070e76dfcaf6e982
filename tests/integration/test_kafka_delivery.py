"""Audiences into a real Kafka broker (localkafka, or KAFKA_BOOTSTRAP's cluster) from the real
server and Neo4j: a consumer reads exactly the segment's changes, keyed by profile and in order
per key, and a delivery runner killed with SIGKILL mid-delivery and restarted loses none (a
repeat carries the same messageId)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from identity.v1 import segment_service_pb2 as seg
from neo4j import Driver
from support import event, eventually, ingest, remove_segments

from activation import DeliveryRunner, DestinationStatus, parse_destinations
from activation.profile_identifiers import lookup_identifiers
from client.api import IdentityClient
from server.api.app import RunningServer

WAIT = 90.0
PARTITIONS = 3


@pytest.fixture(autouse=True)
def segments_of_this_test_removed_after_it(driver: Driver, uid: str) -> Iterator[None]:
    yield
    remove_segments(driver, f"k-{uid}-")


def new_topic(bootstrap: str) -> str:
    topic = f"audiences-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
    return topic


class Reader:
    """Consumes a topic from its start on a thread: every message, in the order each partition holds them."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.messages: list[tuple[int, str, dict[str, Any]]] = []  # (partition, key, value)
        self._stop = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{topic}",
                                   "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(num_messages=500, timeout=0.2):
                assert message.error() is None, message.error()
                key = (message.key() or b"").decode()
                self.messages.append((message.partition() or 0, key, json.loads(message.value() or b"{}")))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


def comings_and_goings(identity: Any, segments: Any, channel: grpc.Channel, uid: str, people: int) -> list[Any]:
    """`people` profiles enter a segment; every third leaves, and every sixth comes back: several
    changes for one profile, whose order a consumer must see kept. Each step waits until the
    segment worker logged the one before (it evaluates a profile's state when it gets to it, so
    a leave and a return in between would log nothing). Answers the change log."""
    name = f"k-{uid}-vip"
    segments.UpsertSegment(seg.UpsertSegmentRequest(name=name, rule=seg.Rule(all=seg.RuleList(rules=[
        seg.Rule(trait=seg.TraitCondition(key="run", equals=uid)),
        seg.Rule(trait=seg.TraitCondition(key="tier", equals="vip"))]))), timeout=120)
    ingest(identity, [event(f"{uid}-{n}", f"email:v{n}-{uid}@example.com", minute=n, tier="vip", run=uid)
                      for n in range(people)])
    logged_changes(channel, name, people)
    ingest(identity, [event(f"{uid}-{n}-out", f"email:v{n}-{uid}@example.com", minute=100 + n, tier="basic")
                      for n in range(0, people, 3)])
    logged_changes(channel, name, people + len(range(0, people, 3)))
    ingest(identity, [event(f"{uid}-{n}-back", f"email:v{n}-{uid}@example.com", minute=200 + n, tier="vip")
                      for n in range(0, people, 6)])
    return logged_changes(channel, name, people + len(range(0, people, 3)) + len(range(0, people, 6)))


def logged_changes(channel: grpc.Channel, name: str, count: int) -> list[Any]:
    """The segment's change log as WatchSegment gives it, once the segment worker logged `count`."""
    found: list[Any] = []

    def complete() -> bool:
        found[:] = list(IdentityClient(channel).segments.watch(name, 0, idle_seconds=1.0))
        return len(found) >= count

    eventually(complete, f"{count} changes logged", WAIT)
    return found


def kafka_destination(name: str, topic: str, bootstrap: str, batch_size: int = 20) -> dict[str, Any]:
    return {"name": "bus", "segment": name, "identifiers": ["email"],
            "kafka": {"topic": topic, "bootstrap": bootstrap, "batch_size": batch_size, "batch_seconds": 0.2}}


def check_keyed_in_order(messages: list[tuple[int, str, dict[str, Any]]]) -> None:
    """One profile's messages lie in one partition, and each change first appears in position
    order (a redelivered batch repeats changes already seen, which are then no news)."""
    partitions: dict[str, set[int]] = defaultdict(set)
    first_seen: dict[str, list[int]] = defaultdict(list)
    for partition, key, value in messages:
        partitions[key].add(partition)
        position = int(value["messageId"].rsplit("-", 2)[1])
        if position not in first_seen[key]:
            first_seen[key].append(position)
        assert value["anonymousId"] == key
    assert all(len(found) == 1 for found in partitions.values()), partitions
    assert len({p for found in partitions.values() for p in found}) > 1, "one partition proves no keying"
    for key, found in first_seen.items():
        assert found == sorted(found), (key, found)


def test_a_consumer_reads_exactly_the_segments_changes_keyed_by_profile_in_order(
        identity, segments, channel, kafka_bootstrap: str, tmp_path: Path, uid: str) -> None:
    expected = comings_and_goings(identity, segments, channel, uid, people=24)
    name = expected[0].segment
    topic = new_topic(kafka_bootstrap)
    reader = Reader(kafka_bootstrap, topic)
    client = IdentityClient(channel)
    runner = DeliveryRunner(parse_destinations({"state_dir": str(tmp_path), "destinations": [
        kafka_destination(name, topic, kafka_bootstrap)]}), client.segments.watch,
        identifiers=lookup_identifiers(client))
    statuses: list[DestinationStatus] = []
    thread = threading.Thread(target=lambda: statuses.extend(runner.run()), daemon=True)
    thread.start()
    try:
        eventually(lambda: len(reader.messages) >= len(expected), "every change on the topic", WAIT)
        time.sleep(1)  # anything beyond the changes would arrive now
    finally:
        runner.stop()
        thread.join(30)
        reader.close()
    assert statuses and statuses[0].error is None
    ids = [value["messageId"] for _, _, value in reader.messages]
    assert sorted(ids) == sorted(f"audience-{name}-{c.position}-track" for c in expected)  # exactly, once each
    by_id = {value["messageId"]: value for _, _, value in reader.messages}
    for change in expected:
        value = by_id[f"audience-{name}-{change.position}-track"]
        assert value["anonymousId"] == change.profile_id
        assert value["event"] == ("Audience Entered" if change.kind == seg.CHANGE_KIND_ENTER else "Audience Exited")
        assert value["properties"]["audience_key"] == f"k_{uid}_vip"
        assert [i["type"] for i in value["context"]["externalIds"]] == ["profile_id", "email"]
    check_keyed_in_order(reader.messages)


def test_a_runner_killed_mid_delivery_and_restarted_loses_no_change(
        identity, segments, channel, grpc_server: RunningServer, kafka_bootstrap: str, tmp_path: Path,
        uid: str) -> None:
    """SIGKILL while batches are in flight; the restarted runner goes on from its saved position,
    so a change may come twice, always with the same messageId and content, and none is missing."""
    expected = comings_and_goings(identity, segments, channel, uid, people=120)
    name = expected[0].segment
    topic = new_topic(kafka_bootstrap)
    reader = Reader(kafka_bootstrap, topic)
    config = tmp_path / "destinations.yaml"
    config.write_text(json.dumps({"state_dir": str(tmp_path / "state"), "destinations": [
        kafka_destination(name, topic, kafka_bootstrap, batch_size=5)]}))
    command = [sys.executable, "-m", "client", "--address", f"127.0.0.1:{grpc_server.port}", "deliver",
               "--config", str(config)]
    try:
        runner = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            eventually(lambda: len(reader.messages) >= 30, "the first batches on the topic", WAIT)
        finally:
            runner.send_signal(signal.SIGKILL)
            runner.wait()
        killed_at = len(reader.messages)
        assert killed_at < len(expected), "the runner was killed after it had delivered everything"
        done = subprocess.run(command + ["--once"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        eventually(lambda: {v["messageId"] for _, _, v in reader.messages} >=
                   {f"audience-{name}-{c.position}-track" for c in expected}, "every change after the restart", WAIT)
    finally:
        reader.close()
    seen: dict[str, dict[str, Any]] = {}
    for _, _, value in reader.messages:  # a repeat is the same message, id and content
        assert seen.setdefault(value["messageId"], value) == value
    assert set(seen) == {f"audience-{name}-{c.position}-track" for c in expected}
    check_keyed_in_order(reader.messages)
