"""Offline records as touchpoints, and their blocking-key slots: no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from server.errors import InvalidArgument
from server.identity.linkage.attributes import PersonAttributes, blocking_keys
from server.identity.linkage.linkage_config import load_linkage_rules
from server.identity.linkage.candidates import BLOCK_SLOTS, block_slots
from server.identity.records import SourceRecord, record_event, record_from_payload, record_identifier, record_payload

RULES = load_linkage_rules()


def test_a_record_becomes_an_offline_touchpoint_carrying_its_own_identifier() -> None:
    record = SourceRecord("r1", " crm ", (("email", "ann@example.com"),), {"given_name": "Ann"})
    event = record_event(record)
    assert record_identifier(record).value == "crm/r1"
    assert event.identifiers == (("record", "crm/r1"), ("email", "ann@example.com"))
    assert (event.channel, event.type, event.source) == ("offline", "record", "crm")


def test_the_same_record_is_the_same_event_and_a_changed_one_a_new_event() -> None:
    record = SourceRecord("r1", "crm", traits={"given_name": "Ann"})
    assert record_event(record).event_id == record_event(SourceRecord("r1", "crm", traits={"given_name": "Ann"})).event_id
    assert record_event(record).event_id != record_event(SourceRecord("r1", "crm", traits={"given_name": "Anne"})).event_id


@pytest.mark.parametrize("record, problem", [(SourceRecord(" ", "crm"), "record_id is empty"),
                                             (SourceRecord("r1", ""), "source is empty"),
                                             (SourceRecord("r\x001", "crm"), "record_id contains control characters")])
def test_a_record_without_id_or_source_is_refused(record: SourceRecord, problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem) as refused:
        record_event(record)
    assert getattr(refused.value, "code") == "bad_record"


def test_a_record_survives_the_round_trip_through_quarantine() -> None:
    record = SourceRecord("r1", "crm", (("phone", "(878) 017 5989"),), {"first_name": "Ann"},
                          recorded_at=datetime(2026, 3, 1, tzinfo=UTC))
    received = datetime(2026, 3, 2, tzinfo=UTC)
    back = record_from_payload(json.loads(json.dumps(record_payload(record, received))))
    assert back == SourceRecord(**{**record.__dict__, "received_at": received})
    assert record_event(back).event_id == record_event(record).event_id


def test_each_blocking_pass_has_its_own_slot() -> None:
    attributes = PersonAttributes(given_name="william", surname="smith", postcode="2000", date_of_birth="19800102",
                                  national_id="1234567")
    slots = block_slots(attributes, RULES)
    assert len(slots) == BLOCK_SLOTS
    for key in blocking_keys(attributes, RULES):
        assert slots[RULES.blocking.index(key.split(":", 1)[0])] == key
    assert sum(slot is not None for slot in slots) == len(blocking_keys(attributes, RULES))
