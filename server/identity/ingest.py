"""Ingest: validates events, writes them as touchpoints and identifiers, says what happened.

An ack says ACCEPTED only after its transaction committed. Writes MERGE on event_id, so a
redelivered event (or a transaction the driver retries) changes nothing and acks DUPLICATE.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from server.errors import InvalidArgument
from server.graph import Graph, Tx, epoch_millis
from server.identity.linkage.attributes import person_attributes
from server.identity.linkage.rules import LinkageRules
from server.identity.linking import Subject, describe_rows
from server.identity.model import Ack, AckStatus, Channel, EventInput, Identifier, Touchpoint
from server.identity.normalize import normalize_identifier, normalize_traits
from server.identity.rules import IdentityRules
from server.identity.profiles import split_profile
from server.identity.stitching import SHARED, StitchPlan, primary_identifier, stitch, suppression_hash

MAX_EVENT_ID_LENGTH = 256
# Clocks drift; an event from further in the future than this is a bad timestamp.
MAX_CLOCK_SKEW = timedelta(days=1)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def validate_event(rules: IdentityRules, event: EventInput, received_at: datetime) -> Touchpoint:
    """Turns a client's event into a touchpoint, or raises InvalidArgument naming the problem."""
    if event.problem:
        raise InvalidArgument(event.problem)
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
    if len(event.identifiers) > rules.max_identifiers_per_event:
        raise InvalidArgument(f"the event carries {len(event.identifiers)} identifiers "
                              f"(at most {rules.max_identifiers_per_event})")
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
    """Writes batches of events; one batch is one transaction, stitching included."""

    def __init__(self, graph: Graph, rules: IdentityRules, suppression_salt: str,
                 linkage: LinkageRules | None = None) -> None:
        self.graph = graph
        self.rules = rules
        self.salt = suppression_salt
        self.linkage = linkage

    def ingest(self, events: Sequence[EventInput], online_linkage: bool = True) -> list[Ack]:
        """Acks every event in the order given, after the valid ones are committed.

        With online_linkage, an event whose traits describe a person (names, address, date of
        birth) makes its primary identifier Matchable and queues it for the linkage worker,
        in the same transaction; imports link their records themselves."""
        linkage = self.linkage if online_linkage else None
        received_at = datetime.now(UTC)
        acks: dict[int, Ack] = {}
        fresh: dict[str, tuple[int, Touchpoint]] = {}
        repeated: list[tuple[int, str]] = []
        for position, event in enumerate(events):
            try:
                touchpoint = validate_event(self.rules, event, received_at)
            except InvalidArgument as exc:
                acks[position] = Ack(event.event_id, AckStatus.REJECTED, reason=str(exc))
                continue
            if touchpoint.event_id in fresh:
                repeated.append((position, touchpoint.event_id))
                continue
            fresh[touchpoint.event_id] = (position, touchpoint)
        if fresh:
            batch = [t for _, t in fresh.values()]
            outcome = self.graph.transaction("ingest", lambda tx: write_batch(tx, self.rules, self.salt, batch, received_at, linkage))
            for event_id, (position, _) in fresh.items():
                if event_id in outcome.suppressed:
                    acks[position] = Ack(event_id, AckStatus.REJECTED, reason=outcome.suppressed[event_id])
                    continue
                status = AckStatus.ACCEPTED if event_id in outcome.created else AckStatus.DUPLICATE
                acks[position] = Ack(event_id, status, outcome.profiles.get(event_id) or "")
            for position, event_id in repeated:
                acks[position] = Ack(event_id, AckStatus.DUPLICATE, outcome.profiles.get(event_id) or "")
        return [acks[position] for position in range(len(events))]


@dataclass(frozen=True)
class BatchOutcome:
    created: frozenset[str]
    profiles: dict[str, str | None]
    suppressed: dict[str, str]


def write_batch(tx: Tx, rules: IdentityRules, salt: str, touchpoints: list[Touchpoint], now: datetime,
                linkage: LinkageRules | None = None) -> BatchOutcome:
    """Records the touchpoints, stitches the new ones, and reads back every event's profile.

    Events that carry an identifier of a forgotten person are refused, and nothing of them
    is written.
    """
    suppressed = suppressed_events(tx, salt, touchpoints)
    touchpoints = [t for t in touchpoints if t.event_id not in suppressed]
    records = tx.run("ingest/record_touchpoints", batch=uuid.uuid4().hex, rows=[_row(rules, t) for t in touchpoints])
    created = frozenset(r["event_id"] for r in records if r["created"])
    new = [t for t in touchpoints if t.event_id in created]
    if new:
        identifiers, junk = _identifier_rows(rules, new)
        tx.run("ingest/record_identifiers", rows=identifiers)
        if junk:
            tx.run("ingest/record_junk", rows=junk)
        tx.run("ingest/record_carried", rows=[_carried_row(rules, t) for t in new])
    plan = stitch(tx, rules, new, now)
    split = split_shared(tx, rules, plan, now)
    if linkage is not None:
        queue_for_linkage(tx, linkage, new, plan, now)
    profiles: dict[str, str | None] = dict(plan.touchpoint_profiles)
    known = [t.event_id for t in touchpoints if split or t.event_id not in created]  # a split moves events
    if known:
        for record in tx.run("ingest/profiles_of_events", event_ids=known):
            profiles[record["event_id"]] = record["profile_id"]
    return BatchOutcome(created, profiles, suppressed)


