"""How much of a newcomer's feed the service keeps, measured through its own gRPC path.

Issue 11: before it, a newcomer's realistic feed lost most of its data at the edge. Every
event carrying an `anonymous_id` was rejected whole (19,602 of 32,027 events), 814 of 1,429
CRM records were rejected whole for one phone libphonenumber does not know as assigned, and
an event with a malformed e-mail next to a good user_id was rejected whole. Now a bad value
costs only itself: it is kept on its touchpoint as an invalid value and named in the ack's
warnings, and only an event with nothing usable left is rejected (into quarantine).

`python -m bench.edge_feed` takes the CDP world of bench/cdp_population.py (--people) and
turns it, seeded, into such a feed:
- Segment's vocabulary: cookies sent as `anonymousId`, user ids as `userId` (aliases in
  config/identity.yaml map them);
- CRM records (--bad-phone-share, default 0.55 like 814/1,429) with one extra phone that is
  invalid: possible-but-unassigned NANP numbers ("(878) 017 5989"), too short, or text
  ("n/a call office"); a few (2%) with a date_of_birth that is no date ("19151311");
- events with a malformed e-mail (5%), an identifier of an unknown type (`ga_client_id`,
  1%), an anonymousId with a control character in it (0.2%), each next to their good
  identifiers, which stay as they are: the world's truth still holds;
- a few extra events (0.5%) with nothing usable: only a malformed e-mail, or a copy of an
  event dated in 2100. They show quarantine.

On a fresh Neo4j and server of its own (default config) it ingests the events over
--streams Ingest streams, imports the records with ImportRecords, waits for online linkage,
and reports:
1. events and records sent, accepted, accepted with warnings, rejected (by reason code);
2. what the old all-or-nothing rule would have lost: items with any warning or rejected,
   and, for events, also those naming a type outside the old vocabulary (`anonymousId`,
   `userId`), which is what the issue counted;
3. good values kept: every identifier not broken on purpose, in the form the server's own
   normalisation gives it, looked for as an Identifier node (goal: all of them);
4. invalid values kept on touchpoints (`t.invalid`) against the broken values sent, and
   dates of birth kept as `date_of_birth_unparsed` (goal: equal);
5. quarantine: ListRejected items against rejected acks (goal: equal);
6. linking: pairwise precision and recall of the profiles (LookupProfiles) against the
   truth, scored by bench/linkage_cdp.py's functions: flawed values must fuse no strangers.

Exits with status 1 when a goal is missed or an ack differs from what its flaws predict, so
that a regression cannot look green.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.cdp_population import CdpEvent, CdpWorld, CrmRecord, Ident, generate
from bench.common import bench_neo4j, bench_server, log, save
from bench.linkage_cdp import GOALS, Stub, import_records, lookup_profiles, not_found, parallel, score, \
    summary_figures, wait_for_linkage
from identity.v1 import identity_service_pb2 as pb
from localneo4j import LocalNeo4j
from neo4j import GraphDatabase
from server.identity.values import Identifier
from server.identity.normalize import InvalidIdentifier, normalize_identifier
from server.identity.identity_config import IdentityRules, load_rules

# The names Segment (and RudderStack) give the world's types.
SEGMENT_NAMES = {"cookie": "anonymousId", "user_id": "userId"}
# The identifier types the service knew before issue 11, exactly as named then: an event
# naming any other was rejected whole as of an unknown type.
OLD_TYPE_NAMES = frozenset({"email", "phone", "user_id", "crm_id", "loyalty_id", "device_id", "cookie", "record"})
# The issue's figures, for comparison.
ISSUE_EVENTS_LOST, ISSUE_EVENTS = 19_602, 32_027
ISSUE_RECORDS_LOST, ISSUE_RECORDS = 814, 1_429

# Kinds of deliberate flaws; each one costs its value, never its item.
BAD_EMAIL = "bad_email"
INVALID_PHONE = "invalid_phone"
UNKNOWN_TYPE = "unknown_type"
CONTROL_IN_ID = "control_in_id"
BAD_DATE_OF_BIRTH = "bad_date_of_birth"
# Kinds of unusable events: nothing of them can be kept but in quarantine.
ONLY_BAD_EMAIL = "only_bad_email"
FUTURE_TIMESTAMP = "future_timestamp"
# The reason code each unusable kind is rejected with.
REJECTION_CODE = {ONLY_BAD_EMAIL: "no_valid_identifier", FUTURE_TIMESTAMP: "bad_timestamp"}
UNKNOWN_TYPE_NAME = "ga_client_id"
FUTURE_YEAR = 2100

# Area codes in service: with an exchange starting with 0 or 1 no number of theirs exists.
AREA_CODES = (878, 212, 415, 617, 312, 718, 305, 202)
PHONE_TEXTS = ("n/a call office", "none given", "ask at front desk", "see notes", "refused", "no phone")
CONTROL_CHARACTERS = ("\x00", "\x01", "\x07", "\x08", "\x1b", "\x7f")
BAD_DATES = ("19151311", "1985-02-30", "31/31/1990", "00000000", "unknown", "1972-13-01")


@dataclass(frozen=True)
class FeedShares:
    """How much of the feed is flawed; the defaults are the issue's."""

    bad_phone: float = 0.55  # of CRM records: one extra phone that is invalid
    bad_date_of_birth: float = 0.02  # of CRM records
    bad_email: float = 0.05  # of events
    unknown_type: float = 0.01  # of events
    control_in_id: float = 0.002  # of events
    unusable: float = 0.005  # extra events, per event of the world


