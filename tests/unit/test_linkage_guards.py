"""Decision guards on the levels of real-looking pairs: households and namesakes stay apart,
a till signup typed with a nickname and a typo still reaches its own CRM record."""

from __future__ import annotations

import dataclasses

from server.identity.linkage.attributes import PersonAttributes
from server.identity.linkage.compare import levels
from server.identity.linkage.guards import HOUSEHOLD, NAMESAKE, Guards
from server.identity.linkage.linkage_config import load_linkage_rules

RULES = load_linkage_rules()
GUARDS = Guards(RULES)

SANDRA = PersonAttributes(given_name="sandra", surname="gonzalez", street_number="684", address_1="hamilton pl",
                          suburb="chester", postcode="27611", date_of_birth="20040108")


def guard(left: PersonAttributes, right: PersonAttributes) -> str | None:
    return GUARDS.reason(levels([left], [right], RULES)[0])


def test_a_household_member_with_another_given_name_and_no_birth_date_is_guarded() -> None:
    partner = dataclasses.replace(SANDRA, given_name="kevin", date_of_birth=None)
    assert guard(partner, SANDRA) == HOUSEHOLD


def test_a_signup_with_a_mistyped_nickname_and_no_birth_date_is_not_taken_for_a_household() -> None:
    michael = dataclasses.replace(SANDRA, given_name="michael", surname="torres")
    at_the_till = dataclasses.replace(michael, given_name="miek", surname="torres", date_of_birth=None)
    assert guard(at_the_till, michael) is None


def test_a_signup_with_a_short_nickname_one_slip_off_and_no_birth_date_is_not_taken_for_a_household() -> None:
    """"dno" for Donald's don, "tpm" for Thomas's tom: missed at 30,000 people in 6,000 per postcode."""
    donald = dataclasses.replace(SANDRA, given_name="donald", surname="carlson")
    assert guard(dataclasses.replace(donald, given_name="dno", date_of_birth=None), donald) is None
    thomas = dataclasses.replace(SANDRA, given_name="thomas", surname="garcia")
    assert guard(dataclasses.replace(thomas, given_name="tpm", date_of_birth=None), thomas) is None


def test_a_household_member_whose_name_is_one_slip_from_the_others_nickname_is_guarded() -> None:
    """Timothy's "tim" is one slip from Thomas's tom but a name of its own; "tm" is one slip from both."""
    thomas = dataclasses.replace(SANDRA, given_name="thomas")
    assert guard(dataclasses.replace(SANDRA, given_name="tim", date_of_birth=None), thomas) == HOUSEHOLD
    assert guard(dataclasses.replace(SANDRA, given_name="tm", date_of_birth=None), thomas) == HOUSEHOLD


def test_the_same_person_typed_with_a_swapped_birth_date_is_not_guarded() -> None:
    assert guard(dataclasses.replace(SANDRA, given_name="sandar", date_of_birth="20040801"), SANDRA) is None


def test_a_namesake_elsewhere_born_another_year_is_guarded() -> None:
    namesake = dataclasses.replace(SANDRA, street_number="12", address_1="oak st", suburb="aurora", postcode="18271",
                                   date_of_birth="19710305")
    assert guard(namesake, SANDRA) == NAMESAKE


def test_one_national_id_overrules_the_guards() -> None:
    partner = dataclasses.replace(SANDRA, given_name="kevin", date_of_birth=None, national_id="123456789")
    assert guard(partner, dataclasses.replace(SANDRA, national_id="123456789")) is None
