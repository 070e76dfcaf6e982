"""Ingest: validates events, writes them as touchpoints and identifiers, says what happened.

An ack says ACCEPTED only after its transaction committed. Writes MERGE on event_id, so a
redelivered event (or a transaction the driver retries) changes nothing and acks DUPLICATE.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from server.errors import InvalidArgument
from server.graph import Graph, Tx, epoch_millis
from server.identity.golden import numeric_properties
from server.identity.link_commit import LinkCommit, commit_links
from server.identity import quarantine
from server.identity.consent import read_statements
from server.identity.values import (
    Ack,
    AckStatus,
    Channel,
    EventInput,
    Identifier,
    InvalidValue,
    Touchpoint,
    ValueWarning,
    identifier_type_label,
)
from server.identity.normalize import (
    CONTROL_IN_ID,
    InvalidIdentifier,
    clean_text,
    normalize_identifier,
    normalize_properties,
    normalize_traits,
    shown,
)
from server.identity.identity_config import IdentityRules
from server.identity.stitching import primary_identifier, suppression_hash

MAX_EVENT_ID_LENGTH = 256
# Clocks drift; an event from further in the future than this is a bad timestamp.
MAX_CLOCK_SKEW = timedelta(days=1)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


# Runs in the ingest transaction after stitching, with the new touchpoints and each one's
# primary identifier by event id: online linkage queues the people events describe there
# (linkage.candidates.OnlineQueue). A hook keeps ingest from depending on linkage.
AfterStitching = Callable[[Tx, Sequence[Touchpoint], Mapping[str, Identifier], datetime], None]


class EventRefused(InvalidArgument):
    """Nothing usable is left of an event: it is rejected, with a code, into quarantine."""

    def __init__(self, code: str, message: str, warnings: Sequence[ValueWarning] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.warnings = tuple(warnings)


@dataclass(frozen=True)
class Checked:
    """An event that passed: its touchpoint, and what of it was not used as sent."""

    touchpoint: Touchpoint
    warnings: tuple[ValueWarning, ...] = ()


def event_source(event: EventInput) -> str:
    """The source a touchpoint will be stored under (as validate_event cleans it)."""
    return clean_text("source", event.source, []).strip() or "unknown"


def validate_event(rules: IdentityRules, event: EventInput, received_at: datetime) -> Checked:
    """Turns a client's event into a touchpoint, keeping what it can.

    The event is refused (EventRefused, naming the problem) only when nothing usable is
    left: no valid identifier, no type, an impossible time, a bad event id, or a size over
    the limits. A malformed identifier, or one of an unknown type (unless the rules say to
    reject those), is kept on the touchpoint as an invalid value and named in a warning.
    """
    if event.problem:
        raise EventRefused(event.problem_code or quarantine.BAD_TIMESTAMP, event.problem)
    event_id = _event_id(event.event_id)
    _check_size(rules, event)
    occurred_at = event.occurred_at or event.received_at or received_at
    if occurred_at < EARLIEST or occurred_at > received_at + MAX_CLOCK_SKEW:
        raise EventRefused(quarantine.BAD_TIMESTAMP,
                           f"occurred_at {occurred_at.isoformat()} is before 1970 or in the future")
    warnings: list[ValueWarning] = []
    kind = clean_text("type", event.type, warnings).strip()
    if not kind:
        raise EventRefused(quarantine.NO_TYPE, "type is empty (e.g. page_view, identify, purchase)", warnings)
    identifiers, invalid = _identifiers(rules, event, warnings)
    consent, consent_unknown = read_statements(event.consent, rules.consent, warnings)
    return Checked(Touchpoint(
        event_id=event_id,
        occurred_at=occurred_at,
        source=clean_text("source", event.source, warnings).strip() or "unknown",
        channel=_channel(event.channel, warnings),
        type=kind,
        identifiers=identifiers,
        traits=normalize_traits(event.traits, warnings),
        properties=normalize_properties(event.properties, warnings),
        invalid=invalid,
        consent=consent,
        consent_unknown=consent_unknown,
    ), tuple(warnings))


def _event_id(raw: str) -> str:
    event_id = raw.strip()
    if not event_id:
        raise EventRefused(quarantine.BAD_EVENT_ID, "event_id is empty")
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        raise EventRefused(quarantine.BAD_EVENT_ID, f"event_id is longer than {MAX_EVENT_ID_LENGTH} characters")
    if CONTROL_IN_ID.search(event_id):
        raise EventRefused(quarantine.BAD_EVENT_ID, f"event_id {shown(event_id)!r} contains control characters")
    return event_id


def _check_size(rules: IdentityRules, event: EventInput) -> None:
    """Limits that protect the graph from an event that is really a data dump."""
    if len(event.properties) > rules.max_properties:
        raise EventRefused(quarantine.TOO_LARGE,
                           f"the event has {len(event.properties)} properties (at most {rules.max_properties})")
    if len(event.traits) > rules.max_traits:
        raise EventRefused(quarantine.TOO_LARGE, f"the event has {len(event.traits)} traits (at most {rules.max_traits})")
    texts = (event.event_id, event.type, event.source, *(t for pair in event.identifiers for t in pair),
             *event.traits, *event.traits.values(), *event.properties, *event.properties.values(),
             *event.consent)
    size = sum(map(len, texts))
    if size > rules.max_event_bytes // 4:  # characters take 1 to 4 bytes: count exactly only when it may matter
        size = sum(len(text.encode()) for text in texts)
    if size > rules.max_event_bytes:
        raise EventRefused(quarantine.TOO_LARGE,
                           f"the event's ids, keys and values take {size} bytes (at most {rules.max_event_bytes})")
    sent = len(event.identifiers) - event.added_identifiers
    if sent > rules.max_identifiers_per_event:
        raise EventRefused(quarantine.TOO_MANY_IDENTIFIERS,
                           f"the event carries {sent} identifiers (at most {rules.max_identifiers_per_event})")


def _identifiers(rules: IdentityRules, event: EventInput,
                 warnings: list[ValueWarning]) -> tuple[tuple[Identifier, ...], tuple[InvalidValue, ...]]:
    """The event's usable identifiers, and the values kept as invalid (each with a warning)."""
    if not event.identifiers:
        raise EventRefused(quarantine.NO_VALID_IDENTIFIER, "the event carries no identifiers", warnings)
    valid: set[Identifier] = set()
    invalid: dict[tuple[str, str], InvalidValue] = {}
    for type_name, value in event.identifiers:
        try:
            valid.add(normalize_identifier(rules, type_name, value))
        except InvalidIdentifier as exc:
            if exc.unknown_type and rules.unknown_types == "reject":
                raise EventRefused(quarantine.UNKNOWN_IDENTIFIER_TYPE, str(exc), warnings) from None
            invalid.setdefault((exc.kept.type, exc.kept.value), exc.kept)
            warnings.append(ValueWarning(f"identifiers.{exc.kept.type}", shown(value), str(exc)))
    if not valid:
        reasons = "; ".join(kept.reason for kept in invalid.values())
        raise EventRefused(quarantine.NO_VALID_IDENTIFIER, f"no usable identifier: {reasons}", warnings)
    return tuple(sorted(valid)), tuple(invalid.values())


