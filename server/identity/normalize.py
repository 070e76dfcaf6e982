"""Normalisation of identifiers and traits, so that one person's values compare equal.

An e-mail typed `Ann@Example.com ` on the web and `ann@example.com` at the till is one
identifier; a phone written `(555) 010-9999` and `+15550109999` is one number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime

import phonenumbers

from server.errors import InvalidArgument
from server.identity.model import Identifier
from server.identity.rules import IdentityRules

EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
WHITESPACE = re.compile(r"\s+")
DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%d.%m.%Y")
UPPERCASE_TRAITS = frozenset({"postcode", "country"})


def normalize_identifier(rules: IdentityRules, type_name: str, raw_value: str) -> Identifier:
    """Returns the canonical identifier; raises InvalidArgument saying what is wrong."""
    kind = rules.type_named(type_name.strip())
    if kind is None:
        known = ", ".join(sorted(rules.identifier_types))
        raise InvalidArgument(f"unknown identifier type {type_name!r} (known: {known})")
    value = raw_value.strip()
    if not value:
        raise InvalidArgument(f"identifier {kind.name} has an empty value")
    if len(value) > rules.max_value_length:
        raise InvalidArgument(f"identifier {kind.name} is longer than {rules.max_value_length} characters")
    if rules.is_blocklisted(kind.name, value):  # junk is kept (and flagged), not refused
        return Identifier(kind.name, value.lower())
    if kind.rule == "email":
        value = _email(value)
    elif kind.rule == "phone":
        value = _phone(value, rules.default_region)
    return Identifier(kind.name, value)


def _email(value: str) -> str:
    value = value.lower()
    if not EMAIL.match(value):
        raise InvalidArgument(f"email {value!r} is not an e-mail address")
    return value


def _phone(value: str, region: str) -> str:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidArgument(f"phone {value!r} is not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidArgument(f"phone {value!r} is not a valid number for its region")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_traits(traits: Mapping[str, str]) -> dict[str, str]:
    """Collapses whitespace, drops empty values, writes dates as YYYY-MM-DD.

    Name case is kept as given (comparison is case-blind anyway); postcodes and country
    codes are upper-cased because their case carries no meaning.
    """
    cleaned: dict[str, str] = {}
    for raw_key, raw_value in traits.items():
        key = raw_key.strip().lower()
        value = WHITESPACE.sub(" ", raw_value).strip()
        if not key or not value:
            continue
        if key == "date_of_birth":
            value = normalize_date(value)
        elif key in UPPERCASE_TRAITS:
            value = value.upper()
        cleaned[key] = value
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
