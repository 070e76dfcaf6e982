"""Audiences to Kafka against the file sink, and from ENTER in Neo4j to the broker's ack, in one run.

Runs its own Neo4j, server and one-node Kafka (localkafka, free ports, temporary homes; or
KAFKA_BOOTSTRAP's cluster). Then:

1. throughput: --members people enter a new segment at once (its change log holds --members
   enter changes); the delivery runner (activation/, in this process, identifiers [email]
   looked up per batch as in production) delivers them from position 0 to a JSON Lines file,
   then to a Kafka topic, each --rounds times alternately; changes per second of each and
   their ratio (medians), the baseline measured in the same run;
2. latency: a runner follows another segment live (Kafka destination, default batching);
   --live people are ingested one after another at --rate a second, each entering the segment;
   for each, the broker's append time (the topic stamps LogAppendTime, i.e. when it acked)
   minus the change's `at` (when the segment worker logged the ENTER in Neo4j): p50 and p95.
   Most of it is the destination's batch_seconds (a batch waits that long for more changes)
   and the change feed's poll (100 ms): --batch-seconds sets the former.

    python -m bench.destinations                     # 5,000 members, 3 rounds, 300 live entries at 20/s
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from google.protobuf.timestamp_pb2 import Timestamp
from identity.v1 import common_pb2, identity_service_pb2 as pb
from identity.v1 import segment_service_pb2 as seg, segment_service_pb2_grpc

from activation import DeliveryRunner, parse_destinations
from activation.profile_identifiers import lookup_identifiers
from bench.common import bench_neo4j, bench_server, ingest_windowed, log, save
from client.api import IdentityClient
from localkafka import LocalKafka, kafka_target


@dataclass(frozen=True)
class Person:
    """One signup that puts a person in the group's segment (bench.common ingests to_proto())."""

    run: str
    n: int
    group: str

    def to_proto(self) -> pb.Event:
        return person(self.run, self.n, self.group)


def person(run: str, n: int, group: str) -> pb.Event:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return pb.Event(event_id=f"dest-{run}-{group}-{n}", occurred_at=stamp, source="bench", type="signup",
                    identifiers=[common_pb2.Identifier(type="email", value=f"{group}-{n}-{run}@example.com"),
                                 common_pb2.Identifier(type="cookie", value=f"c-{group}-{n}-{run}")],
                    traits={"bench_group": f"{run}-{group}"})


def define_segment(server: Any, run: str, group: str) -> str:
    name = f"bench-dest-{run}-{group}"
    with server.channel() as channel:
        segment_service_pb2_grpc.SegmentServiceStub(channel).UpsertSegment(seg.UpsertSegmentRequest(
            name=name, rule=seg.Rule(trait=seg.TraitCondition(key="bench_group", equals=f"{run}-{group}"))),
            timeout=600)
    return name


def wait_logged(server: Any, name: str, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    with server.channel() as channel:
        stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
        while stub.GetSegment(seg.GetSegmentRequest(name=name), timeout=60).member_count < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"segment {name}: fewer than {count} members after {timeout} s")
            time.sleep(0.5)


def new_topic(bootstrap: str, append_time: bool = False) -> str:
    topic = f"bench-audiences-{uuid.uuid4().hex[:10]}"
    config = {"message.timestamp.type": "LogAppendTime"} if append_time else {}
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until the result: its handle does the work
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1, config=config)])[topic].result(30)
    return topic


def deliver_all(server: Any, destination: dict[str, Any], state: Path, count: int,
                delivered: Callable[[], int]) -> float:
    """Seconds for the runner to deliver `count` changes from position 0."""
    with server.channel() as channel:
        identity = IdentityClient(channel)
        runner = DeliveryRunner(parse_destinations({"state_dir": str(state), "destinations": [destination]}),
                                identity.segments.watch, identifiers=lookup_identifiers(identity))
        began = time.monotonic()
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        while delivered() < count:
            time.sleep(0.05)
        took = time.monotonic() - began
        runner.stop()
        thread.join(60)
    return took