def _channel(name: str, warnings: list[ValueWarning]) -> Channel:
    try:
        return Channel(name or Channel.ONLINE.value)
    except ValueError:
        raise EventRefused(quarantine.BAD_CHANNEL, f"channel {name!r} is neither online nor offline", warnings) from None


class Ingestor:
    """Writes batches of events; one batch is one transaction, stitching included."""

    def __init__(self, graph: Graph, rules: IdentityRules, suppression_salt: str,
                 after_stitching: AfterStitching | None = None) -> None:
        self.graph = graph
        self.rules = rules
        self.salt = suppression_salt
        self.after_stitching = after_stitching

    def ingest(self, events: Sequence[EventInput], online_linkage: bool = True,
               keep_rejects: bool = True, sources: frozenset[str] | None = None) -> list[Ack]:
        """Acks every event in the order given, after the valid ones are committed.

        With online_linkage, the after-stitching hook runs in the same transaction (online
        linkage queues the people events describe there); imports link their records
        themselves. Rejected events are
        kept in quarantine in the same transaction (unless keep_rejects is off: an import
        keeps its records instead), so a REJECTED ack means the event is kept for replay.
        With sources (those the caller's token may write as), an event of another source is
        refused and not kept: a token must not fill quarantine in another source's name.
        """
        hook = self.after_stitching if online_linkage else None
        received_at = datetime.now(UTC)
        acks: dict[int, Ack] = {}
        fresh: dict[str, tuple[int, Checked]] = {}
        repeated: list[tuple[int, str, tuple[ValueWarning, ...]]] = []
        rejections: list[quarantine.Rejection] = []
        for position, event in enumerate(events):
            if sources is not None and (source := event_source(event)) not in sources:
                acks[position] = Ack(event.event_id, AckStatus.REJECTED, code=quarantine.SOURCE_NOT_ALLOWED,
                                     reason=f"source '{source}' is not one this token may write as "
                                            f"({', '.join(sorted(sources)) or 'none'})")
                continue
            try:
                checked = validate_event(self.rules, event, received_at)
            except EventRefused as exc:
                acks[position] = Ack(event.event_id, AckStatus.REJECTED, reason=str(exc), warnings=exc.warnings,
                                     code=exc.code)
                rejections.append(quarantine.event_rejection(event, exc.code, str(exc), received_at))
                continue
            event_id = checked.touchpoint.event_id
            if event_id in fresh:
                repeated.append((position, event_id, checked.warnings))
                continue
            fresh[event_id] = (position, checked)
        kept = quarantine.rows(self.rules, self.salt, rejections, received_at) if keep_rejects else []
        if not fresh:
            quarantine.keep_now(self.graph, kept)
            return [acks[position] for position in range(len(events))]
        batch = [c.touchpoint for _, c in fresh.values()]

        def work(tx: Tx) -> BatchOutcome:
            quarantine.keep(tx, kept, received_at)
            return write_batch(tx, self.rules, self.salt, batch, received_at, hook)

        outcome = self.graph.transaction("ingest", work)
        for event_id, (position, checked) in fresh.items():
            acks[position] = _ack(event_id, checked.warnings, outcome)
        for position, event_id, warnings in repeated:
            acks[position] = Ack(event_id, AckStatus.DUPLICATE, outcome.profiles.get(event_id) or "", warnings=warnings)
        return [acks[position] for position in range(len(events))]


