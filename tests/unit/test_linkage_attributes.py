"""Linkage attributes and rules: traits cleaned into comparable values, blocking keys, the config file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from server.errors import ConfigurationError
from server.identity.linkage.attributes import PersonAttributes, blocking_keys, clean_date, person_attributes
from bench.linkage_pipeline import candidate_pairs
from server.identity.linkage.linkage_config import DEFAULT_LINKAGE_FILE, load_linkage_rules

RULES = load_linkage_rules()


def test_names_lose_case_accents_punctuation_and_extra_spaces() -> None:
    traits = {"First Name": "  José ", "family_name": "O'Brien-SMITH", "city": "Winston   Hills"}
    person = person_attributes(traits, RULES)
    assert person == PersonAttributes(given_name="jose", surname="obrien smith", suburb="winston hills")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1980-03-07", "19800307"),
        ("19800307", "19800307"),
        ("1980/3/7", "19800307"),
        ("07/03/1980", "19800307"),
        ("7.3.1980", "19800307"),
        ("03/25/1980", "19800325"),
        ("1980-03-07T10:00:00", "19800307"),
        ("1980-02-30", None),
        ("last tuesday", None),
    ],
)
def test_dates_in_common_formats_become_yyyymmdd(raw: str, expected: str | None) -> None:
    assert clean_date(raw) == expected


def test_trait_aliases_fill_the_same_attribute() -> None:
    traits = {"zip": "4223 ", "soc_sec_id": "530-4218", "street": "8 Stanley St.", "birth_date": "1915-11-11", "x": "y"}
    person = person_attributes(traits, RULES)
    assert person == PersonAttributes(
        postcode="4223", national_id="5304218", address_1="8 stanley st", date_of_birth="19151111"
    )


def test_an_empty_alias_does_not_hide_a_filled_one() -> None:
    person = person_attributes({"first_name": " ", "given_name": "Ann", "zip": "2000", "dob": "1980-03-07"}, RULES)
    assert person is not None and person.given_name == "ann"


def test_a_record_with_fewer_fields_than_min_fields_is_not_matchable() -> None:
    assert RULES.min_fields == 3
    assert person_attributes({"first_name": "ann", "surname": "lee", "nickname": "annie"}, RULES) is None
    assert person_attributes({"first_name": "ann", "surname": "lee", "zip": "2000"}, RULES) is not None


def test_attributes_survive_a_round_trip_through_a_dict() -> None:
    person = PersonAttributes(given_name="ann", surname="lee", date_of_birth="19800307")
    assert PersonAttributes.from_dict(person.as_dict()) == person
    assert PersonAttributes.from_dict({"surname": "lee", "unknown": "x"}) == PersonAttributes(surname="lee")


MICHAELA = PersonAttributes(
    given_name="michaela", surname="neumann", postcode="4223", date_of_birth="19151111", national_id="5304218"
)


def test_blocking_keys_are_prefixed_by_their_pass() -> None:
    keys = blocking_keys(MICHAELA, RULES)
    assert "dob:19151111" in keys and "national_id:5304218" in keys and "given2_postcode:mi|4223" in keys
    assert "surname_soundex_yob:N550|1915" in keys and "surname_initial_postcode_digits:n|2234" in keys
    assert [key.split(":", 1)[0] for key in keys] == [p for p in RULES.blocking if p != "street_suburb"]  # no street
    with_street = dataclasses.replace(MICHAELA, street_number="12", address_1="oak st", suburb="kew")
    assert "street_suburb:12|oakst|kew" in blocking_keys(with_street, RULES)


def test_a_pass_whose_parts_are_missing_gives_no_key() -> None:
    keys = blocking_keys(PersonAttributes(surname="neumann", postcode="4223", suburb="dapto"), RULES)
    assert keys == ["surname_initial_postcode_digits:n|2234"]


def test_a_nickname_and_its_formal_name_share_given_name_keys() -> None:
    bill = blocking_keys(dataclasses.replace(MICHAELA, given_name="bill"), RULES)
    william = blocking_keys(dataclasses.replace(MICHAELA, given_name="william"), RULES)
    assert "given2_postcode:wi|4223" in set(bill) & set(william)


def test_postcodes_with_two_digits_transposed_share_a_key() -> None:
    moved = blocking_keys(dataclasses.replace(MICHAELA, postcode="4232"), RULES)
    assert "surname_initial_postcode_digits:n|2234" in moved


def test_swapped_names_keep_their_name_key() -> None:
    swapped = dataclasses.replace(MICHAELA, given_name=MICHAELA.surname, surname=MICHAELA.given_name)
    shared = set(blocking_keys(MICHAELA, RULES)) & set(blocking_keys(swapped, RULES))
    assert any(key.startswith("name_soundexes:") for key in shared)


def test_an_oversized_block_pairs_each_record_with_its_neighbours_only() -> None:
    rules = dataclasses.replace(RULES, blocking=("postcode",), max_block_size=10)
    crowd = [PersonAttributes(given_name="ann", surname=f"name{i:03d}", postcode="2000") for i in range(100)]
    pairs = candidate_pairs(crowd, rules)
    per_record = max((pairs == i).sum() for i in range(100))
    assert per_record == 2 * 9 and len(pairs) < 100 * 9


def test_a_small_block_pairs_everyone() -> None:
    rules = dataclasses.replace(RULES, blocking=("postcode",))
    pairs = candidate_pairs([PersonAttributes(postcode="2000")] * 4 + [PersonAttributes(postcode="3000")], rules)
    assert len(pairs) == 6


def write_rules(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(DEFAULT_LINKAGE_FILE.read_text(encoding="utf-8")) | changes
    path = tmp_path / "linkage.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"blocking": ["postcode", "horoscope"]}, "unknown passes horoscope"),
        ({"fields": {"given_name": {"comparator": "vibes"}}}, "given_name.comparator is 'vibes'"),
        ({"fields": {"nickname": {"comparator": "name", "bands": [0.9]}}}, "nickname is not a person attribute"),
        ({"fields": {"surname": {"comparator": "name", "bands": [0.9, 0.8]}}}, "bands must list"),
        ({"fields": {"surname": {"comparator": "name", "bands": [0.9], "swap_with": "suburb"}}}, "swap_with"),
        ({"upper": 0.4, "lower": 0.5}, "must not exceed upper"),
        ({"upper": 1.5}, "upper must be a probability"),
        ({"max_block_size": 1}, "max_block_size must be a whole number of at least 2"),
        ({"fitting": {"prior_rules": [["given_name", "horoscope"]]}}, r"prior_rules\[0\] names horoscope"),
        ({"fitting": {"prior_rules": []}}, "prior_rules must list at least one rule"),
        ({"fitting": {"prior_rules_recall": 0}}, "prior_rules_recall must be a share above 0"),
    ],
)
def test_bad_linkage_rules_are_refused_with_the_entry_named(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_linkage_rules(write_rules(tmp_path, **changes))


def test_a_missing_rules_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_linkage_rules(tmp_path / "nowhere.yaml")


def test_the_shipped_rules_compare_every_person_attribute_but_country() -> None:
    """One country per deployment: every pair agrees on it, so it says nothing (its exact
    agreement would weigh nothing and fail the fit's checks). Configure it where it varies."""
    assert set(RULES.field_names) == set(PersonAttributes.__dataclass_fields__) - {"country"}
    assert RULES.lower < RULES.upper


def test_the_documented_trait_keys_are_read() -> None:
    """The proto documents first_name, last_name, date_of_birth, address, city, postcode, country."""
    found = person_attributes({"first_name": "Micaael", "last_name": "Martinez", "date_of_birth": "1980-02-03",
                               "address": "5992 Ridge Street", "city": "Springfield", "postcode": "62704",
                               "country": "US"}, RULES)
    assert found == PersonAttributes(given_name="micaael", surname="martinez", street_number="5992",
                                     address_1="ridge st", suburb="springfield", postcode="62704",
                                     date_of_birth="19800203", country="us")


@pytest.mark.parametrize(("line", "number", "street"), [
    ("9180 Meadow Ave", "9180", "meadow ave"),
    ("5992 ridge st", "5992", "ridge st"),
    ("12a Oak Street", "12a", "oak st"),
    ("3/12 Oak St", "12", "oak st"),
    ("Unit 4, 12-14 Long Road", "12", "long rd"),
    ("Main Street", None, "main st"),
])
def test_a_one_line_address_splits_into_number_and_street(line: str, number: str | None, street: str) -> None:
    found = person_attributes({"first_name": "a", "last_name": "b", "address": line}, RULES)
    assert found is not None and (found.street_number, found.address_1) == (number, street)


def test_explicit_address_fields_win_over_a_one_line_address() -> None:
    found = person_attributes({"address": "1 Elm St", "street_number": "7", "address_1": "Oak Street",
                               "first_name": "a"}, RULES)
    assert found is not None and (found.street_number, found.address_1) == ("7", "oak st")
