"""The local Kafka broker (localkafka) carries records end to end: idempotent producer to consumer, in order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # where the stubs declare it; .admin re-exports it implicitly only


COUNT = 100


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    # one partition: Kafka orders records within a partition only
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], operation_timeout=30)
    futures[topic].result(timeout=30)


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    failures: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err)

    for number, value in enumerate(values):
        producer.produce(topic, key=str(number).encode(), value=value, on_delivery=delivered)
    assert producer.flush(30) == 0, "records still undelivered after 30 s"
    assert failures == []


def _consume(bootstrap: str, topic: str, count: int) -> list[Message]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    received: list[Message] = []
    try:
        while len(received) < count:
            batch = consumer.consume(num_messages=count - len(received), timeout=30)
            assert batch, f"no records within 30 s; {len(received)} of {count} received"
            for msg in batch:
                assert msg.error() is None, msg.error()
                received.append(msg)
    finally:
        consumer.close()
    return received


def test_idempotent_producer_to_consumer_in_order(kafka_bootstrap: str) -> None:
    topic = f"localkafka-{uuid.uuid4().hex[:12]}"
    values = [f"record {number}: {uuid.uuid4()}".encode() for number in range(COUNT)]
    _create_topic(kafka_bootstrap, topic)
    _produce(kafka_bootstrap, topic, values)

    received = _consume(kafka_bootstrap, topic, COUNT)

    assert [msg.value() for msg in received] == values
    assert [msg.key() for msg in received] == [str(number).encode() for number in range(COUNT)]
    # idempotence: each record written once, at consecutive offsets from the topic's start
    assert [msg.offset() for msg in received] == list(range(COUNT))