@dataclass(frozen=True)
class Flaw:
    """A value broken on purpose: its kind and where it was sent (identifier type or trait key)."""

    kind: str
    name: str
    value: str

    @property
    def is_identifier(self) -> bool:
        return self.kind != BAD_DATE_OF_BIRTH


@dataclass
class Feed:
    """The newcomer's feed of a world, and what a server that keeps what it can should show."""

    world: CdpWorld
    events: list[CdpEvent]
    records: list[CrmRecord]
    flaws: dict[str, tuple[Flaw, ...]] = field(default_factory=dict)  # event or record id -> its flaws
    unusable: dict[str, str] = field(default_factory=dict)  # event id -> unusable kind

    def flaw_counts(self) -> Counter[str]:
        return Counter(f.kind for flaws in self.flaws.values() for f in flaws)

    def streams(self, count: int) -> list[list[CdpEvent]]:
        """Events dealt to `count` streams by person, each stream in the feed's order."""
        dealt: list[list[CdpEvent]] = [[] for _ in range(max(count, 1))]
        for event in self.events:
            dealt[zlib.crc32(event.person.encode()) % len(dealt)].append(event)
        return dealt


# ---- the feed: pure functions --------------------------------------------------------------

def sent_as(identifier: Ident) -> Ident:
    """An identifier of the world under the name the newcomer's sources give its type."""
    kind, value = identifier
    return SEGMENT_NAMES.get(kind, kind), value


def bad_email(rng: random.Random, local: str) -> str:
    """An address a form let through: two @, no dot in the domain, a comma, a space, no @."""
    return rng.choice((f"{local}@@example.com", f"{local}@example", f"{local}@example,com",
                       f"{local} @example.com", f"{local}.example.com", f"{local}@.com"))


def invalid_phone(rng: random.Random) -> str:
    """A phone libphonenumber refuses: unassigned (exchange 0xx/1xx), too short, or text."""
    roll = rng.random()
    if roll < 0.6:
        return f"({rng.choice(AREA_CODES)}) {rng.choice('01')}{rng.randint(0, 99):02d} {rng.randint(0, 9999):04d}"
    if roll < 0.8:
        return rng.choice((f"{rng.randint(100, 999)}-{rng.randint(10, 99)}", f"({rng.choice(AREA_CODES)}) "
                           f"{rng.randint(20, 99)}", f"{rng.randint(1000, 9999)}"))
    return rng.choice(PHONE_TEXTS)


def unknown_type_value(rng: random.Random) -> str:
    """A Google Analytics client id, which the default config does not declare."""
    return f"GA1.2.{rng.randint(10**8, 10**9 - 1)}.{rng.randint(10**9, 2 * 10**9)}"