def _ack(event_id: str, warnings: tuple[ValueWarning, ...], outcome: BatchOutcome) -> Ack:
    if event_id in outcome.suppressed:
        return Ack(event_id, AckStatus.REJECTED, reason=outcome.suppressed[event_id], warnings=warnings,
                   code=quarantine.SUPPRESSED)
    status = AckStatus.ACCEPTED if event_id in outcome.created else AckStatus.DUPLICATE
    return Ack(event_id, status, outcome.profiles.get(event_id) or "", warnings=warnings)


@dataclass(frozen=True)
class BatchOutcome:
    created: frozenset[str]
    profiles: dict[str, str | None]
    suppressed: dict[str, str]


def write_batch(tx: Tx, rules: IdentityRules, salt: str, touchpoints: list[Touchpoint], now: datetime,
                after_stitching: AfterStitching | None = None) -> BatchOutcome:
    """Records the touchpoints, stitches the new ones, and reads back every event's profile.

    Events that carry an identifier of a forgotten person are refused, and nothing of them
    is written.
    """
    junk = _junk(rules, touchpoints)
    suppressed = suppressed_events(tx, salt, touchpoints)
    touchpoints = [t for t in touchpoints if t.event_id not in suppressed]
    records = tx.run("ingest/record_touchpoints", batch=uuid.uuid4().hex,
                     rows=[_row(t, junk) for t in touchpoints]) if touchpoints else []
    created = frozenset(t.event_id for t in touchpoints) - {r["event_id"] for r in records}
    new = [t for t in touchpoints if t.event_id in created]
    if new:
        _record_identifiers(tx, new, junk, {t.event_id: primary_identifier(rules, t, junk) for t in new})
    committed = commit_links(tx, rules, LinkCommit("ingest", touchpoints=new), now)
    plan, split = committed.plan, committed.split
    if after_stitching is not None:
        after_stitching(tx, new, plan.primaries, now)
    profiles: dict[str, str | None] = dict(plan.touchpoint_profiles)
    known = [t.event_id for t in touchpoints if split or t.event_id not in created]  # a split moves events
    if known:
        for record in tx.run("ingest/profiles_of_events", event_ids=known):
            profiles[record["event_id"]] = record["profile_id"]
    return BatchOutcome(created, profiles, suppressed)


@dataclass(frozen=True)
class Revival:
    """A stored touchpoint with identifiers that a replay found valid now."""

    touchpoint: Touchpoint  # with all its identifiers: those it carried and the revived
    revived: tuple[Identifier, ...]
    has_primary: bool  # whether one it carried already decides its profile


