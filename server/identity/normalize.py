"""Normalisation of identifiers and traits, so that one person's values compare equal.

An e-mail typed `Ann@Example.com ` on the web and `ann@example.com` at the till is one
identifier; a phone written `(555) 010-9999` and `+15550109999` is one number.

Control characters never reach the graph, by one rule: in an id (an identifier's value, an
event id) they make the value invalid, because cleaning could turn two different ids into
one; in free text (traits, properties, an event's type and source, keys) they are removed,
and the ack says so. Tab, newline and carriage return count as whitespace, not as control
characters: trimmed at the ends, collapsed to one space inside traits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime

import phonenumbers

from server.errors import InvalidArgument
from server.identity.values import Identifier, InvalidValue, ValueWarning
from server.identity.identity_config import IdentityRules

EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
WHITESPACE = re.compile(r"\s+")
# C0 and C1 control characters and DEL; in ids tab, newline and CR are controls too.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
CONTROL_IN_ID = re.compile(r"[\x00-\x1f\x7f-\x9f]")
DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%d.%m.%Y")
UPPERCASE_TRAITS = frozenset({"postcode", "country"})
UNPARSED_DATE_OF_BIRTH = "date_of_birth_unparsed"
SHOWN_CHARACTERS = 200  # of a value quoted in a warning
MAX_TYPE_LENGTH = 64  # of an unknown type's name kept with its value


class InvalidIdentifier(InvalidArgument):
    """An identifier that cannot be used, with the value to keep on its touchpoint instead."""

    def __init__(self, message: str, kept: InvalidValue, unknown_type: bool = False) -> None:
        super().__init__(message)
        self.kept = kept
        self.unknown_type = unknown_type


def escape_controls(text: str) -> str:
    """The text with each control character written out (`\\x00`), safe to store and show."""
    return CONTROL_IN_ID.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def shown(text: str) -> str:
    """A value as a warning quotes it: escaped and cut short."""
    escaped = escape_controls(text)
    return escaped if len(escaped) <= SHOWN_CHARACTERS else escaped[:SHOWN_CHARACTERS] + "…"


def normalize_identifier(rules: IdentityRules, type_name: str, raw_value: str) -> Identifier:
    """Returns the canonical identifier; raises InvalidIdentifier saying what is wrong."""
    name = type_name.strip()
    value = raw_value.strip()
    kind = rules.type_named(name)
    if kind is None:
        _unknown_type(rules, name, value)
    assert kind is not None

    def invalid(reason: str, replayable: bool = True) -> InvalidIdentifier:
        kept = escape_controls(value)[:rules.max_value_length]
        return InvalidIdentifier(reason, InvalidValue(kind.name, kept, reason, replayable))

    control = CONTROL_IN_ID.search(value)
    if control:
        raise invalid(f"identifier {kind.name} contains the control character U+{ord(control.group()):04X}", False)
    if not value:
        raise invalid(f"identifier {kind.name} has an empty value", False)
    if len(value) > rules.max_value_length:
        raise invalid(f"identifier {kind.name} is longer than {rules.max_value_length} characters", False)
    if rules.is_blocklisted(kind.name, value):  # junk is kept (and flagged), not refused
        return Identifier(kind.name, value.lower())
    try:
        if kind.rule == "email":
            value = _email(value)
        elif kind.rule == "phone":
            value = _phone(value, rules.default_region)
    except InvalidArgument as exc:
        raise invalid(str(exc)) from None
    return Identifier(kind.name, value)


def _unknown_type(rules: IdentityRules, name: str, value: str) -> None:
    known = ", ".join(sorted(rules.identifier_types))
    reason = (f"unknown identifier type {shown(name)!r} (known: {known}; "
              "declare it or an alias in config/identity.yaml)") if name else "identifier type is empty"
    replayable = bool(name) and not CONTROL_IN_ID.search(name + value) and len(value) <= rules.max_value_length
    kept = InvalidValue(escape_controls(name)[:MAX_TYPE_LENGTH], escape_controls(value)[:rules.max_value_length],
                        reason, replayable)
    raise InvalidIdentifier(reason, kept, unknown_type=True)


def _email(value: str) -> str:
    value = value.lower()
    if not EMAIL.match(value):
        raise InvalidArgument(f"email {value!r} is not an e-mail address")
    return value


def _phone(value: str, region: str) -> str:
    """E.164. A number of a possible length that libphonenumber does not know as assigned
    (an area code or exchange that does not exist, e.g. 555-01xx or a 0 exchange) is
    invalid too: forms and tills are full of such made-up numbers, and two strangers who
    typed the same one must not merge. It is kept as an invalid value, and a replay after a
    libphonenumber update looks at it again."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidArgument(f"phone {value!r} is not a phone number ({exc})") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidArgument(f"phone {value!r} is not a valid number for its region (impossible length)")
    if not phonenumbers.is_valid_number(number):
        raise InvalidArgument(f"phone {value!r} is not a valid number for its region "
                              "(possible length, but no such number is assigned)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def clean_text(field: str, value: str, warnings: list[ValueWarning]) -> str:
    """Free text without control characters; a warning names the field when any were removed."""
    if not CONTROL.search(value):
        return value
    warnings.append(ValueWarning(field, shown(value), "control characters removed"))
    return CONTROL.sub("", value)


def normalize_traits(traits: Mapping[str, str], warnings: list[ValueWarning] | None = None) -> dict[str, str]:
    """Collapses whitespace, drops empty values, writes dates as YYYY-MM-DD.

    Name case is kept as given (comparison is case-blind anyway); postcodes and country
    codes are upper-cased because their case carries no meaning. A date of birth that is no
    date (offline files are full of 19151311) is kept as `date_of_birth_unparsed`, with a
    warning: the golden record keeps it, and linkage still compares it as typed.
    """
    warnings = [] if warnings is None else warnings
    cleaned: dict[str, str] = {}
    for raw_key, raw_value in traits.items():
        key = clean_text(f"traits.{shown(raw_key)}", raw_key, warnings).strip().lower()
        value = WHITESPACE.sub(" ", clean_text(f"traits.{key}", raw_value, warnings)).strip()
        if not key or not value:
            continue
        if key == "date_of_birth":
            try:
                value = normalize_date(value)
            except InvalidArgument as exc:
                warnings.append(ValueWarning("traits.date_of_birth", shown(value), f"{exc}; kept as {UNPARSED_DATE_OF_BIRTH}"))
                key = UNPARSED_DATE_OF_BIRTH
        elif key in UPPERCASE_TRAITS:
            value = value.upper()
        cleaned[key] = value
    return cleaned


def normalize_properties(properties: Mapping[str, str], warnings: list[ValueWarning]) -> dict[str, str]:
    """Properties as sent, without control characters in keys or values."""
    cleaned = {}
    for raw_key, raw_value in properties.items():
        key = clean_text(f"properties.{shown(raw_key)}", raw_key, warnings)
        cleaned[key] = clean_text(f"properties.{key}", raw_value, warnings)
    return cleaned


def normalize_date(value: str) -> str:
    """Parses the date formats sources send; raises InvalidArgument for anything else."""
    for fmt in DATE_FORMATS:
        try:
            parsed: date = datetime.strptime(value, fmt).date()
        except ValueError:
            continue
        return parsed.isoformat()
    raise InvalidArgument(f"date_of_birth {value!r} is not a date (expected YYYY-MM-DD)")
