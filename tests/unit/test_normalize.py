"""Identifier and trait normalisation: one person's values must compare equal."""

from __future__ import annotations

import pytest

from server.errors import ConfigurationError, InvalidArgument
from server.identity.values import Identifier, ValueWarning
from server.identity.normalize import normalize_identifier, normalize_traits
from server.identity.identity_config import load_rules, parse_rules

RULES = load_rules()


@pytest.mark.parametrize(
    ("type_", "raw", "expected"),
    [
        ("email", "  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("phone", "(415) 555-2671", "+14155552671"),
        ("phone", "+44 20 7946 0958", "+442079460958"),
        ("cookie", "  AbC-123 ", "AbC-123"),
        ("crm_id", "CRM-00042", "CRM-00042"),
    ],
)
def test_identifiers_are_normalised_by_their_type_rule(type_: str, raw: str, expected: str) -> None:
    assert normalize_identifier(RULES, type_, raw) == Identifier(type_, expected)


@pytest.mark.parametrize(
    ("type_", "raw", "message"),
    [
        ("email", "ann@", "is not an e-mail address"),
        ("email", "ann example.com", "is not an e-mail address"),
        ("phone", "call me", "is not a phone number"),
        ("phone", "+1 555", "is not a valid number"),
        ("cookie", "   ", "empty value"),
        ("fax", "123", "unknown identifier type 'fax'"),
        ("cookie", "x" * 600, "longer than 512"),
    ],
)
def test_malformed_identifiers_are_refused_with_the_reason(type_: str, raw: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        normalize_identifier(RULES, type_, raw)


def test_default_region_decides_local_phone_numbers() -> None:
    british = parse_rules({"default_region": "GB", "identifier_types": {"phone": {"rule": "phone"}}})
    assert normalize_identifier(british, "phone", "020 7946 0958").value == "+442079460958"


def test_traits_are_cleaned() -> None:
    cleaned = normalize_traits({" First_Name ": "  Ann   Marie ", "date_of_birth": "1980/02/03",
                                "postcode": "sw1a 1aa", "city": "   "})
    assert cleaned == {"first_name": "Ann Marie", "date_of_birth": "1980-02-03", "postcode": "SW1A 1AA"}


def test_a_date_of_birth_that_is_no_date_is_kept_aside_with_a_warning() -> None:
    warnings: list[ValueWarning] = []
    assert normalize_traits({"date_of_birth": "19151311", "surname": "neumann"}, warnings) == {
        "date_of_birth_unparsed": "19151311", "surname": "neumann"}
    assert [(w.field, w.value) for w in warnings] == [("traits.date_of_birth", "19151311")]
    assert "is not a date" in warnings[0].reason and "date_of_birth_unparsed" in warnings[0].reason
    assert normalize_traits({"date_of_birth": "1915-11-11"}) == {"date_of_birth": "1915-11-11"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"identifier_types": {}}, "identifier_types must map"),
        ({"identifier_types": {"email": {"rule": "regex"}}}, r"identifier_types.email.rule is 'regex'"),
        ({"default_region": "XX", "identifier_types": {"email": {"rule": "email"}}}, "default_region 'XX'"),
        ({"identifier_types": {"email": {"rule": "email"}}, "max_value_length": 0}, "max_value_length"),
    ],
)
def test_bad_rules_name_the_entry(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_rules(data)
