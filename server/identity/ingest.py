"""Ingest: validates events, writes them as touchpoints and identifiers, says what happened.

An ack says ACCEPTED only after its transaction committed. Writes MERGE on event_id, so a
redelivered event (or a transaction the driver retries) changes nothing and acks DUPLICATE.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from server.errors import InvalidArgument
from server.graph import Graph
from server.identity.model import Ack, AckStatus, Channel, EventInput, Touchpoint
from server.identity.normalize import normalize_identifier, normalize_traits
from server.identity.rules import IdentityRules

MAX_EVENT_ID_LENGTH = 256
# Clocks drift; an event from further in the future than this is a bad timestamp.
MAX_CLOCK_SKEW = timedelta(days=1)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def validate_event(rules: IdentityRules, event: EventInput, received_at: datetime) -> Touchpoint:
    """Turns a client's event into a touchpoint, or raises InvalidArgument naming the problem."""
    event_id = event.event_id.strip()
    if not event_id:
        raise InvalidArgument("event_id is empty")
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        raise InvalidArgument(f"event_id is longer than {MAX_EVENT_ID_LENGTH} characters")
    occurred_at = event.occurred_at or received_at
    if occurred_at < EARLIEST or occurred_at > received_at + MAX_CLOCK_SKEW:
        raise InvalidArgument(f"occurred_at {occurred_at.isoformat()} is before 1970 or in the future")
    if not event.identifiers:
        raise InvalidArgument("the event carries no identifiers")
    identifiers = tuple(sorted({normalize_identifier(rules, t, v) for t, v in event.identifiers}))
    if not event.type.strip():
        raise InvalidArgument("type is empty (e.g. page_view, identify, purchase)")
    return Touchpoint(
        event_id=event_id,
        occurred_at=occurred_at,
        source=event.source.strip() or "unknown",
        channel=_channel(event.channel),
        type=event.type.strip(),
        identifiers=identifiers,
        traits=normalize_traits(event.traits),
        properties=dict(event.properties),
    )


def _channel(name: str) -> Channel:
    try:
        return Channel(name or Channel.ONLINE.value)
    except ValueError:
        raise InvalidArgument(f"channel {name!r} is neither online nor offline") from None


class Ingestor:
    """Writes batches of events; one batch is one transaction."""

    def __init__(self, graph: Graph, rules: IdentityRules) -> None:
        self.graph = graph
        self.rules = rules

    def ingest(self, events: Sequence[EventInput]) -> list[Ack]:
        """Acks every event in the order given, after the valid ones are committed."""
        received_at = datetime.now(UTC)
        acks: dict[int, Ack] = {}
        fresh: dict[str, tuple[int, Touchpoint]] = {}
        for position, event in enumerate(events):
            try:
                touchpoint = validate_event(self.rules, event, received_at)
            except InvalidArgument as exc:
                acks[position] = Ack(event.event_id, AckStatus.REJECTED, reason=str(exc))
                continue
            if touchpoint.event_id in fresh:
                acks[position] = Ack(touchpoint.event_id, AckStatus.DUPLICATE)
                continue
            fresh[touchpoint.event_id] = (position, touchpoint)
        for event_id, created in self._write([t for _, t in fresh.values()]).items():
            position, _ = fresh[event_id]
            acks[position] = Ack(event_id, AckStatus.ACCEPTED if created else AckStatus.DUPLICATE)
        return [acks[position] for position in range(len(events))]

    def _write(self, touchpoints: list[Touchpoint]) -> dict[str, bool]:
        if not touchpoints:
            return {}
        batch = uuid.uuid4().hex
        records = self.graph.write("ingest/record_touchpoints", batch=batch, rows=[_row(t) for t in touchpoints])
        return {record["event_id"]: record["created"] for record in records}


def _row(touchpoint: Touchpoint) -> dict[str, Any]:
    return {
        "event_id": touchpoint.event_id,
        "occurred_at": touchpoint.occurred_at,
        "source": touchpoint.source,
        "channel": touchpoint.channel.value,
        "type": touchpoint.type,
        "traits": json.dumps(touchpoint.traits, sort_keys=True),
        "properties": json.dumps(touchpoint.properties, sort_keys=True),
        "identifiers": [{"type": i.type, "value": i.value} for i in touchpoint.identifiers],
    }
