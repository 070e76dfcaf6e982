"""A CDP-shaped world with known truth: mostly singletons, households, namesakes, typos, junk.

Febrl is half duplicates, so a linker judged on it may learn that "same postcode" means "same
person". A customer data platform's data is the opposite: most people have one record per
source, and most records in a postcode belong to strangers. This world is built to expose a
linker that joins strangers:

- many people per postcode (`per_postcode`, 100 by default; the issue's dense towns have 6,000),
  each postcode in one city, each person at a one-line street address ("9180 Meadow Ave");
- households of two (about 12% of people) sharing surname, address, postcode, city and a
  landline, with their own given names and birth dates;
- namesakes: Zipf-like name frequencies repeat common names by themselves, and ~3% of people
  are planted with the name of someone in another town (another birth date);
- CRM records (~70% of people, imported with ImportRecords) carrying `crm_id`, mostly an
  e-mail, sometimes a mobile or the household landline, with clean traits;
- loyalty signups typed at the till (~40% of people, half of them without a CRM record): lower
  case, typos, nicknames, missing or day/month-swapped birth dates; ~30% carry the e-mail,
  which links them to the CRM record deterministically (the graph's "known matches");
- web page views on cookies, logins (cookie + user_id + e-mail) for ~60% of people, app opens
  (device + user_id), e-mail opens, till purchases with junk at times.

A records-only world (`records_only=True`) is the same world with only what a store's systems
send: the CRM records and the loyalty signups with their till purchases, not the web, app and
e-mail events (which a million people would make too many to send in the machine's time).
Its events are the full world's loyalty and purchase events, same ids included.

Every value embeds the prefix (phones, which cannot, are derived from it), so that runs and
tests never collide in one database. Only the documented trait keys are used.

The truth, computed from what is sent and nothing else, says which person every identifier
belongs to, which identifiers the data can link (co-occurrence in an event or record, plus each
person's loyalty signup with their CRM record), and which of those pairs only a probabilistic
linker can find.
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate

from google.protobuf.timestamp_pb2 import Timestamp
from identity.v1 import common_pb2, identity_service_pb2 as pb

from server.identity.disjoint_sets import DisjointSets

Ident = tuple[str, str]  # (identifier type, value as sent)

START = datetime(2026, 3, 1, tzinfo=UTC)
SPAN = timedelta(days=90)
EXPORTED = START + SPAN - timedelta(days=1)  # when the CRM export was taken
CRM_SOURCE = "crm"
JUNK: tuple[Ident, ...] = (("email", "test@test.com"), ("phone", "0000000000"))

# ---- pools, most frequent first (sampled with Zipf-like weights) ---------------------------

GIVEN_NAMES = (
    "James Mary Michael Patricia Robert Jennifer John Linda David Elizabeth William Barbara Richard Susan "
    "Joseph Jessica Thomas Sarah Christopher Karen Charles Lisa Daniel Nancy Matthew Betty Anthony Sandra "
    "Mark Margaret Donald Ashley Steven Kimberly Andrew Emily Paul Donna Joshua Michelle Kenneth Carol "
    "Kevin Amanda Brian Melissa Timothy Deborah Ronald Stephanie George Rebecca Jason Sharon Edward Laura "
    "Jeffrey Cynthia Ryan Dorothy Jacob Amy Nicholas Kathleen Gary Angela Eric Shirley Jonathan Emma "
    "Stephen Brenda Larry Pamela Justin Nicole Scott Anna Brandon Samantha Benjamin Katherine Samuel "
    "Christine Gregory Debra Alexander Rachel Patrick Carolyn Frank Janet Raymond Maria Jack Olivia Dennis "
    "Heather Jerry Helen Tyler Catherine Aaron Diane Jose Julie Adam Victoria Nathan Joyce Henry Lauren "
    "Zachary Kelly Douglas Christina Peter Ruth Kyle Joan Noah Virginia Ethan Judith Jeremy Evelyn "
    "Christian Hannah Walter Andrea Keith Megan Austin Cheryl Roger Jacqueline Terry Madison Sean Teresa "
    "Gerald Abigail Carl Sophia Dylan Martha Lawrence Harold Arthur Gloria"
).split()

SURNAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker "
    "Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper "
    "Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James "
    "Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez "
    "Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez "
    "Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole "
    "Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens "
    "Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker "
    "Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz "
    "Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice "
    "Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley "
    "Spencer Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham "
    "Duncan Armstrong Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman "
    "Johnston Matthews Pena Richards Contreras Willis Carpenter Lawrence Sandoval Guerrero George Chapman "
    "Rios Estrada Ortega Watkins Greene Nunez Wheeler Valdez Harper Burke Larson Santiago Maldonado "
    "Morrison Franklin Carlson Austin Dominguez Carr Lawson Jacobs OBrien Lynch Singh Vega Bishop "
    "Montgomery Oliver Jensen Harvey Williamson Gilbert Dean Sims Espinoza Howell Li Wong Reid Hanson Le "
    "McCoy Garrett Burton Fuller Wang Weber Welch Rojas Lucas Marquez Fields Park Yang Little Banks "
    "Padilla Day Walsh Bowman Schultz Luna Fowler Mejia Davidson Acosta Brewer Holland Juarez Newman "
    "Pearson Curtis Cortez Douglas Schneider"
).split()

STREETS = (
    "Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Walnut Sunset Lincoln Jackson Church River "
    "Highland Meadow Ridge Forest Spring Willow Mill Chestnut Franklin Center Jefferson Adams Madison "
    "Cherry Dogwood Hickory Birch Spruce Aspen Laurel Magnolia Sycamore Poplar Holly Juniper Locust "
    "Mulberry Hawthorn Cypress Redwood Valley Prospect Pleasant Summit Grove Orchard Garden Brook Creek "
    "Bridge Mountain Canyon Harbor Bay Shore Beach Lakeview Fairview Hillcrest Woodland Greenwood "
    "Riverside Sunrise College School Railroad Depot Market Water Union Liberty Heritage Colonial "
    "Pioneer Meadowbrook Brookside Stonegate Quail Eagle Hawk Robin Cardinal Bluebird Dove Heron Falcon "
    "Wildwood Timber Oakwood Pinecrest Elmwood Maplewood Briarwood Kingston Windsor Cambridge Oxford "
    "Princeton Stanford Berkeley Clinton Monroe Hamilton Grant Wilson Taylor Hayes Cleveland Harrison "
    "Tyler Polk Pierce Fillmore Buchanan Garfield Kennedy Roosevelt Truman Vine Rose Ivy Lilac Daisy "
    "Tulip Violet Iris Clover Heather Sage Fern Granite Marble Silver Copper Crystal Emerald Coral Amber Ash "
    "Beech Linden Alder Hazel Acorn"
).split()

STREET_SUFFIXES = ("St", "Ave", "Rd", "Dr", "Ln", "Ct", "Blvd", "Way", "Pl", "Ter", "Cir", "Pkwy", "Trl")

CITIES = (
    "Springfield", "Riverside", "Fairview", "Franklin", "Greenville", "Bristol", "Clinton", "Madison",
    "Georgetown", "Salem", "Marion", "Ashland", "Oxford", "Arlington", "Burlington", "Manchester", "Milton",
    "Newport", "Auburn", "Dayton", "Lexington", "Milford", "Winchester", "Kingston", "Dover", "Hudson",
    "Mount Vernon", "Oakland", "Centerville", "Shelbyville", "Lebanon", "Troy", "Chester", "Florence",
    "Columbia", "Glendale", "Plymouth", "Princeton", "Richmond", "Lancaster", "Bedford", "Camden", "Carlisle",
    "Danville", "Elkton", "Farmington", "Hanover", "Jamestown", "Lakewood", "Newton", "Oakdale",
    "Pleasant Hill", "Quincy", "Rochester", "Sheffield", "Trenton", "Union City", "Vernon", "Waverly",
    "Woodstock", "Easton", "Warren", "Portland", "Aurora", "Hillsboro", "Brookfield", "Westfield", "Riverton",
    "Rockport", "Stratford", "Bloomfield", "Cedar Grove", "Eastwood", "Fairfield", "Glenwood", "Lakeside",
    "Midway", "Northfield", "Oak Ridge", "Pinehurst", "Ridgewood", "Summerville", "Weston", "Wilmington",
    "Bayside", "Maple Valley", "Elm Creek", "Stony Point", "Greenfield", "Clearwater",
)

# Nicknames a cashier may hear instead of the formal name (only for names in GIVEN_NAMES).
NICKNAMES: dict[str, tuple[str, ...]] = {
    "William": ("Bill", "Will", "Billy"), "Michael": ("Mike",), "Elizabeth": ("Liz", "Beth", "Betsy"),
    "Robert": ("Bob", "Rob", "Bobby"), "James": ("Jim", "Jimmy"), "Richard": ("Rick", "Dick"),
    "Thomas": ("Tom", "Tommy"), "Joseph": ("Joe",), "Charles": ("Chuck", "Charlie"),
    "Christopher": ("Chris",), "Daniel": ("Dan", "Danny"), "Matthew": ("Matt",), "Anthony": ("Tony",),
    "Steven": ("Steve",), "Andrew": ("Andy", "Drew"), "Joshua": ("Josh",), "Kenneth": ("Ken", "Kenny"),
    "Edward": ("Ed", "Eddie", "Ted"), "Timothy": ("Tim",), "Jennifer": ("Jen", "Jenny"),
    "Patricia": ("Pat", "Patty", "Trish"), "Margaret": ("Peggy", "Maggie", "Meg"), "Katherine": ("Kate", "Kathy"),
    "Susan": ("Sue", "Susie"), "Deborah": ("Deb", "Debbie"), "Rebecca": ("Becky",), "Samantha": ("Sam",),
    "Alexander": ("Alex",), "Benjamin": ("Ben",), "Jonathan": ("Jon",), "Nicholas": ("Nick",),
    "Gregory": ("Greg",), "Raymond": ("Ray",), "Lawrence": ("Larry",), "Jeffrey": ("Jeff",),
    "Douglas": ("Doug",), "Gerald": ("Jerry",), "Kimberly": ("Kim",), "Cynthia": ("Cindy",),
    "Pamela": ("Pam",), "Barbara": ("Barb",), "Dorothy": ("Dot", "Dottie"), "Judith": ("Judy",),
    "Abigail": ("Abby",), "Donald": ("Don",), "Ronald": ("Ron",), "Peter": ("Pete",), "Zachary": ("Zach",),
    "Jacob": ("Jake",), "Catherine": ("Cathy",), "Victoria": ("Vicky", "Tori"), "Samuel": ("Sam",),
    "Christine": ("Chris",), "Christina": ("Tina",), "Stephanie": ("Steph",), "Jacqueline": ("Jackie",),
    "Kathleen": ("Kathy",), "Stephen": ("Steve",), "Nathan": ("Nate",), "Walter": ("Walt",),
    "Virginia": ("Ginny",), "Frank": ("Frankie",), "Henry": ("Hank",),
}

# keys next to each other on a keyboard, for substitution typos
_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


# ---- the world -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Person:
    """Who someone really is; the signup and the CRM record are two views of this."""

    person_id: str
    given: str
    surname: str
    birth: date
    address: str
    city: str
    postcode: str
    household: int | None = None
    namesake_of: str | None = None


@dataclass(frozen=True)
class CdpEvent:
    """A live event of one person (person kept so that streams can be dealt by person)."""

    event_id: str
    person: str
    occurred_at: datetime
    source: str
    channel: str  # "online" or "offline"
    type: str
    identifiers: tuple[Ident, ...]
    traits: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)

    def to_proto(self) -> pb.Event:
        return pb.Event(event_id=self.event_id, occurred_at=_stamp(self.occurred_at), source=self.source,
                        channel=common_pb2.CHANNEL_OFFLINE if self.channel == "offline" else common_pb2.CHANNEL_ONLINE,
                        type=self.type, identifiers=[common_pb2.Identifier(type=t, value=v) for t, v in self.identifiers],
                        traits=self.traits, properties=self.properties)


@dataclass(frozen=True)
class CrmRecord:
    """One row of the CRM export, sent with ImportRecords."""

    record_id: str
    person: str
    identifiers: tuple[Ident, ...]
    traits: dict[str, str]
    recorded_at: datetime
    source: str = CRM_SOURCE

    @property
    def identifier(self) -> Ident:
        """The identifier the service gives an imported record: record:<source>/<record_id>."""
        return ("record", f"{self.source}/{self.record_id}")

    def to_proto(self) -> pb.SourceRecord:
        return pb.SourceRecord(record_id=self.record_id, source=self.source, traits=self.traits,
                               identifiers=[common_pb2.Identifier(type=t, value=v) for t, v in self.identifiers],
                               recorded_at=_stamp(self.recorded_at))


@dataclass(frozen=True)
class Truth:
    """What the service should conclude, by identifier.

    - person_of: every personal identifier that appears -> its person. Junk, and values that
      appear in the data of two people (a landline both partners gave the CRM), are nobody's;
    - deterministic_of: identifier -> cluster of identifiers joined by co-occurrence in one
      event or record (what stitching alone can join);
    - linkable_of: the same, plus each person's loyalty signup joined with their CRM record
      (what the data can link at all);
    - probabilistic_pairs: (loyalty_id, record) of one person in different deterministic
      clusters: only a probabilistic linker can find them.
    """

    person_of: dict[Ident, str]
    deterministic_of: dict[Ident, int]
    linkable_of: dict[Ident, int]
    probabilistic_pairs: frozenset[tuple[Ident, Ident]]


@dataclass
class CdpWorld:
    prefix: str
    seed: int
    people: list[Person]
    events: list[CdpEvent]
    records: list[CrmRecord]
    truth: Truth

    def streams(self, count: int) -> list[list[CdpEvent]]:
        """Events dealt to `count` streams by person, each stream in time order."""
        dealt: list[list[CdpEvent]] = [[] for _ in range(max(count, 1))]
        for event in self.events:
            dealt[zlib.crc32(event.person.encode()) % len(dealt)].append(event)
        return dealt

    def stats(self) -> dict[str, int]:
        signups = [e for e in self.events if e.type == "loyalty_signup"]
        return {
            "people": len(self.people),
            "postcodes": len({p.postcode for p in self.people}),
            "cities": len({p.city for p in self.people}),
            "in_households": sum(p.household is not None for p in self.people),
            "planted_namesakes": sum(p.namesake_of is not None for p in self.people),
            "people_sharing_a_name": _sharing_a_name(self.people),
            "events": len(self.events),
            "crm_records": len(self.records),
            "loyalty_signups": len(signups),
            "signups_with_email": sum(any(t == "email" for t, _ in e.identifiers) for e in signups),
            "signups_without_dob": sum("date_of_birth" not in e.traits for e in signups),
            "identifiers": len(self.truth.person_of),
            "probabilistic_pairs": len(self.truth.probabilistic_pairs),
        }


def _sharing_a_name(people: Sequence[Person]) -> int:
    names: dict[tuple[str, str], int] = defaultdict(int)
    for person in people:
        names[(person.given, person.surname)] += 1
    return sum(n for n in names.values() if n > 1)


# ---- generation ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shares:
    """The shape of the world; the defaults are the issue's."""

    household_pairs: float = 0.065  # a draw is a household of two (~12% of people live in one)
    planted_namesakes: float = 0.03
    crm: float = 0.70
    crm_email: float = 0.85
    crm_mobile: float = 0.25
    crm_landline: float = 0.35  # of household members with a CRM record
    loyalty: float = 0.40
    loyalty_with_crm: float = 0.5  # of the loyalty members, those who also have a CRM record
    signup_email: float = 0.30
    web_login: float = 0.60
    anonymous_browser: float = 0.8  # of people who never log in
    app: float = 0.30  # of people who log in
    email_opens: float = 0.30
    junk_at_till: float = 0.08  # of purchases
    nickname: float = 0.30  # of signups whose given name has a nickname (half do: ~15% of all signups)
    missing_dob: float = 0.30
    swapped_dob: float = 0.05
    name_typo: float = 0.25  # per name
    street_typo: float = 0.25


