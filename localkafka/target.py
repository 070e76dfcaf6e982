"""Chooses the Kafka to use: an existing cluster (KAFKA_BOOTSTRAP) or the local broker."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from localkafka.launcher import LocalKafka


@dataclass(frozen=True)
class KafkaTarget:
    """How to reach one Kafka cluster, and how to release it when done."""

    bootstrap: str  # bootstrap.servers, e.g. "127.0.0.1:9092"
    origin: str  # "env" or "local"
    release: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)


def kafka_target(start_local: bool = True, local: LocalKafka | None = None) -> KafkaTarget:
    """Returns the Kafka to use: KAFKA_BOOTSTRAP's cluster if set, else the local broker, started
    here if `start_local`. Its `release` stops the local broker only if this call started it, so a
    broker that was already running (`make kafka`, another session) outlives the caller."""
    if os.environ.get("KAFKA_BOOTSTRAP"):
        return KafkaTarget(bootstrap=os.environ["KAFKA_BOOTSTRAP"], origin="env")
    broker = local or LocalKafka()
    if not (start_local and broker.start()):
        return KafkaTarget(bootstrap=broker.bootstrap, origin="local")

    def release() -> None:
        broker.stop()

    return KafkaTarget(bootstrap=broker.bootstrap, origin="local", release=release)
