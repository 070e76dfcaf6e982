"""Quarantine: every rejected event and record, kept with its reason and payload for replay.

A CDP promises that nothing sent to it is lost. An event that cannot be accepted (no usable
identifier, an impossible timestamp, too large) is kept as a `Rejected` node with the
payload as received, its reason, source and time, until the retention setting expires it.
Its id is a digest of kind and payload, so a redelivered reject is one node with a higher
attempt count, and a replay that fails again updates the node it came from.

Forgotten people are never kept in clear: a reject that carries a suppressed identifier is
not kept at all (replaying it could only be refused again), and forgetting a person deletes
the quarantined items that carry any of their identifiers. Each item stores the salted
hashes of its identifiers for that purpose, never a second copy of the values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from server.graph import Graph, Tx, epoch_millis
from server.identity.values import EventInput, Identifier
from server.identity.normalize import InvalidIdentifier, normalize_identifier
from server.identity.identity_config import IdentityRules
from server.identity.stitching import suppression_hash

EVENT = "event"
RECORD = "record"
# A payload above this many bytes (JSON) is not kept: the item is listed, never replayed.
MAX_PAYLOAD_BYTES = 1 << 20

# Why an event or record was rejected, as stable codes clients and filters use.
NO_VALID_IDENTIFIER = "no_valid_identifier"
UNKNOWN_IDENTIFIER_TYPE = "unknown_identifier_type"
TOO_MANY_IDENTIFIERS = "too_many_identifiers"
BAD_TIMESTAMP = "bad_timestamp"
NO_TYPE = "no_type"
BAD_EVENT_ID = "bad_event_id"
BAD_CHANNEL = "bad_channel"
TOO_LARGE = "too_large"
BAD_RECORD = "bad_record"
SUPPRESSED = "suppressed"  # refused, never kept: the person was forgotten
SOURCE_NOT_ALLOWED = "source_not_allowed"  # refused, never kept: the caller's token may not write as that source
NO_USER_OR_ANONYMOUS_ID = "no_user_or_anonymous_id"  # a tracking-spec message (HTTP collector) without either
CODES = (NO_VALID_IDENTIFIER, UNKNOWN_IDENTIFIER_TYPE, TOO_MANY_IDENTIFIERS, BAD_TIMESTAMP, NO_TYPE, BAD_EVENT_ID,
         BAD_CHANNEL, TOO_LARGE, BAD_RECORD, NO_USER_OR_ANONYMOUS_ID)


@dataclass(frozen=True)
class Rejection:
    """One rejected event or record, ready to keep."""

    kind: str  # EVENT or RECORD
    subject_id: str  # event_id or record_id as sent
    source: str
    code: str
    reason: str
    payload: Mapping[str, Any]
    identifiers: tuple[tuple[str, str], ...]

    @property
    def rejection_id(self) -> str:
        return rejection_id(self.kind, self.payload)


def rejection_id(kind: str, payload: Mapping[str, Any]) -> str:
    """Stable over redeliveries and replays: the time a payload was received is not part of it."""
    content = {k: v for k, v in payload.items() if k != "received_at"}
    text = json.dumps([kind, content], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def event_payload(event: EventInput, received_at: datetime) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None,
        "received_at": (event.received_at or received_at).isoformat(),
        "source": event.source,
        "channel": event.channel,
        "type": event.type,
        "identifiers": [list(pair) for pair in event.identifiers],
        "traits": dict(event.traits),
        "properties": dict(event.properties),
        "problem": event.problem,
        "problem_code": event.problem_code,
        "consent": dict(event.consent),
    }


def event_from_payload(payload: Mapping[str, Any]) -> EventInput:
    return EventInput(
        event_id=payload["event_id"],
        occurred_at=_time(payload.get("occurred_at")),
        source=payload["source"],
        channel=payload["channel"],
        type=payload["type"],
        identifiers=tuple((t, v) for t, v in payload["identifiers"]),
        traits=dict(payload["traits"]),
        properties=dict(payload["properties"]),
        problem=payload.get("problem", ""),
        problem_code=payload.get("problem_code", ""),
        received_at=_time(payload.get("received_at")),
        consent=dict(payload.get("consent") or {}),
    )


def event_rejection(event: EventInput, code: str, reason: str, received_at: datetime) -> Rejection:
    return Rejection(EVENT, event.event_id, event.source.strip(), code, reason, event_payload(event, received_at),
                     event.identifiers)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def rows(rules: IdentityRules, salt: str, rejections: list[Rejection], now: datetime) -> list[dict[str, Any]]:
    """Rows for quarantine/keep, one per distinct rejection, sorted (the lock order)."""
    kept: dict[str, dict[str, Any]] = {}
    for rejection in rejections:
        payload = json.dumps(rejection.payload, sort_keys=True, ensure_ascii=False)
        dropped = len(payload.encode()) > MAX_PAYLOAD_BYTES
        kept[rejection.rejection_id] = {
            "id": rejection.rejection_id, "kind": rejection.kind, "subject_id": rejection.subject_id[:256],
            "source": rejection.source[:256], "code": rejection.code,
            "reason": rejection.reason + (" (the payload was too large to keep)" if dropped else ""),
            "payload": None if dropped else payload,
            "hashes": identifier_hashes(rules, salt, rejection.identifiers),
        }
    return [kept[key] for key in sorted(kept)]


def identifier_hashes(rules: IdentityRules, salt: str, identifiers: tuple[tuple[str, str], ...]) -> list[str]:
    """Salted hashes of the identifiers as ingest would store them (or as sent, for those it
    cannot use): what forgetting a person matches quarantined items by."""
    return sorted({identifier_hash(rules, salt, type_name, value) for type_name, value in identifiers})


def identifier_hash(rules: IdentityRules, salt: str, type_name: str, value: str) -> str:
    """The salted hash of an identifier as sent, normalised as ingest stores it: the hash
    forgetting keeps, so quarantine and audit entries naming it can be found by it."""
    return suppression_hash(salt, stored_form(rules, type_name, value))


def stored_form(rules: IdentityRules, type_name: str, value: str) -> Identifier:
    """The identifier as ingest stores it: normalised, or as kept when it cannot be used."""
    try:
        return normalize_identifier(rules, type_name, value)
    except InvalidIdentifier as exc:
        return Identifier(exc.kept.type, exc.kept.value)


def keep(tx: Tx, rows: list[dict[str, Any]], now: datetime) -> None:
    if rows:
        tx.run("quarantine/keep", rows=rows, now=now)


def keep_now(graph: Graph, rows: list[dict[str, Any]]) -> None:
    if rows:
        graph.transaction("quarantine", lambda tx: keep(tx, rows, datetime.now(UTC)))


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RejectionFilter:
    codes: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    source: str = ""
    kind: str = ""  # EVENT, RECORD, or "" for both

    def params(self) -> dict[str, Any]:
        return {"codes": list(self.codes) or None, "since": as_offset(self.since), "until": as_offset(self.until),
                "source": self.source or None, "kind": self.kind or None}


def as_offset(moment: datetime | None) -> datetime | None:
    """The time with a UTC offset, as quarantine stores them: Cypher orders a time with a zone
    id (`[UTC]`) apart from the same instant with an offset, so equal times would not match."""
    return moment.astimezone(UTC) if moment else None


@dataclass(frozen=True)
class RejectedView:
    rejection_id: str
    kind: str
    code: str
    reason: str
    source: str
    subject_id: str
    first_rejected_at: datetime
    last_rejected_at: datetime
    attempts: int
    payload: str | None = field(repr=False, default=None)


def rejected_view(record: Mapping[str, Any]) -> RejectedView:
    return RejectedView(record["id"], record["kind"], record["code"], record["reason"], record["source"],
                        record["subject_id"], record["first_rejected_at"].to_native().astimezone(UTC),
                        record["last_rejected_at"].to_native().astimezone(UTC), int(record["attempts"]), record["payload"])


def epoch(moment: datetime | None) -> int | None:
    return epoch_millis(moment) if moment else None