# The channels a records-only world sends: what a till and a CRM export carry.
RECORDS_ONLY_TYPES = frozenset({"loyalty_signup", "purchase"})


def generate(people: int, seed: int = 1, prefix: str = "cdp", shares: Shares = Shares(), per_postcode: int = 100,
             records_only: bool = False) -> CdpWorld:
    """A seeded world of `people` people, about `per_postcode` of them in each postcode; the
    same arguments give the same world. `records_only` keeps, of the events, the loyalty
    signups and purchases (the rest is drawn all the same, so the people and what they do at
    the till and in the CRM are those of the full world)."""
    if per_postcode < 1:
        raise ValueError(f"per_postcode must be at least 1, not {per_postcode}")
    rng = random.Random(seed)
    town = _Town.build(rng, people, per_postcode)
    persons = _people(rng, prefix, people, town, shares)
    life = _Life(rng, prefix, shares, RECORDS_ONLY_TYPES if records_only else None)
    for person in persons:
        life.live(person)
    life.events.sort(key=lambda e: (e.occurred_at, e.event_id))
    truth = _truth(life)
    return CdpWorld(prefix, seed, persons, life.events, life.records, truth)


class _Zipf:
    """Draws from a pool, the k-th item with weight 1/k**s: common names repeat, rare ones don't."""

    def __init__(self, pool: Sequence[str], s: float) -> None:
        self.pool = pool
        self.cumulative = list(accumulate(1 / (k + 1) ** s for k in range(len(pool))))

    def draw(self, rng: random.Random) -> str:
        return rng.choices(self.pool, cum_weights=self.cumulative)[0]