def revive_identifiers(tx: Tx, rules: IdentityRules, revivals: Sequence[Revival], now: datetime) -> None:
    """Writes revived identifiers as if their touchpoints had carried them from the start:
    the identifiers, the touchpoints' edges to them, and their links, through merge
    protection like any other (the touchpoints are not counted again)."""
    if not revivals:
        return
    new = [replace(r.touchpoint, identifiers=r.revived) for r in revivals]
    junk = _junk(rules, new)
    _record_identifiers(tx, new, junk, {t.event_id: None if r.has_primary else primary_identifier(rules, t, junk)
                                        for r, t in zip(revivals, new, strict=True)})
    revived = frozenset(i for r in revivals for i in r.revived)
    commit_links(tx, rules, LinkCommit("replay", touchpoints=[r.touchpoint for r in revivals], count_touchpoints=False,
                                       touching=revived), now)


def suppressed_events(tx: Tx, salt: str, touchpoints: list[Touchpoint]) -> dict[str, str]:
    """Events carrying a suppressed identifier, each with the reason for its refusal."""
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


def _junk(rules: IdentityRules, touchpoints: Sequence[Touchpoint]) -> frozenset[Identifier]:
    """The blocklisted values among the touchpoints' identifiers (asked once per batch)."""
    return frozenset(i for t in touchpoints for i in t.identifiers if rules.is_blocklisted(i.type, i.value))


def _record_identifiers(tx: Tx, touchpoints: list[Touchpoint], junk: frozenset[Identifier],
                        primaries: Mapping[str, Identifier | None]) -> None:
    """Writes the touchpoints' identifiers, with the range the batch saw them in, and the
    touchpoints' edges to them (each marked primary when it decides the touchpoint's profile).

    Blocklisted junk gets no edge: a value typed at every till would become a node with an
    edge from every touchpoint, and every batch would wait for the lock on it (and deadlock
    on its relationship groups). The touchpoint keeps its junk values in its `junk` property.
    """
    seen: dict[Identifier, tuple[datetime, datetime]] = {}
    for t in touchpoints:
        for i in t.identifiers:
            first, last = seen.get(i, (t.occurred_at, t.occurred_at))
            seen[i] = (min(first, t.occurred_at), max(last, t.occurred_at))
    rows: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])  # sorted: the lock order
    for i, (first, last) in sorted(seen.items()):
        rows[i in junk].append({"type": i.type, "value": i.value,
                                "first_seen": epoch_millis(first), "last_seen": epoch_millis(last),
                                "label": identifier_type_label(i.type)})
    identifiers, junk_rows = rows
    position = {Identifier(row["type"], row["value"]): n for n, row in enumerate(identifiers)}
    carried = [{"event_id": t.event_id,
                "identifiers": [{"n": position[i], "primary": i == primaries[t.event_id]}
                                for i in t.identifiers if i not in junk]}
               for t in touchpoints]
    tx.run("ingest/record_identifiers", rows={"identifiers": identifiers, "junk": junk_rows, "carried": carried})


def _row(touchpoint: Touchpoint, junk: frozenset[Identifier]) -> dict[str, Any]:
    return {
        "junk": [str(i) for i in touchpoint.identifiers if i in junk],
        "event_id": touchpoint.event_id,
        "occurred_at": epoch_millis(touchpoint.occurred_at),
        "source": touchpoint.source,
        "channel": touchpoint.channel.value,
        "type": touchpoint.type,
        "traits": json.dumps(touchpoint.traits, sort_keys=True),
        "properties": json.dumps(touchpoint.properties, sort_keys=True),
        "numeric": numeric_properties(touchpoint.properties),
        "invalid": [invalid_json(v) for v in touchpoint.invalid],
        "consent_granted": sorted(c for c, granted in touchpoint.consent.items() if granted),
        "consent_denied": sorted(c for c, granted in touchpoint.consent.items() if not granted),
        "consent_unknown": [f"{c}: {'granted' if granted else 'denied'}"
                            for c, granted in sorted(touchpoint.consent_unknown.items())],
    }


def invalid_json(value: InvalidValue) -> str:
    """An invalid value as the touchpoint keeps it: readable in Browser, parsed on replay."""
    return json.dumps({"type": value.type, "value": value.value, "reason": value.reason,
                       "replayable": value.replayable}, ensure_ascii=False)