def kafka_count(bootstrap: str, topic: str) -> Callable[[], int]:
    """The messages on the topic so far (the sum of its partitions' high watermarks)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"count-{topic}"})

    def count() -> int:
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
        except KafkaException:  # a new topic's partitions may have no leader yet: none counted so far
            return 0

    return count


def file_count(path: Path) -> Callable[[], int]:
    def count() -> int:
        if not path.exists():
            return 0
        with open(path, "rb") as file:
            return sum(1 for _ in file)

    return count


def throughput(server: Any, bootstrap: str, name: str, members: int, rounds: int, scratch: Path) -> dict[str, Any]:
    figures: dict[str, list[float]] = {"file": [], "kafka": []}
    for n in range(rounds):
        path = scratch / f"round-{n}.jsonl"
        took = deliver_all(server, {"name": f"file-{n}", "segment": name, "identifiers": ["email"],
                                    "file": {"path": str(path)}}, scratch / f"state-f{n}", members, file_count(path))
        figures["file"].append(members / took)
        topic = new_topic(bootstrap)
        took = deliver_all(server, {"name": f"kafka-{n}", "segment": name, "identifiers": ["email"],
                                    "kafka": {"topic": topic, "bootstrap": bootstrap}},
                           scratch / f"state-k{n}", members, kafka_count(bootstrap, topic))
        figures["kafka"].append(members / took)
        log(f"round {n + 1}: file {figures['file'][-1]:.0f}, kafka {figures['kafka'][-1]:.0f} changes/s")
    file_rate, kafka_rate = statistics.median(figures["file"]), statistics.median(figures["kafka"])
    return {"rounds": figures, "file_per_s": file_rate, "kafka_per_s": kafka_rate, "kafka_to_file": kafka_rate / file_rate}


def latency(server: Any, bootstrap: str, run: str, live: int, rate: float, state: Path,
            batch_seconds: float | None) -> dict[str, Any]:
    name = define_segment(server, run, "live")
    topic = new_topic(bootstrap, append_time=True)
    with server.channel() as channel:
        identity = IdentityClient(channel)
        runner = DeliveryRunner(parse_destinations({"state_dir": str(state), "destinations": [
            {"name": "live", "segment": name, "identifiers": ["email"], "kafka": {
                "topic": topic, "bootstrap": bootstrap,
                **({} if batch_seconds is None else {"batch_seconds": batch_seconds})}}]}),
            identity.segments.watch, identifiers=lookup_identifiers(identity))
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        for n in range(live):  # one event per call: each its own ENTER
            began = time.monotonic()
            list(identity.ingest([person(run, n, "live")]))
            time.sleep(max(0.0, 1 / rate - (time.monotonic() - began)))
        delays = read_delays(bootstrap, topic, live)
        runner.stop()
        thread.join(60)
    delays.sort()
    return {"entries": live, "rate": rate, "received": len(delays),
            "p50_ms": statistics.median(delays) * 1000, "p95_ms": delays[int(len(delays) * 0.95) - 1] * 1000,
            "max_ms": delays[-1] * 1000}


def read_delays(bootstrap: str, topic: str, count: int, timeout: float = 300) -> list[float]:
    """Per message, the broker's append time minus the change's `at` (the ENTER logged in Neo4j)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"latency-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    delays: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(delays) < count and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=1.0):
                if message.error() is not None:
                    continue
                value = json.loads(message.value() or b"{}")
                _, appended_ms = message.timestamp()
                entered = datetime.fromisoformat(value["timestamp"].replace("Z", "+00:00")).timestamp()
                delays[value["messageId"]] = appended_ms / 1000 - entered
    finally:
        consumer.close()
    return list(delays.values())


def run(args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    figures: dict[str, Any] = {"settings": dict(vars(args))}
    with TemporaryDirectory(prefix="bench-destinations-") as scratch_dir:
        scratch = Path(scratch_dir)
        target = kafka_target(local=LocalKafka.on_free_ports(scratch / "kafka"))
        try:
            with bench_neo4j(scratch / "neo4j") as neo4j, bench_server(neo4j, 1, args.server_arg) as server:
                log(f"Kafka at {target.bootstrap} ({target.origin})")
                ingested = ingest_windowed(server.channel, [[Person(tag, n, "bulk") for n in range(k, args.members, 2)]
                                                            for k in range(2)], 500)
                log(f"members: {dict(ingested.statuses)} in {ingested.seconds:.1f} s")
                name = define_segment(server, tag, "bulk")
                wait_logged(server, name, args.members)
                figures["throughput"] = throughput(server, target.bootstrap, name, args.members, args.rounds, scratch)
                figures["latency"] = latency(server, target.bootstrap, tag, args.live, args.rate, scratch / "state-live",
                                             args.batch_seconds)
        finally:
            target.release()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=5000, help="changes delivered per throughput round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--live", type=int, default=300, help="people entering one by one for the latency")
    parser.add_argument("--rate", type=float, default=20.0, help="live entries a second")
    parser.add_argument("--batch-seconds", type=float, default=None,
                        help="the live Kafka destination's batch_seconds (default: the destination's, 0.5)")
    parser.add_argument("--server-arg", action="append", default=[])
    args = parser.parse_args()
    figures = run(args)
    speed, delay = figures["throughput"], figures["latency"]
    print(f"to a file: {speed['file_per_s']:.0f} changes/s; to Kafka: {speed['kafka_per_s']:.0f} changes/s "
          f"(Kafka / file {speed['kafka_to_file']:.2f}, medians of {args.rounds} rounds)")
    print(f"ENTER in Neo4j to the broker's ack, {delay['received']} of {delay['entries']} live entries at "
          f"{delay['rate']:.0f}/s: p50 {delay['p50_ms']:.0f} ms, p95 {delay['p95_ms']:.0f} ms, max {delay['max_ms']:.0f} ms")
    print(f"figures saved to {save('destinations', figures)}")


if __name__ == "__main__":
    main()
