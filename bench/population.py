"""A seeded synthetic population with known truth, for benchmarks and correctness tests.

People meet the company through the web (anonymously first, logging in later), the app,
e-mail, stores and the CRM. The traps merge protection must survive are built in:
- households share a tablet on which each member logs in with their own user id;
- tills type junk (`test@test.com`, `0000000000`) for customers who give no contact data;
- some visitors stay anonymous for ever.
`truth` maps every personal identifier that appears in an event to its person; shared
tablets and junk values belong to nobody and are not in it.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from identity.v1 import common_pb2, identity_service_pb2 as pb

START = datetime(2026, 8, 1, tzinfo=UTC)
SPAN = timedelta(days=90)
JUNK = (("email", "test@test.com"), ("phone", "0000000000"))
FIRST_NAMES = ("Ann", "Bill", "Chloe", "Dev", "Ema", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea")
LAST_NAMES = ("Smith", "Okafor", "Novak", "Garcia", "Kim", "Rossi", "Meyer", "Haddad", "Ito", "Silva")


@dataclass(frozen=True)
class EventSpec:
    event_id: str
    occurred_at: datetime
    source: str
    channel: str
    type: str
    identifiers: tuple[tuple[str, str], ...]
    traits: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)

    def to_proto(self) -> pb.Event:
        stamp = Timestamp()
        stamp.FromDatetime(self.occurred_at)
        return pb.Event(
            event_id=self.event_id,
            occurred_at=stamp,
            source=self.source,
            channel=common_pb2.CHANNEL_OFFLINE if self.channel == "offline" else common_pb2.CHANNEL_ONLINE,
            type=self.type,
            identifiers=[common_pb2.Identifier(type=t, value=v) for t, v in self.identifiers],
            traits=self.traits,
            properties=self.properties,
        )


@dataclass(frozen=True)
class Person:
    person_id: str
    identifiers: tuple[tuple[str, str], ...]


@dataclass
class Population:
    people: list[Person]
    events: list[EventSpec]
    truth: dict[tuple[str, str], str]


class _Builder:
    def __init__(self, rng: random.Random, prefix: str, events_per_person: float) -> None:
        self.rng = rng
        self.prefix = prefix
        self.rate = events_per_person
        self.events: list[EventSpec] = []
        self.truth: dict[tuple[str, str], str] = {}

    def emit(self, person: str, moment: datetime, source: str, channel: str, kind: str,
             identifiers: list[tuple[str, str]], traits: dict[str, str] | None = None,
             properties: dict[str, str] | None = None) -> None:
        event_id = f"{self.prefix}-{person}-{len(self.events)}"
        self.events.append(EventSpec(event_id, moment, source, channel, kind, tuple(identifiers), traits or {},
                                     properties or {}))
        for identifier in identifiers:
            if identifier not in JUNK and "-tablet-" not in identifier[1]:  # junk and tablets are nobody's
                self.truth.setdefault(identifier, person)

    def moment(self, after: datetime) -> datetime:
        return min(after + timedelta(minutes=self.rng.expovariate(1 / 600)), START + SPAN)


def phone_number(prefix_hash: int, n: int) -> str:
    """A valid North American number, unique per (prefix, n): area 201-989 has valid exchanges 200-999."""
    value = (prefix_hash * 1_000_003 + n) % (700 * 800 * 10_000)
    area, rest = divmod(value, 800 * 10_000)
    exchange, line = divmod(rest, 10_000)
    return f"+1{[212, 312, 415, 617, 718, 202, 305][area % 7]}{200 + exchange:03d}{line:04d}"


def generate(people: int, events: int, seed: int = 7, prefix: str = "p", household_share: float = 0.05,
             junk_share: float = 0.02) -> Population:
    """About `events` events of `people` people; every value embeds prefix, so runs never collide."""
    rng = random.Random(seed)
    builder = _Builder(rng, prefix, events / max(people, 1))
    prefix_hash = sum(ord(c) * 31**i for i, c in enumerate(prefix)) % 7919
    persons = [_person(rng, prefix, n, prefix_hash) for n in range(people)]
    for person, ids in persons:
        _life(builder, person, ids, junk_share)
    _households(builder, rng, prefix, persons, household_share)
    builder.events.sort(key=lambda e: e.occurred_at)
    return Population([Person(p, tuple(i for kind in ids.values() for i in kind)) for p, ids in persons],
                      builder.events, builder.truth)


def _person(rng: random.Random, prefix: str, n: int, prefix_hash: int) -> tuple[str, dict[str, list[tuple[str, str]]]]:
    person = f"{prefix}{n}"
    known = rng.random() > 0.1  # one visitor in ten stays anonymous for ever, on one browser
    browsers = rng.randint(1, 3) if known else 1
    ids: dict[str, list[tuple[str, str]]] = {"cookie": [("cookie", f"{prefix}-c-{n}-{k}") for k in range(browsers)]}
    if known:
        ids["email"] = [("email", f"{prefix}-{n}@example.com")]
        if rng.random() < 0.8:
            ids["user_id"] = [("user_id", f"{prefix}-u-{n}")]
        if rng.random() < 0.5:
            ids["phone"] = [("phone", phone_number(prefix_hash, n))]
        if rng.random() < 0.4:
            ids["crm_id"] = [("crm_id", f"{prefix}-crm-{n}")]
        if rng.random() < 0.4:
            ids["loyalty_id"] = [("loyalty_id", f"{prefix}-L-{n}")]
        ids["device_id"] = [("device_id", f"{prefix}-d-{n}-{k}") for k in range(rng.randint(0, 2))]
    return person, ids


def _life(builder: _Builder, person: str, ids: dict[str, list[tuple[str, str]]], junk_share: float) -> None:
    rng = builder.rng
    touches = round(rng.expovariate(1 / max(builder.rate - 5, 0.5)))  # about 5 events are the life below
    moment = START + timedelta(seconds=rng.uniform(0, SPAN.total_seconds() / 2))
    login = ids.get("user_id", ids.get("email", []))
    for cookie in ids["cookie"]:  # anonymous first, then logs in on that browser
        moment = builder.moment(moment)
        builder.emit(person, moment, "web", "online", "page_view", [cookie], properties={"path": "/"})
        if login:
            moment = builder.moment(moment)
            email = ids["email"] if "user_id" in ids else []
            builder.emit(person, moment, "web", "online", "identify", [cookie, *login, *email],
                         traits={"first_name": rng.choice(FIRST_NAMES)})
    for device in ids.get("device_id", []):
        moment = builder.moment(moment)
        builder.emit(person, moment, "app", "online", "app_open", [device, *login])
    if "crm_id" in ids:
        moment = builder.moment(moment)
        builder.emit(person, moment, "crm", "offline", "crm_export",
                     [*ids["crm_id"], *ids["email"], *ids.get("phone", [])], traits=_crm_traits(rng))
    if "loyalty_id" in ids:
        moment = builder.moment(moment)
        contact = ids["email"] if "phone" not in ids or rng.random() < 0.5 else ids["phone"]
        builder.emit(person, moment, "pos", "offline", "purchase", [*ids["loyalty_id"], *contact],
                     properties={"amount": f"{rng.uniform(5, 200):.2f}"})
    if "phone" in ids and "crm_id" not in ids:
        moment = builder.moment(moment)
        builder.emit(person, moment, "app", "online", "identify", [*ids["phone"], *login])
    for _ in range(touches):  # the rest of the person's touchpoints, on channels already linked
        moment = builder.moment(moment)
        _touch(builder, person, ids, moment, junk_share)


def _touch(builder: _Builder, person: str, ids: dict[str, list[tuple[str, str]]], moment: datetime,
           junk_share: float) -> None:
    rng = builder.rng
    roll = rng.random()
    if roll < 0.55 or len(ids) == 1:
        builder.emit(person, moment, "web", "online", "page_view", [rng.choice(ids["cookie"])],
                     properties={"path": f"/p/{rng.randint(1, 300)}"})
    elif roll < 0.7 and ids.get("device_id"):
        builder.emit(person, moment, "app", "online", "app_open", [rng.choice(ids["device_id"])])
    elif roll < 0.85 and "email" in ids:
        builder.emit(person, moment, "email", "online", "email_open", ids["email"])
    elif "loyalty_id" in ids:
        carried = [*ids["loyalty_id"]]
        if rng.random() < junk_share * 10:
            carried.append(rng.choice(JUNK))  # the till typed junk for "no contact data"
        builder.emit(person, moment, "pos", "offline", "purchase", carried,
                     properties={"amount": f"{rng.uniform(5, 200):.2f}"})
    else:
        builder.emit(person, moment, "web", "online", "page_view", [rng.choice(ids["cookie"])])


def _households(builder: _Builder, rng: random.Random, prefix: str,
                persons: list[tuple[str, dict[str, list[tuple[str, str]]]]], share: float) -> None:
    """Families whose members each log in with their own user id on one shared tablet."""
    with_user = [(p, ids) for p, ids in persons if "user_id" in ids]
    rng.shuffle(with_user)
    families = int(len(with_user) * share / 2.5)
    for family in range(families):
        members = with_user[family * 3: family * 3 + rng.randint(2, 3)]
        tablet = ("device_id", f"{prefix}-tablet-{family}")
        moment = START + timedelta(seconds=rng.uniform(0, SPAN.total_seconds()))
        for person, ids in members:
            for _ in range(2):
                moment = builder.moment(moment)
                builder.emit(person, moment, "app", "online", "app_open", [tablet, *ids["user_id"]])


def _crm_traits(rng: random.Random) -> dict[str, str]:
    return {
        "first_name": rng.choice(FIRST_NAMES),
        "last_name": rng.choice(LAST_NAMES),
        "date_of_birth": f"{rng.randint(1950, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "postcode": f"{rng.randint(10000, 99999)}",
        "country": "US",
    }


def split_by_person(events: list[EventSpec], streams: int) -> list[list[EventSpec]]:
    """Events dealt to streams by person, each stream in time order (as a per-region feed would)."""
    dealt: list[list[EventSpec]] = [[] for _ in range(streams)]
    for event in events:
        person = event.event_id.rsplit("-", 1)[0]
        dealt[zlib.crc32(person.encode()) % streams].append(event)
    return dealt


def iter_protos(events: list[EventSpec]) -> Iterator[pb.Event]:
    return (event.to_proto() for event in events)
