"""The tracking spec's messages as events (server/identity/tracking.py), with the shipped
config/collector.yaml: what each call type means, clock-skew correction, and faults."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.errors import ConfigurationError
from server.identity.identity_config import DEFAULT_RULES_FILE, load_rules
from server.identity.tracking import Delivery, MessageFault, call_type, derived_id, flatten, to_event
from server.identity.tracking_config import DEFAULT_COLLECTOR_FILE, load_collector_config

TYPES = frozenset(load_rules(DEFAULT_RULES_FILE).identifier_types)
RULES = load_collector_config(DEFAULT_COLLECTOR_FILE, TYPES).tracking
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
DELIVERY = Delivery("web", NOW)


def event(message: dict, delivery: Delivery = DELIVERY):
    return to_event(message, call_type(message, None), delivery, RULES)


def test_identify_maps_ids_and_the_reserved_traits_onto_what_linkage_compares() -> None:
    e = event({"type": "identify", "messageId": "m1", "userId": "u1", "anonymousId": "a1",
               "traits": {"email": "Ann@Example.org", "firstName": "Ann", "lastName": "Lee", "birthday": "1990-02-03",
                          "address": {"street": "1 Main St", "city": "Leeds", "postalCode": "LS1"}, "plan": "gold"},
               "context": {"device": {"id": "dev-1", "advertisingId": "ad-1"}}})
    assert e.event_id == "m1" and e.type == "identify" and e.source == "web" and e.channel == "online"
    assert set(e.identifiers) == {("user_id", "u1"), ("anonymous_id", "a1"), ("email", "Ann@Example.org"),
                                  ("device_id", "dev-1"), ("advertising_id", "ad-1")}
    assert e.traits == {"first_name": "Ann", "last_name": "Lee", "date_of_birth": "1990-02-03", "address": "1 Main St",
                        "city": "Leeds", "postcode": "LS1", "plan": "gold"}  # the e-mail is an identifier only
    assert not e.problem


def test_track_page_and_screen_keep_properties_and_the_context_parts_configured() -> None:
    track = event({"type": "track", "userId": "u1", "event": "Order Completed",
                   "properties": {"revenue": 12.5, "products": [{"id": 1}], "coupon": None, "gift": True},
                   "context": {"page": {"url": "https://shop.test/a"}, "ip": "1.2.3.4", "userAgent": "Mozilla"}})
    assert track.type == "Order Completed"
    assert track.properties == {"revenue": "12.5", "products": '[{"id":1}]', "gift": "true",
                                "page.url": "https://shop.test/a"}  # no ip, no user agent: personal data
    page = event({"type": "page", "anonymousId": "a1", "name": "Home", "properties": {"path": "/"}})
    assert (page.type, page.properties) == ("page_view", {"path": "/", "name": "Home"})
    screen = event({"type": "screen", "anonymousId": "a1", "name": "Cart", "context": {"app": {"version": "2.1"}}})
    assert (screen.type, screen.properties) == ("screen_view", {"name": "Cart", "app.version": "2.1"})


def test_ip_and_user_agent_are_kept_only_where_configured() -> None:
    rules = replace(RULES, personal=frozenset({"ip", "userAgent"}))
    message = {"type": "track", "userId": "u1", "event": "x", "context": {"ip": "1.2.3.4", "userAgent": "Mozilla"}}
    assert to_event(message, "track", DELIVERY, rules).properties == {"ip": "1.2.3.4", "user_agent": "Mozilla"}


def test_group_keeps_the_group_and_its_traits_on_the_touchpoint_never_as_the_persons() -> None:
    e = event({"type": "group", "userId": "u1", "groupId": "g-9", "traits": {"name": "Acme", "employees": 40}})
    assert e.type == "group" and e.traits == {}
    assert e.properties == {"group_id": "g-9", "group.name": "Acme", "group.employees": "40"}


def test_alias_links_previous_id_with_user_id() -> None:
    e = event({"type": "alias", "previousId": "anon-7", "userId": "u1"})
    assert set(e.identifiers) == {("user_id", "u1"), ("anonymous_id", "anon-7")} and e.type == "alias"


def test_a_batchs_context_reaches_every_message_and_the_messages_own_wins() -> None:
    delivery = Delivery("web", NOW, context={"app": {"version": "1"}, "device": {"id": "d-batch"}})
    e = event({"type": "track", "userId": "u1", "event": "x", "context": {"app": {"version": "2"}}}, delivery)
    assert e.properties["app.version"] == "2" and ("device_id", "d-batch") in e.identifiers


def test_the_timestamp_is_corrected_for_the_devices_clock() -> None:
    # the device's clock runs 10 minutes fast: it stamped the event 30 s before it sent it
    delivery = Delivery("web", NOW, sent_at=(NOW + timedelta(minutes=10)).isoformat())
    original = (NOW + timedelta(minutes=10) - timedelta(seconds=30)).isoformat()
    e = event({"type": "track", "userId": "u1", "event": "x", "originalTimestamp": original}, delivery)
    assert e.occurred_at == NOW - timedelta(seconds=30)
    stamped = event({"type": "track", "userId": "u1", "event": "x", "timestamp": "2026-01-02T03:04:05Z"})
    assert stamped.occurred_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # a source's own timestamp, as is
    assert event({"type": "track", "userId": "u1", "event": "x"}).occurred_at is None  # the ingestor takes now


def test_content_faults_become_events_that_carry_their_problem_into_quarantine() -> None:
    no_user = event({"type": "track", "event": "x", "traits": {"email": "a@b.test"}})
    assert no_user.problem_code == "no_user_or_anonymous_id" and "neither userId nor anonymousId" in no_user.problem
    bad_time = event({"type": "track", "userId": "u1", "event": "x", "timestamp": "yesterday"})
    assert bad_time.problem_code == "bad_timestamp" and "'yesterday' is not an ISO 8601 time" in bad_time.problem


@pytest.mark.parametrize(("message", "path_call", "code"), [
    ([1, 2], None, "not_an_object"),
    ({"userId": "u1"}, None, "no_type"),
    ({"type": "purchase", "userId": "u1"}, None, "unknown_type"),
    ({"userId": "u1"}, "track", "no_event"),
])
def test_a_message_the_spec_cannot_read_is_a_fault_of_the_request(message, path_call, code) -> None:
    with pytest.raises(MessageFault) as fault:
        call_type(message, path_call)
    assert fault.value.code == code


def test_the_endpoints_call_type_wins_over_the_messages() -> None:
    assert call_type({"type": "page", "event": "x"}, "track") == "track"


def test_a_message_without_message_id_gets_the_same_id_each_time_it_is_sent() -> None:
    message = {"type": "track", "userId": "u1", "event": "x", "sentAt": "2026-01-01T00:00:00Z"}
    again = {**message, "sentAt": "2026-01-01T00:05:00Z"}  # a retry is sent later
    assert derived_id(message, "web") == derived_id(again, "web") != derived_id(message, "app")
    assert event(message).event_id == derived_id(message, "web")


def test_flatten_names_nested_values_by_their_path() -> None:
    assert dict(flatten({"a": {"b": 1, "c": [1, "x"]}, "d": None, "e": "s"})) == {"a.b": "1", "a.c": '[1,"x"]', "e": "s"}


@pytest.mark.parametrize(("text", "message"), [
    ("identifiers: {userId: fax_number}\n", "fax_number"),
    ("max_batch_messages: 0\n", "max_batch_messages must be a positive"),
    ("personal: [ssn]\n", "personal may list"),
    ("channels: {pos: instore}\n", "channel must be online or offline"),
    ("colour: blue\n", "unknown keys"),
])
def test_the_collector_file_is_checked_at_start(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        load_collector_config(path, TYPES)


def test_segments_category_preferences_are_consent_statements_on_any_call() -> None:
    e = event({"type": "track", "event": "Segment Consent Preference Updated", "anonymousId": "a1",
               "context": {"consent": {"categoryPreferences": {"Advertising": False, "Analytics": True}}}})
    assert e.consent == {"Advertising": False, "Analytics": True}
    assert event({"type": "page", "anonymousId": "a1"}).consent == {}


def test_a_batchs_context_states_consent_for_each_of_its_messages() -> None:
    delivery = Delivery("web", NOW, context={"consent": {"categoryPreferences": {"ads": True}}})
    assert event({"type": "page", "anonymousId": "a1"}, delivery).consent == {"ads": True}


def test_rudderstacks_consent_management_ids_grant_and_deny() -> None:
    e = event({"type": "identify", "userId": "u1", "context": {"consentManagement": {
        "provider": "oneTrust", "allowedConsentIds": ["C0001", "C0002"], "deniedConsentIds": ["C0004", 7],
        "resolutionStrategy": "and"}}})
    assert e.consent == {"C0001": True, "C0002": True, "C0004": False, "7": False}


def test_a_category_granted_by_one_consent_object_and_denied_by_the_other_is_denied() -> None:
    e = event({"type": "page", "anonymousId": "a1", "context": {
        "consent": {"categoryPreferences": {"C0004": True}}, "consentManagement": {"deniedConsentIds": ["C0004"]}}})
    assert e.consent == {"C0004": False}


def test_an_invalid_value_states_nothing_beside_a_valid_choice_for_the_same_name() -> None:
    e = event({"type": "page", "anonymousId": "a1", "context": {
        "consent": {"categoryPreferences": {"C0004": "yes"}}, "consentManagement": {"allowedConsentIds": ["C0004"]}}})
    assert e.consent == {"C0004": True}


def test_consent_values_that_are_no_choice_are_passed_on_for_ingest_to_warn_of() -> None:
    e = event({"type": "page", "anonymousId": "a1", "context": {
        "consent": {"categoryPreferences": {"ads": "yes"}}, "consentManagement": {"allowedConsentIds": [{"id": 1}]}}})
    assert e.consent == {"ads": "yes", "allowedConsentIds[0]": {"id": 1}}
    assert event({"type": "page", "anonymousId": "a1",
                  "context": {"consent": {"categoryPreferences": "all"}}}).consent == {"categoryPreferences": "all"}