GIVEN = _Zipf(GIVEN_NAMES, 0.6)
SURNAME = _Zipf(SURNAMES, 0.5)
STREET = _Zipf(STREETS, 0.5)


POSTCODES = range(10000, 99999)


@dataclass
class _Town:
    """Postcodes (one per `per_postcode` people), each in one city; addresses handed out once."""

    postcodes: list[str]
    city_of: dict[str, str]
    taken: set[tuple[str, str]] = field(default_factory=set)
    _elsewhere: dict[str, list[str]] = field(default_factory=dict)

    @staticmethod
    def build(rng: random.Random, people: int, per_postcode: int = 100) -> _Town:
        # small worlds get the postcodes of 1,000 people (ten at the default density), and
        # every world two: a namesake must live in another city
        count = max(2, round(max(people, 1000) / per_postcode))
        if count > len(POSTCODES):
            raise ValueError(f"{people} people at {per_postcode} per postcode need {count} postcodes; "
                             f"there are {len(POSTCODES)}")
        postcodes = [f"{code:05d}" for code in rng.sample(POSTCODES, count)]
        # at least three cities (two postcodes: two), so that every postcode has one elsewhere
        cities = rng.sample(CITIES, min(len(CITIES), max(3, count // 3)))
        return _Town(postcodes, {code: cities[n % len(cities)] for n, code in enumerate(postcodes)})

    def address(self, rng: random.Random, postcode: str) -> str:
        while True:
            address = f"{rng.randint(1, 9999)} {STREET.draw(rng)} {rng.choice(STREET_SUFFIXES)}"
            if (address, postcode) not in self.taken:
                self.taken.add((address, postcode))
                return address

    def elsewhere(self, rng: random.Random, city: str) -> str:
        """A postcode in another city than `city`."""
        if city not in self._elsewhere:  # one list per city: a million people plant 30,000 namesakes
            self._elsewhere[city] = [code for code in self.postcodes if self.city_of[code] != city]
        return rng.choice(self._elsewhere[city])


def _people(rng: random.Random, prefix: str, count: int, town: _Town, shares: Shares) -> list[Person]:
    persons: list[Person] = []
    households = 0
    # a draw is a household (two people) or one person: this makes planted_namesakes a share of people
    planted = shares.planted_namesakes * (1 + shares.household_pairs) / (1 - shares.household_pairs)
    while len(persons) < count:
        n = len(persons)
        if rng.random() < shares.household_pairs and n + 2 <= count:
            first, second = _household(rng, prefix, n, town, households)
            persons += [first, second]
            households += 1
        elif persons and rng.random() < planted:
            persons.append(_namesake(rng, prefix, n, town, rng.choice(persons)))
        else:
            persons.append(_stranger(rng, prefix, n, town))
    return persons


def _birth(rng: random.Random, low: int = 1940, high: int = 2006) -> date:
    return date(rng.randint(low, high), rng.randint(1, 12), rng.randint(1, 28))


def _stranger(rng: random.Random, prefix: str, n: int, town: _Town) -> Person:
    postcode = rng.choice(town.postcodes)
    return Person(f"{prefix}-P{n}", GIVEN.draw(rng), SURNAME.draw(rng), _birth(rng), town.address(rng, postcode),
                  town.city_of[postcode], postcode)


def _household(rng: random.Random, prefix: str, n: int, town: _Town, household: int) -> tuple[Person, Person]:
    """Two people at one address with one surname (and, later, one landline)."""
    first = _stranger(rng, prefix, n, town)
    given = first.given
    while given == first.given:
        given = GIVEN.draw(rng)
    birth = first.birth
    while birth == first.birth:
        birth = _birth(rng, max(1940, first.birth.year - 8), min(2006, first.birth.year + 8))
    first = replace(first, household=household)
    second = Person(f"{prefix}-P{n + 1}", given, first.surname, birth, first.address, first.city, first.postcode,
                    household)
    return first, second


def _namesake(rng: random.Random, prefix: str, n: int, town: _Town, other: Person) -> Person:
    """Someone with another person's name, in another town, born another year."""
    postcode = town.elsewhere(rng, other.city)
    birth = other.birth
    while birth.year == other.birth.year:
        birth = _birth(rng)
    return Person(f"{prefix}-P{n}", other.given, other.surname, birth, town.address(rng, postcode),
                  town.city_of[postcode], postcode, namesake_of=other.person_id)


# ---- what each person does ---------------------------------------------------------------------

class _Life:
    """Emits each person's events and CRM record, and remembers who carried what."""

    def __init__(self, rng: random.Random, prefix: str, shares: Shares, kept: frozenset[str] | None = None) -> None:
        self.rng = rng
        self.prefix = prefix
        self.shares = shares
        self.kept = kept  # the event types sent (None: all); the others are drawn and dropped
        self.salt = zlib.crc32(prefix.encode())
        self.emitted = 0  # events drawn, sent or not: event ids stay those of the full world
        self.events: list[CdpEvent] = []
        self.records: list[CrmRecord] = []
        self.signups: dict[str, Ident] = {}  # person -> loyalty id of their signup
        self.shown: set[Ident] = set()  # what the current person has given the company so far

    def live(self, person: Person) -> None:
        s, rng = self.shares, self.rng
        n = int(person.person_id.rsplit("-P", 1)[1])
        self.shown = set()
        has_crm = rng.random() < s.crm
        # 40% are loyalty members, half of them with a CRM record: P(loyalty | crm) = 0.2 / 0.7 ...
        p_loyalty = s.loyalty * (s.loyalty_with_crm / s.crm if has_crm else (1 - s.loyalty_with_crm) / (1 - s.crm))
        email = ("email", _email(self.prefix, person, n))
        user = ("user_id", f"{self.prefix}-u{n}")
        moment = START + timedelta(seconds=rng.uniform(0, SPAN.total_seconds() * 0.6))
        if rng.random() < s.web_login:
            moment = self._web(person, n, moment, user, email)
        elif rng.random() < s.anonymous_browser:
            moment = self._browse(person, ("cookie", f"{self.prefix}-c{n}-0"), moment)
        if has_crm:
            self._crm(person, n, email)
        if rng.random() < p_loyalty:
            moment = self._loyalty(person, n, moment, email)
        if email in self.shown and rng.random() < s.email_opens:  # the company has the address
            for _ in range(rng.randint(1, 2)):
                moment = self._later(moment)
                self._emit(person, moment, "email", "online", "email_open", [email])

    def _later(self, moment: datetime) -> datetime:
        return min(moment + timedelta(hours=self.rng.expovariate(1 / 36)), START + SPAN - timedelta(seconds=1))

    def _emit(self, person: Person, moment: datetime, source: str, channel: str, kind: str,
              identifiers: list[Ident], traits: dict[str, str] | None = None,
              properties: dict[str, str] | None = None) -> None:
        event_id = f"{self.prefix}-e{self.emitted}"
        self.emitted += 1
        self.shown.update(identifiers)
        if self.kept is None or kind in self.kept:
            self.events.append(CdpEvent(event_id, person.person_id, moment, source, channel, kind,
                                        tuple(identifiers), traits or {}, properties or {}))

    def _browse(self, person: Person, cookie: Ident, moment: datetime) -> datetime:
        for _ in range(self.rng.randint(1, 3)):
            moment = self._later(moment)
            self._emit(person, moment, "web", "online", "page_view", [cookie],
                       properties={"path": f"/p/{self.rng.randint(1, 400)}"})
        return moment

    def _web(self, person: Person, n: int, moment: datetime, user: Ident, email: Ident) -> datetime:
        """Anonymous page views on each browser, then a login there; an app for some."""
        for k in range(self.rng.randint(1, 2)):
            cookie = ("cookie", f"{self.prefix}-c{n}-{k}")
            moment = self._browse(person, cookie, moment)
            moment = self._later(moment)
            self._emit(person, moment, "web", "online", "login", [cookie, user, email])
        if self.rng.random() < self.shares.app:
            device = ("device_id", f"{self.prefix}-d{n}")
            for _ in range(self.rng.randint(1, 3)):
                moment = self._later(moment)
                self._emit(person, moment, "app", "online", "app_open", [device, user])
        return moment

    def _crm(self, person: Person, n: int, email: Ident) -> None:
        s, rng = self.shares, self.rng
        identifiers: list[Ident] = [("crm_id", f"{self.prefix}-crm{n}")]
        if rng.random() < s.crm_email:
            identifiers.append(email)
        if person.household is not None and rng.random() < s.crm_landline:
            identifiers.append(("phone", _phone(self.salt, 2 * person.household + 1)))
        elif rng.random() < s.crm_mobile:
            identifiers.append(("phone", _phone(self.salt, 2 * n)))
        traits = {"first_name": person.given, "last_name": person.surname,
                  "date_of_birth": person.birth.isoformat(), "address": person.address, "city": person.city,
                  "postcode": person.postcode, "country": "US"}
        self.shown.update(identifiers)
        self.records.append(CrmRecord(f"{self.prefix}-r{n}", person.person_id, tuple(identifiers), traits, EXPORTED))

    def _loyalty(self, person: Person, n: int, moment: datetime, email: Ident) -> datetime:
        """A signup typed at the till, then a few purchases on the card (junk typed at times)."""
        rng = self.rng
        loyalty = ("loyalty_id", f"{self.prefix}-L{n}")
        carried = [loyalty, email] if rng.random() < self.shares.signup_email else [loyalty]
        moment = self._later(moment)
        self._emit(person, moment, "pos", "offline", "loyalty_signup", carried, traits=self._typed(person))
        self.signups[person.person_id] = loyalty
        for _ in range(rng.randint(0, 3)):
            moment = self._later(moment)
            purchase = [loyalty, rng.choice(JUNK)] if rng.random() < self.shares.junk_at_till else [loyalty]
            self._emit(person, moment, "pos", "offline", "purchase", purchase,
                       properties={"amount": f"{rng.uniform(3, 250):.2f}"})
        return moment

    def _typed(self, person: Person) -> dict[str, str]:
        """The person as a cashier types them: lower case, typos, a nickname, no or a swapped birth date."""
        s, rng = self.shares, self.rng
        given = person.given
        if given in NICKNAMES and rng.random() < s.nickname:
            given = rng.choice(NICKNAMES[given])
        number, rest = person.address.lower().split(" ", 1)  # "9180", "meadow ave"
        street, suffix = rest.rsplit(" ", 1)
        traits = {"first_name": _maybe_typo(rng, given.lower(), s.name_typo),
                  "last_name": _maybe_typo(rng, person.surname.lower(), s.name_typo),
                  "address": f"{number} {_maybe_typo(rng, street, s.street_typo)} {suffix}",
                  "city": person.city.lower(), "postcode": person.postcode, "country": "us"}
        roll = rng.random()
        if roll >= s.missing_dob:
            birth = person.birth
            if roll < s.missing_dob + s.swapped_dob and birth.day <= 12 and birth.day != birth.month:
                birth = date(birth.year, birth.day, birth.month)
            traits["date_of_birth"] = birth.isoformat()
        return traits


def _email(prefix: str, person: Person, n: int) -> str:
    local = "".join(c for c in f"{person.given}.{person.surname}".lower() if c.isalpha() or c == ".")
    return f"{prefix}-{local}{n}@example.com".lower()


def _phone(salt: int, n: int) -> str:
    """A valid North American number, unique per (salt, n) up to 56M numbers."""
    value = (salt * 7_919 + n) % (7 * 800 * 10_000)
    area, rest = divmod(value, 800 * 10_000)
    exchange, line = divmod(rest, 10_000)
    return f"+1{(212, 312, 415, 617, 718, 202, 305)[area]}{200 + exchange:03d}{line:04d}"


def _maybe_typo(rng: random.Random, text: str, share: float) -> str:
    if rng.random() >= share:
        return text
    for _ in range(rng.choice((1, 1, 2))):
        text = _typo(rng, text)
    return text


def _typo(rng: random.Random, text: str) -> str:
    """One slip of the finger inside a word: a doubled, dropped, swapped or neighbouring key."""
    spots = [i for i, c in enumerate(text) if c.isalpha()]
    if len(spots) < 3:
        return text
    i = rng.choice(spots[1:])  # the first letter is rarely wrong
    kind = rng.randrange(4)
    if kind == 0:
        return text[:i] + text[i] + text[i:]
    if kind == 1:
        return text[:i] + text[i + 1:]
    if kind == 2 and i + 1 < len(text) and text[i + 1].isalpha():
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    return text[:i] + _neighbour(rng, text[i]) + text[i + 1:]


def _neighbour(rng: random.Random, letter: str) -> str:
    for row in _KEYBOARD:
        if (at := row.find(letter)) >= 0:
            return rng.choice([row[j] for j in (at - 1, at + 1) if 0 <= j < len(row)])
    return letter


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


# ---- truth -------------------------------------------------------------------------------------

def _truth(life: _Life) -> Truth:
    groups = [(e.person, e.identifiers) for e in life.events]
    groups += [(r.person, (r.identifier, *r.identifiers)) for r in life.records]
    owners: dict[Ident, set[str]] = defaultdict(set)
    for person, identifiers in groups:
        for identifier in identifiers:
            if identifier not in JUNK:
                owners[identifier].add(person)
    person_of = {i: next(iter(p)) for i, p in owners.items() if len(p) == 1}  # shared values are nobody's
    deterministic = _components(person_of, ([i for i in ids if i in person_of] for _, ids in groups))
    record_of = {r.person: r.identifier for r in life.records}
    signup_links = [(loyalty, record_of[p]) for p, loyalty in life.signups.items() if p in record_of]
    linkable = _components(person_of, [*([i for i in ids if i in person_of] for _, ids in groups),
                                       *([a, b] for a, b in signup_links)])
    probabilistic = frozenset((a, b) for a, b in signup_links if deterministic[a] != deterministic[b])
    return Truth(person_of, deterministic, linkable, probabilistic)


def _components(nodes: Iterable[Ident], groups: Iterable[list[Ident]]) -> dict[Ident, int]:
    """Each node -> the number of its connected component."""
    sets: DisjointSets[Ident] = DisjointSets(nodes)
    for group in groups:
        for other in group[1:]:
            sets.union(group[0], other)
    numbers: dict[Ident, int] = {}
    return {node: numbers.setdefault(sets.find(node), len(numbers)) for node in list(sets.parent)}

