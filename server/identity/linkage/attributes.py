"""A person's matchable attributes: traits cleaned into comparable values, and their blocking keys.

Two records of one person rarely agree character for character: case, accents, spacing,
punctuation and date formats differ between sources. Cleaning removes those differences
before comparison, so that what remains is evidence (a typo, a nickname, a move).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

import jellyfish
from nicknames import NickNamer
from unidecode import unidecode

if TYPE_CHECKING:
    from server.identity.linkage.linkage_config import LinkageRules


@dataclass(frozen=True)
class PersonAttributes:
    """Cleaned values for matching; None means the source did not say."""

    given_name: str | None = None
    surname: str | None = None
    street_number: str | None = None
    address_1: str | None = None
    address_2: str | None = None
    suburb: str | None = None
    postcode: str | None = None
    state: str | None = None
    date_of_birth: str | None = None
    national_id: str | None = None
    country: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)

    @staticmethod
    def from_dict(d: Mapping[str, str | None]) -> PersonAttributes:
        """Rebuilds stored (already cleaned) attributes; unknown keys are ignored, absent ones are None."""
        return PersonAttributes(**{name: d.get(name) for name in ATTRIBUTE_NAMES})

    def present(self, names: tuple[str, ...]) -> int:
        return sum(getattr(self, name) is not None for name in names)


ATTRIBUTE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(PersonAttributes))

TRAIT_ALIASES: Mapping[str, str] = {
    **{key: "given_name" for key in ("given_name", "first_name", "firstname", "forename", "given")},
    **{key: "surname" for key in ("surname", "last_name", "lastname", "family_name")},
    **{key: "street_number" for key in ("street_number", "house_number")},
    **{key: "address_1" for key in ("address_1", "address1", "street", "address_line_1")},
    **{key: "address_2" for key in ("address_2", "address2", "address_line_2")},
    **{key: "suburb" for key in ("suburb", "city", "town", "locality")},
    **{key: "postcode" for key in ("postcode", "zip", "zip_code", "zipcode", "postal_code")},
    **{key: "state" for key in ("state", "region", "province")},
    **{key: "date_of_birth" for key in ("date_of_birth", "dob", "birth_date", "birthdate")},
    **{key: "national_id" for key in ("national_id", "soc_sec_id", "ssn", "social_security_number")},
    **{key: "country" for key in ("country", "country_code")},
}

# One-line street addresses (the API's documented `address` trait): split into the street
# number and the street, which linkage compares separately. Explicit fields win over these.
ONE_LINE_ADDRESS_KEYS = frozenset({"address", "street_address", "address_line", "addr"})

# Street suffixes compare in one spelling: "5992 Ridge Street" is "5992 ridge st".
STREET_SUFFIXES: Mapping[str, str] = {
    "street": "st", "str": "st", "avenue": "ave", "av": "ave", "road": "rd", "drive": "dr", "lane": "ln",
    "court": "ct", "place": "pl", "boulevard": "blvd", "terrace": "tce", "crescent": "cres", "parade": "pde",
    "highway": "hwy", "circle": "cir", "square": "sq", "parkway": "pkwy",
}

_NOT_WORD = re.compile(r"[^a-z0-9]+")
_DIGITS_8 = re.compile(r"\d{8}")
_YEAR_FIRST = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ].*)?")
_DAY_FIRST = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})")
# "9180 meadow ave", "12a oak st", "3/12 oak st" (unit 3), "12-14 oak st", "unit 3 12 oak st"
_NUMBERED_STREET = re.compile(r"(?:(?:unit|apt|apartment|flat|suite)\s+\w+\s+)?(?:\d+[a-z]?\s*/\s*)?"
                              r"(\d+[a-z]?)(?:\s*-\s*\d+[a-z]?)?\s+(.*[a-z].*)")


def person_attributes(traits: Mapping[str, object], rules: LinkageRules) -> PersonAttributes | None:
    """Cleans a record's traits; None when fewer than `rules.min_fields` compared fields remain.

    A record with too little to compare would only ever be a weak, noisy candidate for
    everyone, so it is left out of linkage instead.
    """
    cleaned: dict[str, str] = {}
    one_line: list[str] = []
    for key, value in traits.items():
        if value is None:
            continue
        if _trait_key(key) in ONE_LINE_ADDRESS_KEYS:
            one_line.append(str(value))
            continue
        name = TRAIT_ALIASES.get(_trait_key(key))
        if name is not None and name not in cleaned:
            if (clean := _CLEANERS[name](str(value))) is not None:
                cleaned[name] = clean  # the first alias with a usable value wins
    for line in one_line:
        for name, part in split_address(line).items():
            cleaned.setdefault(name, part)
    attributes = PersonAttributes(**cleaned)
    if attributes.present(rules.field_names) < rules.min_fields:
        return None
    return attributes


def clean_text(value: str) -> str | None:
    """Lowercase ASCII words separated by single spaces; apostrophes join (o'brien = obrien)."""
    folded = unidecode(value).lower().replace("'", "").replace("`", "")
    cleaned = _NOT_WORD.sub(" ", folded).strip()
    return cleaned or None


def clean_street(value: str) -> str | None:
    """A street as words, its suffix in one spelling (street -> st), so spellings agree exactly."""
    cleaned = clean_text(value)
    if not cleaned:
        return None
    *name, last = cleaned.split(" ")
    return " ".join([*name, STREET_SUFFIXES.get(last, last)]) if name else cleaned


def split_address(value: str) -> dict[str, str]:
    """A one-line address as street_number and address_1 ("9180 Meadow Ave" -> 9180, meadow ave).

    Without a leading number the whole line is the street, so it is still compared.
    """
    folded = " ".join(unidecode(value).lower().replace(",", " ").split())
    parts: dict[str, str] = {}
    if match := _NUMBERED_STREET.fullmatch(folded):
        number, folded = match.groups()
        parts["street_number"] = number
    if (street := clean_street(folded)) is not None:
        parts["address_1"] = street
    return parts


def clean_code(value: str) -> str | None:
    """Codes (postcode, national id, street number) compare without spaces or punctuation."""
    cleaned = clean_text(value)
    return cleaned.replace(" ", "") if cleaned else None


def clean_date(value: str) -> str | None:
    """Dates to YYYYMMDD; 8 digits are kept as given, since a typo in them is still evidence.

    Separated dates are read year-first (2001-02-03) or day-first (03/02/2001); a day-first
    date whose middle number cannot be a month is read as month-first (US order).
    """
    text = value.strip()
    if _DIGITS_8.fullmatch(text):
        return text
    if match := _YEAR_FIRST.fullmatch(text):
        year, month, day = match.groups()
        return _calendar_date(int(year), int(month), int(day))
    if match := _DAY_FIRST.fullmatch(text):
        first, second, year = (int(part) for part in match.groups())
        day, month = (second, first) if second > 12 else (first, second)
        return _calendar_date(year, month, day)
    return None


def _calendar_date(year: int, month: int, day: int) -> str | None:
    try:
        return date(year, month, day).strftime("%Y%m%d")
    except ValueError:
        return None


def _trait_key(key: str) -> str:
    return _NOT_WORD.sub("_", key.strip().lower()).strip("_")


_CLEANERS: Mapping[str, Callable[[str], str | None]] = {
    "given_name": clean_text,
    "surname": clean_text,
    "street_number": clean_code,
    "address_1": clean_street,
    "address_2": clean_text,
    "suburb": clean_text,
    "postcode": clean_code,
    "state": clean_code,
    "date_of_birth": clean_date,
    "national_id": clean_code,
    "country": clean_code,
}


@lru_cache(maxsize=1)
def _nicknamer() -> NickNamer:
    return NickNamer()


@lru_cache(maxsize=65536)
def canonical_given_name(name: str) -> str:
    """One formal name for a name and its nicknames (bill, will, william -> william).

    The nickname table relates names in both directions (william is also listed under
    bill), so the longest related name is taken as the formal one; among equally long ones
    the name with most nicknames (the commoner formal name), then the alphabetically first.
    """
    namer = _nicknamer()
    related = {name, *namer.canonicals_of(name)}
    return min(related, key=lambda candidate: (-len(candidate), -len(namer.nicknames_of(candidate)), candidate))


def are_nicknames(first: str, second: str) -> bool:
    """True when one name is a listed nickname of the other (bill ~ william, not bill ~ bob)."""
    return second in _formal_names(first) or first in _formal_names(second)


@lru_cache(maxsize=65536)
def _formal_names(name: str) -> frozenset[str]:
    return frozenset(_nicknamer().canonicals_of(name))


@lru_cache(maxsize=65536)
def _related_names(name: str) -> frozenset[str]:
    """The name, its nicknames and its formal names (jennifer: jenny, jen, ...)."""
    namer = _nicknamer()
    return frozenset({name, *namer.nicknames_of(name), *namer.canonicals_of(name)})


@lru_cache(maxsize=262144)
def nickname_similarity(first: str, second: str) -> float:
    """The best Jaro-Winkler similarity of one name to the other's related names: a nickname
    typed with a typo at a till ("jeeny" for jennifer's jenny, "mikw" for michael's mike) is
    close to a nickname though far from the formal name."""
    return max(max(jellyfish.jaro_winkler_similarity(first, other) for other in _related_names(second)),
               max(jellyfish.jaro_winkler_similarity(other, second) for other in _related_names(first)))


# A name shorter than this is not read as a slip of a nickname: one slip turns "tm" into tim or
# tom, "me" into meg or mel.
MIN_SLIPPED_NAME = 3


@lru_cache(maxsize=262144)
def is_mistyped_nickname(first: str, second: str) -> bool:
    """One name is one slip (Damerau: a letter added, dropped, changed or two swapped) from a
    nickname or formal name of the other, and is no name of its own: "dno" for donald's don,
    "mikw" for michael's mike. One slip leaves a short nickname far from it by Jaro-Winkler
    ("tpm" ~ tom 0.80), so the bands miss it. A name the nickname table knows is someone's own
    name, not a slip: "joan" is one slip from jonathan's jon, "tim" from thomas's tom."""
    return _slip_of_related(first, second) or _slip_of_related(second, first)


def _slip_of_related(typed: str, other: str) -> bool:
    if len(typed) < MIN_SLIPPED_NAME or is_known_name(typed):
        return False
    return any(len(name) >= MIN_SLIPPED_NAME and jellyfish.damerau_levenshtein_distance(typed, name) <= 1
               for name in _related_names(other))


@lru_cache(maxsize=65536)
def is_known_name(name: str) -> bool:
    """Whether the nickname table lists the name, as a formal name or as a nickname."""
    namer = _nicknamer()
    return bool(namer.nicknames_of(name) or namer.canonicals_of(name))


def squashed(value: str | None) -> str | None:
    """The value without spaces: 'ja yde' and 'jayde' are one name with a stray space."""
    return value.replace(" ", "") if value else None


def _soundex(value: str | None) -> str | None:
    letters = squashed(value)
    return jellyfish.soundex(letters) if letters and letters[0].isalpha() else None


def _year_of_birth(attributes: PersonAttributes) -> str | None:
    return attributes.date_of_birth[:4] if attributes.date_of_birth else None


def _joined(*parts: str | None) -> str | None:
    """A compound key, or None when any part is missing (a partial key would over-block)."""
    present = [part for part in parts if part]
    return "|".join(present) if len(present) == len(parts) else None


def _formal_given(attributes: PersonAttributes) -> str | None:
    given = squashed(attributes.given_name)
    return canonical_given_name(given) if given else None


def _name_soundexes(attributes: PersonAttributes) -> str | None:
    """Both names' soundex codes in sorted order, so a record with swapped names keeps its key."""
    given, surname = _soundex(attributes.given_name), _soundex(attributes.surname)
    return _joined(*sorted((given, surname))) if given and surname else None


def _surname_initial_postcode_digits(attributes: PersonAttributes) -> str | None:
    """Surname initial with the postcode's digits sorted: two transposed digits (2507, 2570) share it."""
    digits = "".join(sorted(attributes.postcode)) if attributes.postcode else None
    return _joined(attributes.surname[:1] if attributes.surname else None, digits)


def _given2_postcode(attributes: PersonAttributes) -> str | None:
    given = _formal_given(attributes)
    return _joined(given[:2] if given else None, attributes.postcode)


BLOCKING_PASSES: Mapping[str, Callable[[PersonAttributes], str | None]] = {
    "postcode": lambda a: a.postcode,
    "surname_initial_postcode_digits": _surname_initial_postcode_digits,
    "dob": lambda a: a.date_of_birth,
    "national_id": lambda a: a.national_id,
    "surname_soundex_yob": lambda a: _joined(_soundex(a.surname), _year_of_birth(a)),
    "given_soundex_yob": lambda a: _joined(_soundex(_formal_given(a)), _year_of_birth(a)),
    "given2_postcode": _given2_postcode,
    "name_soundexes": _name_soundexes,
    "suburb_yob": lambda a: _joined(squashed(a.suburb), _year_of_birth(a)),
    "street_suburb": lambda a: _joined(a.street_number, squashed(a.address_1), squashed(a.suburb)),
}


# The attributes each pass forces to agree (or nearly), with those that go with them (a
# postcode fixes its suburb and state). When m is fitted on a pass's candidate pairs, these
# fields are left out: their agreement there comes from blocking, not from being one person.
PASS_FIELDS: Mapping[str, frozenset[str]] = {
    "postcode": frozenset({"postcode", "suburb", "state", "country"}),
    "surname_initial_postcode_digits": frozenset({"surname", "postcode", "suburb", "state", "country"}),
    "dob": frozenset({"date_of_birth"}),
    "national_id": frozenset({"national_id"}),
    "surname_soundex_yob": frozenset({"surname", "date_of_birth"}),
    "given_soundex_yob": frozenset({"given_name", "date_of_birth"}),
    "given2_postcode": frozenset({"given_name", "postcode", "suburb", "state", "country"}),
    "name_soundexes": frozenset({"given_name", "surname"}),
    "suburb_yob": frozenset({"suburb", "postcode", "state", "country", "date_of_birth"}),
    "street_suburb": frozenset({"street_number", "address_1", "suburb", "postcode", "state", "country"}),
}


def blocking_keys(attributes: PersonAttributes, rules: LinkageRules) -> list[str]:
    """One key per configured pass that this record can fill, prefixed by the pass name."""
    keys = []
    for name in rules.blocking:
        value = BLOCKING_PASSES[name](attributes)
        if value:
            keys.append(f"{name}:{value}")
    return keys
