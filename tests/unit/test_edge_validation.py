"""Validation at the edge: what of an event is kept, what is refused, and what the ack says.

Pure functions of the rules and the event: no database. What reaches Neo4j, quarantine and
replay are proven in tests/integration/test_nothing_lost.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.errors import ConfigurationError
from server.identity.ingest import EventRefused, validate_event
from server.identity.values import EventInput, Identifier, InvalidValue
from server.identity.normalize import InvalidIdentifier, normalize_identifier
from server.identity.identity_config import load_rules, parse_rules

RULES = load_rules()
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def event(*identifiers: tuple[str, str], **fields: object) -> EventInput:
    values: dict[str, object] = {"event_id": "e1", "occurred_at": NOW - timedelta(hours=1), "source": "web",
                                 "channel": "online", "type": "page_view", "identifiers": identifiers}
    values.update(fields)
    return EventInput(**values)


def test_a_bad_value_costs_only_itself_and_is_kept_as_invalid_with_its_reason() -> None:
    checked = validate_event(RULES, event(("user_id", "u1"), ("email", "ann@@example"), ("phone", "call me")), NOW)
    assert checked.touchpoint.identifiers == (Identifier("user_id", "u1"),)
    kept = {v.type: v for v in checked.touchpoint.invalid}
    assert kept["email"].value == "ann@@example" and "is not an e-mail address" in kept["email"].reason
    assert kept["phone"].value == "call me" and "is not a phone number" in kept["phone"].reason
    assert [w.field for w in checked.warnings] == ["identifiers.email", "identifiers.phone"]


def test_a_possible_but_unassigned_phone_is_kept_as_invalid_not_linked() -> None:
    with pytest.raises(InvalidIdentifier, match="possible length, but no such number is assigned") as refused:
        normalize_identifier(RULES, "phone", "(878) 017 5989")
    assert refused.value.kept == InvalidValue("phone", "(878) 017 5989", str(refused.value), replayable=True)
    with pytest.raises(InvalidIdentifier, match="impossible length"):
        normalize_identifier(RULES, "phone", "+1 555")


def test_sources_vocabulary_maps_through_aliases_in_any_case() -> None:
    checked = validate_event(RULES, event(("anonymousId", "a-1"), ("USERID", "u1"), ("cookie_id", "c-1"),
                                          ("Email", "Ann@Example.com")), NOW)
    assert checked.touchpoint.identifiers == (Identifier("anonymous_id", "a-1"), Identifier("cookie", "c-1"),
                                              Identifier("email", "ann@example.com"), Identifier("user_id", "u1"))
    assert checked.warnings == ()


def test_unknown_types_are_kept_by_default_and_refused_under_the_strict_policy() -> None:
    mixed = event(("user_id", "u1"), ("fax", "555"))
    checked = validate_event(RULES, mixed, NOW)
    assert checked.touchpoint.invalid[0].type == "fax" and "unknown identifier type 'fax'" in checked.warnings[0].reason
    strict = parse_rules({"identifier_types": {"user_id": {"rule": "id"}}, "unknown_identifier_types": "reject"})
    with pytest.raises(EventRefused, match="unknown identifier type 'fax'") as refused:
        validate_event(strict, mixed, NOW)
    assert refused.value.code == "unknown_identifier_type"


@pytest.mark.parametrize(("flawed", "code", "message"), [
    (event(("fax", "555"), ("email", "nope")), "no_valid_identifier", "no usable identifier"),
    (event(), "no_valid_identifier", "carries no identifiers"),
    (event(("user_id", "u1"), type=" "), "no_type", "type is empty"),
    (event(("user_id", "u1"), event_id="e\x001"), "bad_event_id", "control characters"),
    (event(("user_id", "u1"), occurred_at=NOW + timedelta(days=3)), "bad_timestamp", "in the future"),
    (event(("user_id", "u1"), channel="carrier pigeon"), "bad_channel", "neither online nor offline"),
    (event(("user_id", "u1"), properties={f"p{n}": "x" for n in range(101)}), "too_large", "101 properties"),
    (event(("user_id", "u1"), properties={"blob": "é" * 40000}), "too_large", "80027 bytes"),
    (event(*((("cookie", f"c{n}")) for n in range(17))), "too_many_identifiers", "17 identifiers"),
])
def test_an_event_is_refused_only_when_nothing_usable_is_left(flawed: EventInput, code: str, message: str) -> None:
    with pytest.raises(EventRefused, match=message) as refused:
        validate_event(RULES, flawed, NOW)
    assert refused.value.code == code


def test_control_characters_make_an_id_invalid_and_are_cleaned_from_free_text() -> None:
    checked = validate_event(RULES, event(("user_id", "u1"), ("cookie", "c\x00-1"), type="page\x07_view",
                                          traits={"first_name": "An\x00n"}, properties={"note\x1b": "a\x00b"}), NOW)
    touchpoint = checked.touchpoint
    assert touchpoint.identifiers == (Identifier("user_id", "u1"),)
    assert touchpoint.invalid == (InvalidValue("cookie", "c\\x00-1", "identifier cookie contains the control character "
                                               "U+0000", replayable=False),)
    assert (touchpoint.type, touchpoint.traits, touchpoint.properties) == ("page_view", {"first_name": "Ann"},
                                                                           {"note": "ab"})
    assert {w.field for w in checked.warnings} == {"identifiers.cookie", "type", "traits.first_name",
                                                   "properties.note\\x1b", "properties.note"}
    assert all("\x00" not in w.value for w in checked.warnings)


def test_a_too_long_value_is_kept_cut_short_and_never_replayed() -> None:
    checked = validate_event(RULES, event(("user_id", "u1"), ("cookie", "x" * 600)), NOW)
    (kept,) = checked.touchpoint.invalid
    assert len(kept.value) == RULES.max_value_length and not kept.replayable
    assert len(checked.warnings[0].value) <= 201


def test_a_bad_date_of_birth_no_longer_costs_the_event() -> None:
    checked = validate_event(RULES, event(("user_id", "u1"), traits={"date_of_birth": "last tuesday"}), NOW)
    assert checked.touchpoint.traits == {"date_of_birth_unparsed": "last tuesday"}
    assert checked.warnings[0].field == "traits.date_of_birth"


@pytest.mark.parametrize(("aliases", "message"), [
    ({"anonymousId": "anon"}, "unknown identifier type 'anon'"),
    ({"Email": "user_id"}, "is itself an identifier type"),
    ({"userId": "user_id", "USERID": "email"}, "declared twice"),
])
def test_bad_aliases_name_the_entry(aliases: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_rules({"identifier_types": {"user_id": {"rule": "id"}, "email": {"rule": "email"}}, "aliases": aliases})


def test_an_unknown_policy_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown_identifier_types is 'drop'"):
        parse_rules({"identifier_types": {"user_id": {"rule": "id"}}, "unknown_identifier_types": "drop"})