def with_control(rng: random.Random, value: str) -> str:
    """The value with a control character inside it (at either end it might be trimmed)."""
    middle = max(1, len(value) // 2)
    return value[:middle] + rng.choice(CONTROL_CHARACTERS) + value[middle:]


def local_part(event: CdpEvent) -> str:
    """Whom a broken address was meant for: the event's e-mail, else its person."""
    for kind, value in event.identifiers:
        if kind == "email":
            return value.split("@", 1)[0]
    return event.person.lower()


def in_vocabulary(event: CdpEvent) -> CdpEvent:
    return replace(event, identifiers=tuple(sent_as(i) for i in event.identifiers))


def flaw_event(event: CdpEvent, rng: random.Random, shares: FeedShares) -> tuple[CdpEvent, tuple[Flaw, ...]]:
    """The event with seeded flawed values added next to its good identifiers."""
    flaws = []
    if rng.random() < shares.bad_email:
        flaws.append(Flaw(BAD_EMAIL, "email", bad_email(rng, local_part(event))))
    if rng.random() < shares.unknown_type:
        flaws.append(Flaw(UNKNOWN_TYPE, UNKNOWN_TYPE_NAME, unknown_type_value(rng)))
    if rng.random() < shares.control_in_id:
        cookie = next((v for t, v in event.identifiers if t == "cookie"), event.event_id)
        flaws.append(Flaw(CONTROL_IN_ID, SEGMENT_NAMES["cookie"], with_control(rng, cookie)))
    if not flaws:
        return event, ()
    return replace(event, identifiers=(*event.identifiers, *((f.name, f.value) for f in flaws))), tuple(flaws)


def unusable_event(event: CdpEvent, rng: random.Random) -> tuple[CdpEvent, str]:
    """An extra event of the same person with nothing usable: only a malformed e-mail, or a
    copy of the event dated in 2100."""
    if rng.random() < 0.5:
        return CdpEvent(f"{event.event_id}-x", event.person, event.occurred_at, "email", "online", "email_open",
                        (("email", bad_email(rng, local_part(event))),)), ONLY_BAD_EMAIL
    late = event.occurred_at.replace(year=FUTURE_YEAR)
    return replace(in_vocabulary(event), event_id=f"{event.event_id}-x", occurred_at=late), FUTURE_TIMESTAMP


def flaw_record(record: CrmRecord, rng: random.Random, shares: FeedShares) -> tuple[CrmRecord, tuple[Flaw, ...]]:
    """The record with an invalid phone added and/or its date of birth mistyped, seeded."""
    flaws = []
    if rng.random() < shares.bad_phone:
        flaws.append(Flaw(INVALID_PHONE, "phone", invalid_phone(rng)))
    traits = record.traits
    if rng.random() < shares.bad_date_of_birth:
        flaws.append(Flaw(BAD_DATE_OF_BIRTH, "date_of_birth", rng.choice(BAD_DATES)))
        traits = {**traits, "date_of_birth": flaws[-1].value}
    if not flaws:
        return record, ()
    identifiers = (*record.identifiers, *((f.name, f.value) for f in flaws if f.is_identifier))
    return replace(record, identifiers=identifiers, traits=traits), tuple(flaws)


def newcomer_feed(world: CdpWorld, shares: FeedShares = FeedShares(), seed: int = 11) -> Feed:
    """The world as a newcomer's sources send it; the same arguments give the same feed."""
    rng = random.Random(seed)
    feed = Feed(world, [], [])
    for original in world.events:
        event, flaws = flaw_event(in_vocabulary(original), rng, shares)
        feed.events.append(event)
        if flaws:
            feed.flaws[event.event_id] = flaws
        if rng.random() < shares.unusable:
            extra, kind = unusable_event(original, rng)
            feed.events.append(extra)
            feed.unusable[extra.event_id] = kind
    for original_record in world.records:
        record, flaws = flaw_record(original_record, rng, shares)
        feed.records.append(record)
        if flaws:
            feed.flaws[record.record_id] = flaws
    return feed


def good_identifiers(feed: Feed) -> set[Ident]:
    """Every identifier, as sent, of the events and records meant to be accepted, except the
    values broken on purpose (a record's own `record` identifier included)."""
    good: set[Ident] = set()
    for event in feed.events:
        if event.event_id in feed.unusable:
            continue
        broken = {(f.name, f.value) for f in feed.flaws.get(event.event_id, ())}
        good.update(i for i in event.identifiers if i not in broken)
    for record in feed.records:
        broken = {(f.name, f.value) for f in feed.flaws.get(record.record_id, ())}
        good.add(record.identifier)
        good.update(i for i in record.identifiers if i not in broken)
    return good


def stored_forms(rules: IdentityRules, identifiers: Iterable[Ident]) -> dict[Ident, Identifier]:
    """Each identifier as the server's own normalisation stores it (raises for a broken one)."""
    return {i: normalize_identifier(rules, *i) for i in identifiers}


@dataclass(frozen=True)
class Expected:
    """What the server should answer for the feed."""

    events_with_warnings: frozenset[str]
    records_with_warnings: frozenset[str]
    rejected: Mapping[str, str]  # event id -> reason code
    invalid_by_type: Mapping[str, int]  # values kept in t.invalid, by the type they are kept under
    has_invalid: int  # touchpoints that keep any
    unparsed_dates_of_birth: int


def expected(rules: IdentityRules, feed: Feed) -> Expected:
    """Derived from the flaws with the server's normalisation: each broken identifier is kept
    under the type it resolves to (`anonymousId` as anonymous_id, an unknown type by its name)."""
    invalid: Counter[str] = Counter()
    has_invalid = 0
    for item_id, flaws in feed.flaws.items():
        kept = {_kept_as(rules, f) for f in flaws if f.is_identifier}
        invalid.update(kind for kind, _ in kept)
        has_invalid += bool(kept)
    events = {e.event_id for e in feed.events}
    return Expected(
        events_with_warnings=frozenset(i for i in feed.flaws if i in events),
        records_with_warnings=frozenset(i for i in feed.flaws if i not in events),
        rejected={event_id: REJECTION_CODE[kind] for event_id, kind in feed.unusable.items()},
        invalid_by_type=dict(invalid), has_invalid=has_invalid,
        unparsed_dates_of_birth=sum(f.kind == BAD_DATE_OF_BIRTH for flaws in feed.flaws.values() for f in flaws))


def _kept_as(rules: IdentityRules, flaw: Flaw) -> tuple[str, str]:
    try:
        normalize_identifier(rules, flaw.name, flaw.value)
    except InvalidIdentifier as exc:
        return exc.kept.type, exc.kept.value
    raise ValueError(f"flaw {flaw} is a valid identifier")


def old_rule_losses(feed: Feed, warned: Iterable[str], rejected: Iterable[str]) -> dict[str, int]:
    """Events the all-or-nothing rule would have rejected: any warning or rejection now, and
    besides those, any naming a type outside the old vocabulary (as the issue's anonymous_id)."""
    lost = set(warned) | set(rejected)
    unknown = {e.event_id for e in feed.events if any(t not in OLD_TYPE_NAMES for t, _ in e.identifiers)}
    return {"with_warning_or_rejected": len(lost), "with_old_vocabulary": len(lost | unknown)}


# ---- the service -------------------------------------------------------------------------------

@dataclass
class Acks:
    """What Ingest answered, by event id."""

    status: dict[str, str] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)  # event id -> warned fields

    def update(self, other: Acks) -> None:
        self.status.update(other.status)
        self.code.update(other.code)
        self.warnings.update(other.warnings)

    def with_status(self, status: str) -> set[str]:
        return {event_id for event_id, s in self.status.items() if s == status}


