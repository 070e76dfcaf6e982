"""Journeys: a profile's touchpoints across all its identifiers, in time order.

Streamed from one Neo4j query whose records the driver fetches in batches, so the server
holds a constant number of touchpoints however long the journey is. Every step carries a
cursor (its time and event id) from which a later request resumes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime

from server.errors import InvalidArgument
from server.graph import Graph, to_datetime
from server.identity.values import Channel, Identifier, JourneyFilter, Touchpoint

NO_LIMIT = 2**62


def encode_cursor(occurred_at: datetime, event_id: str) -> str:
    raw = json.dumps([occurred_at.isoformat(), event_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        moment, event_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(moment), str(event_id)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"cursor {cursor[:40]!r} is not a cursor this service gave out") from exc


def traverse(graph: Graph, profile_id: str, filters: JourneyFilter) -> Iterator[tuple[Touchpoint, str]]:
    """Yields (touchpoint, cursor) pairs of the profile in the filter's order."""
    after_time, after_id = filters.after or (None, None)
    query = "journeys/descending" if filters.descending else "journeys/ascending"
    records = graph.stream(
        query,
        profile_id=profile_id,
        since=filters.since,
        until=filters.until,
        types=list(filters.types),
        channels=list(filters.channels),
        sources=list(filters.sources),
        after_time=after_time,
        after_id=after_id,
        limit=filters.limit or NO_LIMIT,
    )
    for record in records:
        occurred_at = to_datetime(record["occurred_at"])
        assert occurred_at is not None
        touchpoint = Touchpoint(
            event_id=record["event_id"],
            occurred_at=occurred_at,
            source=record["source"],
            channel=Channel(record["channel"]),
            type=record["type"],
            identifiers=tuple(sorted(Identifier(i["type"], i["value"]) for i in record["identifiers"])),
            properties=json.loads(record["properties"] or "{}"),
        )
        yield touchpoint, encode_cursor(occurred_at, touchpoint.event_id)
