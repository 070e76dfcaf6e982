"""Domain values: identifiers, touchpoints and what ingest says about them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, order=True)
class Identifier:
    """One identifier of a person, after normalisation (type is a configured type name)."""

    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


class Channel(enum.Enum):
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True)
class EventInput:
    """An event as a client sent it: nothing validated or normalised yet."""

    event_id: str
    occurred_at: datetime | None
    source: str
    channel: str
    type: str
    identifiers: tuple[tuple[str, str], ...]
    traits: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Touchpoint:
    """A validated event: one thing a person did, seen by one source, with normalised identifiers."""

    event_id: str
    occurred_at: datetime
    source: str
    channel: Channel
    type: str
    identifiers: tuple[Identifier, ...]
    traits: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)


class AckStatus(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Ack:
    """What ingest says about one event: committed, already known, or refused and why."""

    event_id: str
    status: AckStatus
    profile_id: str = ""
    reason: str = ""