def send_events(stub: Stub, events: Sequence[CdpEvent], window: int = 1000) -> Acks:
    """Ingests on one stream with at most `window` unacked events; every ack kept."""
    in_flight = threading.Semaphore(window)

    def requests() -> Iterator[pb.Event]:
        for event in events:
            in_flight.acquire()
            yield event.to_proto()

    acks = Acks()
    for ack in stub.Ingest(requests(), timeout=24 * 3600):
        in_flight.release()
        acks.status[ack.event_id] = pb.AckStatus.Name(ack.status).removeprefix("ACK_STATUS_").lower()
        if ack.reason_code:
            acks.code[ack.event_id] = ack.reason_code
        if ack.warnings:
            acks.warnings[ack.event_id] = [w.field for w in ack.warnings]
    return acks


def list_rejected(stub: Stub) -> Counter[tuple[str, str]]:
    """Quarantined items by (kind, code)."""
    items: Counter[tuple[str, str]] = Counter()
    for item in stub.ListRejected(pb.ListRejectedRequest(limit=0), timeout=600):
        items[(pb.RejectedKind.Name(item.kind).removeprefix("REJECTED_KIND_").lower(), item.code)] += 1
    return items


# Plain reads of the graph, to see what was stored rather than what was answered.
FOUND_IDENTIFIERS = ("UNWIND $keys AS key MATCH (i:Identifier {type: key.type, value: key.value}) "
                     "RETURN key.type AS type, key.value AS value")
