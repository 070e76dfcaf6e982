"""The Kafka sink: one message per change, keyed by profile id, acknowledged by the broker before
the position moves.

The producer is idempotent with acks=all: a broker that fails over neither loses nor repeats a
message it acknowledged, and the messages of one key (one profile) stay in order in their
partition. The value is the change as the tracking spec's `track` ("Audience Entered" or
"Audience Exited", see audience_messages), whose `messageId` is stable per change, so that a
batch sent again after a crash or a failed attempt repeats only ids a consumer has seen.

A batch the broker did not acknowledge in full within timeout_seconds (librdkafka's
message.timeout.ms) is sent again, with backoff, up to max_attempts; then it is dead-lettered.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from activation.audience_messages import audience_changes, audience_key_of, track
from activation.backoff import backoff_delay
from activation.delivery_metrics import DELIVERY
from activation.destinations import Destination, Kafka
from activation.durable import append_durably
from activation.sinks import Batch, Outcome

log = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
# How long one wait for acknowledgements lasts before the stop flag is looked at again.
FLUSH_SLICE_S = 0.2


class Producer(Protocol):
    """The part of confluent_kafka.Producer the sink uses."""

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Callable[[Any, Any], None]) -> None:
        """Queues one message; BufferError when the queue is full."""

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


def producer_settings(destination: Destination, kafka: Kafka) -> dict[str, Any]:
    return {
        **kafka.producer,
        "bootstrap.servers": kafka.bootstrap or os.environ.get("KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP),
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": int(kafka.timeout_seconds * 1000),
        "client.id": kafka.producer.get("client.id", f"identity-deliver-{destination.name}"),
    }


def _confluent_producer(settings: Mapping[str, Any]) -> Producer:
    from confluent_kafka import Producer as ConfluentProducer  # imported where used: only Kafka destinations need it

    return cast(Producer, ConfluentProducer(dict(settings)))


class KafkaSender:
    """Produces each batch, waits for the broker's acknowledgements, retries, dead-letters."""

    def __init__(self, destination: Destination, kafka: Kafka,
                 producer: Callable[[Mapping[str, Any]], Producer] = _confluent_producer,
                 jitter: Callable[[], float] = random.random) -> None:
        self.destination = destination
        self.kafka = kafka
        self.audience_key = kafka.audience_key or audience_key_of(destination.segment)
        self._producer: Producer | None = producer(producer_settings(destination, kafka))
        self._jitter = jitter

    def resume_position(self, saved: int) -> int:
        return saved

    def close(self) -> None:
        """Lets what is in flight be acknowledged for a moment, then lets the producer go: its
        threads would otherwise reconnect to a broker for as long as the runner object lives."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(1.0)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            raise RuntimeError(f"destination {self.destination.name}: the Kafka producer was closed")
        return self._producer

    def messages(self, batch: Batch) -> list[tuple[bytes, bytes]]:
        """(key, value) per change: the profile id, and the change as a `track`."""
        return [(change.change.profile_id.encode("utf-8"),
                 json.dumps(track(change, self.audience_key), ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
                for change in audience_changes(batch)]

    def deliver(self, batch: Batch, stop: threading.Event) -> Outcome:
        messages = self.messages(batch)
        attempt = 1
        while (error := self._send(messages, stop)) is not None:
            if stop.is_set():
                return Outcome.ABANDONED
            if attempt >= self.kafka.max_attempts:
                self._dead_letter(batch, messages, attempt, error)
                return Outcome.DEAD_LETTERED
            delay = backoff_delay(attempt, self.kafka.backoff_seconds, self.kafka.max_backoff_seconds,
                                  jitter=self._jitter)
            DELIVERY.retries.labels(self.destination.name).inc()
            log.warning("destination %s: batch %s, attempt %d of %d failed (%s); next in %.2f s",
                        self.destination.name, batch.idempotency_key, attempt, self.kafka.max_attempts, error, delay)
            if stop.wait(delay):
                return Outcome.ABANDONED
            attempt += 1
        return Outcome.DELIVERED

    def _send(self, messages: list[tuple[bytes, bytes]], stop: threading.Event) -> str | None:
        """Produces the messages and waits until the broker acknowledged or refused each; the
        first refusal, or None when every one was acknowledged."""
        failures: list[str] = []

        def acknowledged(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        for key, value in messages:
            while True:
                try:
                    self.producer.produce(self.kafka.topic, value=value, key=key, on_delivery=acknowledged)
                    break
                except BufferError:  # the producer's queue is full: let acknowledgements drain it
                    self.producer.poll(FLUSH_SLICE_S)
        while self.producer.flush(FLUSH_SLICE_S) > 0:
            if stop.is_set():  # what is in flight is acknowledged or times out by itself; resent next run
                return "stopping"
        return failures[0] if failures else None

    def _dead_letter(self, batch: Batch, messages: list[tuple[bytes, bytes]], attempts: int, error: str) -> None:
        record = {
            "destination": batch.destination, "segment": batch.segment, "idempotency_key": batch.idempotency_key,
            "first_position": batch.first_position, "last_position": batch.last_position, "attempts": attempts,
            "error": error, "dead_lettered_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "topic": self.kafka.topic,
            "messages": [{"key": key.decode("utf-8"), "value": json.loads(value)} for key, value in messages],
        }
        append_durably(self.kafka.dead_letter, json.dumps(record, ensure_ascii=False) + "\n")
        log.error("destination %s: batch %s dead-lettered to %s after %d attempt(s): %s", self.destination.name,
                  batch.idempotency_key, self.kafka.dead_letter, attempts, error)