def queue_for_linkage(tx: Tx, linkage: LinkageRules, touchpoints: list[Touchpoint], plan: StitchPlan,
                      now: datetime) -> None:
    """Describes the primary identifiers of events that carry a person's attributes and queues
    them for the linkage worker (the latest event of the batch wins for each identifier)."""
    subjects: dict[Identifier, Subject] = {}
    for touchpoint in sorted(touchpoints, key=lambda t: t.occurred_at):
        primary = plan.primaries.get(touchpoint.event_id)
        if primary is None or not touchpoint.traits:
            continue
        attributes = person_attributes(touchpoint.traits, linkage)
        if attributes is not None:
            subjects[primary] = Subject(primary, attributes)
    if subjects:
        tx.run("linkage/describe", rows=describe_rows(subjects.values(), linkage), pending=True, now=now)


def split_shared(tx: Tx, rules: IdentityRules, plan: StitchPlan, now: datetime) -> bool:
    """Splits the profiles held together by identifiers this batch flagged as shared."""
    shared = [flag for flag in plan.flags if flag.flag == SHARED]
    for flag in shared:
        (record,) = tx.run("stitching/profile_of", type=flag.identifier.type, value=flag.identifier.value)
        split_profile(tx, rules, record["profile_id"], f"{flag.identifier} flagged: {flag.reason}", now, "ingest")
    return bool(shared)


def suppressed_events(tx: Tx, salt: str, touchpoints: list[Touchpoint]) -> dict[str, str]:
    """Events carrying a suppressed identifier, each with the reason for its rejection."""
    hashes = {suppression_hash(salt, i): i for t in touchpoints for i in t.identifiers}
    found = {r["hash"] for r in tx.run("ingest/suppressed", hashes=sorted(hashes))}
    if not found:
        return {}
    refused = {}
    for touchpoint in touchpoints:
        forgotten = [i for i in touchpoint.identifiers if suppression_hash(salt, i) in found]
        if forgotten:
            refused[touchpoint.event_id] = f"{forgotten[0]} belongs to a forgotten person and is suppressed"
    return refused


def _row(rules: IdentityRules, touchpoint: Touchpoint) -> dict[str, Any]:
    return {
        "junk": [str(i) for i in touchpoint.identifiers if rules.is_blocklisted(i.type, i.value)],
        "event_id": touchpoint.event_id,
        "occurred_at": epoch_millis(touchpoint.occurred_at),
        "source": touchpoint.source,
        "channel": touchpoint.channel.value,
        "type": touchpoint.type,
        "traits": json.dumps(touchpoint.traits, sort_keys=True),
        "properties": json.dumps(touchpoint.properties, sort_keys=True),
        "numeric": numeric_properties(touchpoint.properties),
    }


PROPERTY_PREFIX = "prop."


def numeric_properties(properties: dict[str, str]) -> dict[str, float]:
    """The properties that read as finite numbers (an order's amount), kept as `prop.<name>`
    floats on the touchpoint so that segment rules can sum them in Cypher."""
    numbers = {}
    for key, text in properties.items():
        try:
            number = float(text)
        except ValueError:
            continue
        if math.isfinite(number):
            numbers[PROPERTY_PREFIX + key] = number
    return numbers


def _identifier_rows(rules: IdentityRules, touchpoints: list[Touchpoint]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One row per distinct identifier, sorted (the lock order), with the batch's seen range;
    blocklisted junk apart (see _carried_row)."""
    seen: dict[Identifier, tuple[datetime, datetime]] = {}
    for t in touchpoints:
        for i in t.identifiers:
            first, last = seen.get(i, (t.occurred_at, t.occurred_at))
            seen[i] = (min(first, t.occurred_at), max(last, t.occurred_at))
    rows: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    for i, (first, last) in sorted(seen.items()):
        row = {"type": i.type, "value": i.value, "first_seen": epoch_millis(first), "last_seen": epoch_millis(last)}
        rows[rules.is_blocklisted(i.type, i.value)].append(row)
    return rows


def _carried_row(rules: IdentityRules, touchpoint: Touchpoint) -> dict[str, Any]:
    """The identifiers a touchpoint is linked to. Blocklisted junk is not among them: a value
    typed at every till would become a node with an edge from every touchpoint, and every
    batch would wait for the lock on it (and deadlock on its relationship groups). The
    touchpoint keeps its junk values in its `junk` property instead."""
    primary = primary_identifier(rules, touchpoint)
    return {"event_id": touchpoint.event_id,
            "identifiers": [{"type": i.type, "value": i.value, "primary": i == primary}
                            for i in touchpoint.identifiers if not rules.is_blocklisted(i.type, i.value)]}