INVALID_VALUES = "MATCH (t:HasInvalid) RETURN t.invalid AS invalid"
UNPARSED_DATES_OF_BIRTH = ("MATCH (t:Touchpoint) WHERE t.traits CONTAINS '\"date_of_birth_unparsed\"' "
                           "RETURN count(t) AS n")
TOUCHPOINTS = "MATCH (t:Touchpoint) RETURN count(t) AS n"


@dataclass(frozen=True)
class Stored:
    found: frozenset[Identifier]  # of the identifiers looked for
    invalid_by_type: dict[str, int]
    has_invalid: int
    unparsed_dates_of_birth: int
    touchpoints: int


def stored(neo4j: LocalNeo4j, wanted: Iterable[Identifier], chunk: int = 5000) -> Stored:
    keys = [{"type": i.type, "value": i.value} for i in sorted(set(wanted))]
    found: set[Identifier] = set()
    invalid: Counter[str] = Counter()
    has_invalid = 0
    with GraphDatabase.driver(neo4j.uri, auth=(neo4j.user, neo4j.password)) as driver, driver.session() as session:
        for start in range(0, len(keys), chunk):
            found.update(Identifier(r["type"], r["value"])
                         for r in session.run(FOUND_IDENTIFIERS, keys=keys[start:start + chunk]))
        for record in session.run(INVALID_VALUES):
            has_invalid += 1
            invalid.update(json.loads(text)["type"] for text in record["invalid"] or [])
        unparsed = int(session.run(UNPARSED_DATES_OF_BIRTH).single(strict=True)["n"])
        touchpoints = int(session.run(TOUCHPOINTS).single(strict=True)["n"])
    return Stored(frozenset(found), dict(invalid), has_invalid, unparsed, touchpoints)


def lookup_truth(channel: Callable[[], Any], world: CdpWorld, rules: IdentityRules, streams: int) -> dict[Ident, Hashable]:
    """The profile of every identifier of the truth, looked up in its stored form."""
    forms = {i: normalize_identifier(rules, *sent_as(i)) for i in world.truth.person_of}
    wanted = sorted({(f.type, f.value) for f in forms.values()})
    found: dict[Ident, Hashable] = {}
    for part in parallel(channel, lookup_profiles, [wanted[k::streams] for k in range(streams)]):
        found.update(part)
    return {i: found[(f.type, f.value)] for i, f in forms.items()}


# ---- the benchmark -----------------------------------------------------------------------------

