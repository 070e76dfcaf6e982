"""Domain values: identifiers, touchpoints and what ingest says about them."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # consent.py reads ValueWarning from here
    from server.identity.consent import ConsentState


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
    # What the transport could not even decode (e.g. an impossible timestamp), for the ack.
    problem: str = ""
    # The rejection code of the problem (a quarantine code; empty: bad_timestamp).
    problem_code: str = ""
    # When the service first received it (None: now). A replay from quarantine sets it, so
    # that an event without occurred_at keeps the time it first arrived.
    received_at: datetime | None = None
    # Identifiers the service added in front of those the client sent (an imported record's
    # own `record` identifier): they do not count against the client's limit.
    added_identifiers: int = 0
    # Consent categories as sent -> the choice (true/false expected; anything else is warned of).
    consent: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ValueWarning:
    """One value of an event that was not used as sent, and why (for the ack)."""

    field: str  # identifiers.<type>, traits.<key>, properties.<key>, type, source
    value: str  # as sent, control characters escaped, cut short
    reason: str


@dataclass(frozen=True)
class InvalidValue:
    """An identifier kept on its touchpoint although it could not be used: it links nothing,
    and a replay looks at it again under the configuration of the day."""

    type: str  # as sent, after aliases
    value: str  # as sent, trimmed, control characters escaped, cut at the length limit
    reason: str
    # False when no configuration can make it valid (control characters, cut short, empty):
    # a replay leaves it alone.
    replayable: bool = True


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
    invalid: tuple[InvalidValue, ...] = ()
    # Consent statements: category -> granted (True) or denied (False), at occurred_at, by source.
    consent: Mapping[str, bool] = field(default_factory=dict)
    # Statements of categories that are not configured, by the name sent: kept, not used.
    consent_unknown: Mapping[str, bool] = field(default_factory=dict)


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
    warnings: tuple[ValueWarning, ...] = ()
    code: str = ""  # why it was rejected, as a stable code (see ingest.RejectionCode)


ProfileKey = Identifier | str  # an identifier the profile holds, or a (current or merged) profile id


@dataclass(frozen=True)
class HeldIdentifier:
    identifier: Identifier
    first_seen: datetime | None
    last_seen: datetime | None


@dataclass(frozen=True)
class GoldenTraitView:
    key: str
    value: str
    source: str
    observed_at: datetime


@dataclass(frozen=True)
class ProfileView:
    """A unified profile as lookups serve it."""

    profile_id: str
    identifiers: tuple[HeldIdentifier, ...]
    merged_profile_ids: tuple[str, ...]
    traits: tuple[GoldenTraitView, ...]
    touchpoints_by_channel: Mapping[str, int]
    first_seen: datetime | None
    last_seen: datetime | None
    segments: tuple[str, ...] = ()
    consent: tuple[ConsentState, ...] = ()


@dataclass(frozen=True)
class LookupMiss:
    reason: str


@dataclass(frozen=True)
class GraphIdentifier:
    identifier: Identifier
    member: bool
    flags: tuple[str, ...]


@dataclass(frozen=True)
class GraphLink:
    """An edge of the identity graph with the evidence that made or refused it."""

    a: Identifier
    b: Identifier
    accepted: bool
    reason: str
    times_seen: int
    first_seen: datetime | None
    last_seen: datetime | None
    event_ids: tuple[str, ...]
    # linked (seen together), probabilistic, confirmed (by a reviewer), possible, rejected
    kind: str = "linked"
    probability: float | None = None
    model_version: str = ""
    fields: tuple[tuple[str, str, float], ...] = ()  # (field, level, weight)


@dataclass(frozen=True)
class KeptInvalid:
    """An invalid value as GetIdentityGraph shows it: with the touchpoint that carried it."""

    value: InvalidValue
    event_id: str
    occurred_at: datetime | None


@dataclass(frozen=True)
class IdentityGraphView:
    profile_id: str
    identifiers: tuple[GraphIdentifier, ...]
    links: tuple[GraphLink, ...]
    invalid_values: tuple[KeptInvalid, ...] = ()
    consent: tuple[ConsentState, ...] = ()


@dataclass(frozen=True)
class JourneyFilter:
    since: datetime | None = None
    until: datetime | None = None
    types: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    descending: bool = False
    after: tuple[datetime, str] | None = None  # the cursor: (occurred_at, event_id) of the last step
    limit: int = 0


@dataclass(frozen=True)
class Forgotten:
    profile_id: str
    identifiers: int
    touchpoints: int


FLAGGED_LABEL = "Flagged"  # beside :Identifier on every flagged one (junk, shared), for Browser's style
# The graph's own labels (cypher/schema.cypher and the queries): no identifier type may take one.
GRAPH_LABELS = frozenset({
    "Identifier", "Profile", "Touchpoint", FLAGGED_LABEL, "HasInvalid", "Suppressed", "Matchable", "LinkPending",
    "LinkageModel", "Segment", "SegmentVersion", "SegmentLog", "SegmentChange", "SegmentsDirty", "Rejected",
    "AuditEntry", "StatesConsent", "ConsentUnread",
})


def identifier_type_label(type_name: str) -> str:
    """The label ingest writes beside :Identifier for its type (`user_id` is :UserId), so that
    Neo4j Browser, which styles by label, can colour identifiers by type."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", type_name) if part)
