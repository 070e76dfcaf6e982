"""What a destination delivers (a Batch), what a delivery ends in (an Outcome), and the Sink
protocol that webhooks and files implement, so that the runner knows neither."""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from identity.v1 import segment_service_pb2 as seg

from client.messages import SegmentChange

KIND_NAMES = {seg.CHANGE_KIND_ENTER: "enter", seg.CHANGE_KIND_EXIT: "exit"}


class DeliveryError(Exception):
    """A destination that cannot go on: its state, its file, or its change feed is unusable."""


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead-lettered"
    # The runner is stopping; the batch is delivered again after the restart.
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class Batch:
    """Consecutive changes of one segment for one destination, delivered (or dead-lettered) as one."""

    destination: str
    segment: str
    changes: tuple[SegmentChange, ...]
    # by profile id, the (type, value) identifiers of the types the destination allows
    identifiers: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # the positions the batch spans when some of its changes were withheld (requires_consent):
    # its key stays that of the whole batch, whatever a retry withholds
    span: tuple[int, int] | None = None

    @property
    def first_position(self) -> int:
        return self.span[0] if self.span else int(self.changes[0].position)

    @property
    def last_position(self) -> int:
        return self.span[1] if self.span else int(self.changes[-1].position)

    @property
    def idempotency_key(self) -> str:
        """The same on every retry of the batch, so that a receiver can drop a repeat."""
        return f"{self.destination}:{self.segment}:{self.first_position}-{self.last_position}"

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        changes = [{key: value for key, value in self.record(c).items() if key != "segment"} for c in self.changes]
        return {"destination": self.destination, "segment": self.segment, "changes": changes}

    def record(self, change: SegmentChange) -> dict[str, Any]:
        """A change as JSON, with its profile's allowed identifiers when the destination allows any."""
        record = change_record(change)
        if self.identifiers:
            record["identifiers"] = [{"type": kind, "value": value}
                                     for kind, value in self.identifiers.get(change.profile_id, ())]
        return record


def change_record(change: SegmentChange) -> dict[str, Any]:
    """A change as JSON: kind "enter" or "exit", at in ISO-8601 (None when the server sent none)."""
    return {
        "position": int(change.position),
        "segment": change.segment,
        "profile_id": change.profile_id,
        "kind": KIND_NAMES.get(change.kind, "unspecified"),
        "at": change.at.ToJsonString() if change.HasField("at") else None,
        "cause": change.cause,
    }


class Sink(Protocol):
    def resume_position(self, saved: int) -> int:
        """The position to watch after, given the one saved."""

    def deliver(self, batch: Batch, stop: threading.Event) -> Outcome:
        """Delivers the batch, or dead-letters it, or abandons it once stop is set."""