def measure(feed: Feed, rules: IdentityRules, streams: int, window: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-edge-feed-") as scratch:
        with bench_neo4j(Path(scratch) / "neo4j") as neo4j, bench_server(neo4j) as server:
            began = time.monotonic()
            acks = Acks()
            for part in parallel(server.channel, lambda stub, events: send_events(stub, events, window),
                                 feed.streams(streams)):
                acks.update(part)
            ingest_s = time.monotonic() - began
            log(f"ingested {len(feed.events)} events in {ingest_s:.0f} s")
            with server.channel() as channel:
                stub = Stub(channel)
                began = time.monotonic()
                summary = import_records(stub, feed.records)
                import_s = time.monotonic() - began
                log(f"imported {len(feed.records)} records in {import_s:.0f} s")
                drain = wait_for_linkage(stub, 600, 180, report=log)
                log(f"online linkage {drain.outcome} after {drain.seconds:.0f} s")
                quarantined = list_rejected(stub)
            predicted = lookup_truth(server.channel, feed.world, rules, streams)
            good = stored_forms(rules, good_identifiers(feed))
            graph = stored(neo4j, good.values())
    missing = sorted(i for i, form in good.items() if form not in graph.found)
    return {"acks": acks, "summary": summary, "drain": drain, "quarantined": quarantined, "predicted": predicted,
            "good": good, "missing": missing, "graph": graph, "ingest_s": ingest_s, "import_s": import_s}


def figures(feed: Feed, rules: IdentityRules, run: Mapping[str, Any]) -> dict[str, Any]:
    """Every figure of the run, and the problems that make it red."""
    want = expected(rules, feed)
    acks: Acks = run["acks"]
    summary: pb.ImportSummary = run["summary"]
    graph: Stored = run["graph"]
    quarantined: Counter[tuple[str, str]] = run["quarantined"]
    rejected = acks.with_status("rejected")
    accepted = acks.with_status("accepted")
    warned = set(acks.warnings) & accepted
    event_codes = Counter(acks.code[e] for e in rejected)
    linking = score(run["predicted"], feed.world)
    invalid_sent = sum(want.invalid_by_type.values())
    invalid_kept = sum(graph.invalid_by_type.values())
    items = {kind: sum(n for (k, _), n in quarantined.items() if k == kind) for kind in ("event", "record")}
    result = {
        "events": {"sent": len(feed.events), "accepted": len(accepted), "with_warnings": len(warned),
                   "duplicate": len(acks.with_status("duplicate")), "rejected": len(rejected),
                   "rejected_by_code": dict(event_codes), "expected_with_warnings": len(want.events_with_warnings),
                   "expected_rejected": len(want.rejected)},
        "records": {"sent": len(feed.records), "accepted": summary.records - summary.rejected,
                    "with_warnings": summary.records_with_warnings, "rejected": summary.rejected,
                    "rejected_by_code": {code: n for (k, code), n in quarantined.items() if k == "record"},
                    "expected_with_warnings": len(want.records_with_warnings), "expected_rejected": 0},
        "old_rule_would_have_lost": {
            "events": old_rule_losses(feed, warned, rejected),
            "records": summary.records_with_warnings + summary.rejected,
            "issue": {"events": [ISSUE_EVENTS_LOST, ISSUE_EVENTS], "records": [ISSUE_RECORDS_LOST, ISSUE_RECORDS]}},
        "good_values": {"sent": len(run["good"]), "stored": len(run["good"]) - len(run["missing"]),
                        "missing": [list(i) for i in run["missing"][:20]]},
        "invalid_values": {"sent": invalid_sent, "stored": invalid_kept, "sent_by_type": dict(want.invalid_by_type),
                           "stored_by_type": graph.invalid_by_type, "touchpoints": graph.has_invalid,
                           "expected_touchpoints": want.has_invalid},
        "unparsed_dates_of_birth": {"sent": want.unparsed_dates_of_birth, "stored": graph.unparsed_dates_of_birth},
        "quarantine": {"items": items, "rejected_events": len(rejected), "rejected_records": summary.rejected,
                       "by_code": {f"{k}/{c}": n for (k, c), n in sorted(quarantined.items())}},
        "linking": {**linking, "lookups": len(run["predicted"]), "not_found": not_found(run["predicted"]),
                    "wait": {"outcome": run["drain"].outcome, "seconds": run["drain"].seconds}},
        "touchpoints": graph.touchpoints,
        "flaws": dict(feed.flaw_counts()), "unusable": dict(Counter(feed.unusable.values())),
        "ingest_s": run["ingest_s"], "import_s": run["import_s"], "import_summary": summary_figures(summary),
    }
    result["problems"] = problems(result, feed, want, acks)
    return result


def problems(result: Mapping[str, Any], feed: Feed, want: Expected, acks: Acks) -> list[str]:
    found = []
    good = result["good_values"]
    if good["stored"] != good["sent"]:
        found.append(f"{good['sent'] - good['stored']} good values not stored, e.g. {good['missing'][:3]}")
    invalid = result["invalid_values"]
    if invalid["stored_by_type"] != invalid["sent_by_type"]:
        found.append(f"invalid values stored {invalid['stored_by_type']}, sent {invalid['sent_by_type']}")
    if invalid["touchpoints"] != invalid["expected_touchpoints"]:
        found.append(f"{invalid['touchpoints']} HasInvalid touchpoints, expected {invalid['expected_touchpoints']}")
    dates = result["unparsed_dates_of_birth"]
    if dates["stored"] != dates["sent"]:
        found.append(f"{dates['stored']} touchpoints keep date_of_birth_unparsed, expected {dates['sent']}")
    quarantine = result["quarantine"]
    if quarantine["items"] != {"event": quarantine["rejected_events"], "record": quarantine["rejected_records"]}:
        found.append(f"quarantine holds {quarantine['items']}, rejected acks: {quarantine['rejected_events']} events, "
                     f"{quarantine['rejected_records']} records")
    sent = {e.event_id for e in feed.events}
    if set(acks.status) != sent:
        found.append(f"{len(sent - set(acks.status))} events without an ack")
    wrong_code = sorted(e for e, code in want.rejected.items() if acks.code.get(e) != code)
    unexpected = sorted(acks.with_status("rejected") - set(want.rejected))
    if wrong_code or unexpected:
        found.append(f"rejections differ from the unusable events: {len(wrong_code)} not rejected as expected "
                     f"(e.g. {wrong_code[:3]}), {len(unexpected)} rejected unexpectedly (e.g. {unexpected[:3]})")
    warned = set(acks.warnings) - set(want.rejected)
    if warned != want.events_with_warnings:
        found.append(f"{len(want.events_with_warnings - warned)} flawed events acked without a warning, "
                     f"{len(warned - want.events_with_warnings)} clean events with one")
    records = result["records"]
    if (records["with_warnings"], records["rejected"]) != (records["expected_with_warnings"], 0):
        found.append(f"records: {records['with_warnings']} with warnings, {records['rejected']} rejected; expected "
                     f"{records['expected_with_warnings']} and 0")
    profiles = result["linking"]["profiles"]
    if profiles["precision"] < GOALS["precision"] or profiles["recall"] < GOALS["recall"]:
        found.append(f"linking: precision {profiles['precision']:.4f}, recall {profiles['recall']:.4f} "
                     f"(goals {GOALS['precision']}, {GOALS['recall']})")
    if result["linking"]["profiles_with_two_peoples_crm_ids"]:
        found.append(f"{result['linking']['profiles_with_two_peoples_crm_ids']} profiles hold two people's CRM ids")
    if result["linking"]["wait"]["outcome"] != "drained":
        found.append(f"online linkage {result['linking']['wait']['outcome']}")
    return found


def report(result: Mapping[str, Any], people: int) -> None:
    print(f"edge feed of {people} people: flaws {_sorted(result['flaws'])}, unusable events "
          f"{_sorted(result['unusable'])}")
    print(f"{'':<8} {'sent':>7} {'accepted':>9} {'warned':>7} {'rejected':>9}  {'expected warned/rejected':<25} "
          "rejected by code")
    for name in ("events", "records"):
        row = result[name]
        print(f"{name:<8} {row['sent']:>7} {row['accepted']:>9} {row['with_warnings']:>7} {row['rejected']:>9}  "
              f"{str(row['expected_with_warnings']) + ' / ' + str(row['expected_rejected']):<25} "
              f"{_sorted(row['rejected_by_code']) or '-'}")
    lost, events, records = result["old_rule_would_have_lost"], result["events"], result["records"]
    print(f"{'the old all-or-nothing rule would have lost:':<67} {'this feed':<26} issue #11")
    rows = (("events with a warning or rejected", lost["events"]["with_warning_or_rejected"], events["sent"], ""),
            ("events also naming a type it did not know (anonymousId, userId)", lost["events"]["with_old_vocabulary"],
             events["sent"], f"{ISSUE_EVENTS_LOST:,} of {ISSUE_EVENTS:,} ({_share(ISSUE_EVENTS_LOST, ISSUE_EVENTS)})"),
            ("records with a warning or rejected", lost["records"], records["sent"],
             f"{ISSUE_RECORDS_LOST:,} of {ISSUE_RECORDS:,} ({_share(ISSUE_RECORDS_LOST, ISSUE_RECORDS)})"))
    for label, part, whole, issue in rows:
        print(f"  {label:<65} {f'{part:,} of {whole:,} ({_share(part, whole)})':<26} {issue}")
    good, invalid, dates, quarantine = (result["good_values"], result["invalid_values"],
                                        result["unparsed_dates_of_birth"], result["quarantine"])
    print(f"good values stored        {good['stored']} of {good['sent']} ({_share(good['stored'], good['sent'], 2)})"
          f"   goal: all")
    print(f"invalid values stored     {invalid['stored']} of {invalid['sent']} sent {_sorted(invalid['stored_by_type'])}"
          f" on {invalid['touchpoints']} touchpoints (expected {invalid['expected_touchpoints']})   goal: equal")
    print(f"dates of birth unparsed   {dates['stored']} of {dates['sent']} kept as date_of_birth_unparsed")
    print(f"quarantine (ListRejected) {quarantine['items']['event']} events, {quarantine['items']['record']} records "
          f"of {quarantine['rejected_events']} + {quarantine['rejected_records']} rejected   goal: equal")
    link, profiles = result["linking"], result["linking"]["profiles"]
    print(f"linking vs truth          precision {profiles['precision']:.4f} (>= {GOALS['precision']}), recall "
          f"{profiles['recall']:.4f} (>= {GOALS['recall']}), probabilistic P {link['probabilistic']['precision']:.4f} "
          f"R {link['probabilistic']['recall']:.4f}; profiles mixing people {link['profiles_mixing_people']}, "
          f"with two people's CRM ids {link['profiles_with_two_peoples_crm_ids']}; {link['not_found']} of "
          f"{link['lookups']} lookups not found")
    print(f"ingest {result['ingest_s']:.0f} s, import {result['import_s']:.0f} s, online linkage "
          f"{link['wait']['outcome']} in {link['wait']['seconds']:.0f} s")
    for line in link["wrong_links"]:
        print(f"  wrong link: {line}")
    for problem in result["problems"]:
        print(f"CHECK FAILED: {problem}")
    if not result["problems"]:
        print("checks: every good value stored, every broken one kept as invalid, every reject in quarantine, "
              "no stranger fused")


def _share(part: int, whole: int, digits: int = 1) -> str:
    return f"{part / whole:.{digits}%}" if whole else "-"


def _sorted(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1, help="of the world")
    parser.add_argument("--feed-seed", type=int, default=11, help="of the flaws")
    parser.add_argument("--streams", type=int, default=4, help="parallel Ingest and LookupProfiles streams")
    parser.add_argument("--window", type=int, default=1000, help="unacked events in flight per stream")
    parser.add_argument("--bad-phone-share", type=float, default=FeedShares.bad_phone)
    parser.add_argument("--bad-email-share", type=float, default=FeedShares.bad_email)
    parser.add_argument("--unusable-share", type=float, default=FeedShares.unusable)
    args = parser.parse_args()
    rules = load_rules()  # the file the server reads
    shares = FeedShares(bad_phone=args.bad_phone_share, bad_email=args.bad_email_share, unusable=args.unusable_share)
    world = generate(args.people, seed=args.seed, prefix=f"edge{args.people}s{args.seed}")
    feed = newcomer_feed(world, shares, args.feed_seed)
    log(f"{len(feed.events)} events, {len(feed.records)} records; flaws {_sorted(feed.flaw_counts())}, "
        f"unusable {_sorted(Counter(feed.unusable.values()))}")
    result = figures(feed, rules, measure(feed, rules, args.streams, args.window))
    report(result, args.people)
    path = save("edge_feed", {"people": args.people, "seed": args.seed, "feed_seed": args.feed_seed,
                              "shares": asdict(shares), "goals": GOALS, **result})
    print(f"figures saved to {path}")
    if result["problems"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
