"""Journeys, forgetting a person and unlinking a wrong merge, through the real service."""

from __future__ import annotations

import grpc
import pytest
from identity.v1 import common_pb2, identity_service_pb2 as pb
from neo4j import Driver
from support import T0, by_id, by_identifier, event, identifier, identifiers_of, ingest, lookup, profile_of, stamp


def journey(identity, **request) -> list[pb.JourneyStep]:
    return list(identity.TraverseJourney(pb.TraverseJourneyRequest(**request), timeout=30))


@pytest.fixture
def shopper(identity, uid: str) -> str:
    """A person seen on the web (anonymously, then logged in) and in a store."""
    ingest(identity, [
        event(f"{uid}-3", f"cookie:c-{uid}", minute=30, type="page_view"),
        event(f"{uid}-1", f"cookie:c-{uid}", minute=10, type="page_view"),
        event(f"{uid}-2", f"cookie:c-{uid}", f"email:{uid}@example.com", minute=20, type="identify"),
        event(f"{uid}-4", f"loyalty_id:L-{uid}", f"email:{uid}@example.com", minute=40, type="purchase",
              source="pos", channel=common_pb2.CHANNEL_OFFLINE, properties={"amount": "42.50"}),
        event(f"{uid}-5", f"cookie:c-{uid}", minute=50, type="page_view"),
    ])
    return f"email:{uid}@example.com"


def test_journey_spans_all_identifiers_in_time_order(identity, shopper: str, uid: str) -> None:
    steps = journey(identity, ref=by_identifier(shopper))
    assert [s.touchpoint.event_id for s in steps] == [f"{uid}-{n}" for n in range(1, 6)]
    purchase = steps[3].touchpoint
    assert purchase.channel == common_pb2.CHANNEL_OFFLINE and purchase.properties["amount"] == "42.50"
    assert {f"{i.type}:{i.value}" for i in purchase.identifiers} == {f"loyalty_id:L-{uid}", shopper}


def test_journey_filters_by_type_channel_source_and_time(identity, shopper: str, uid: str) -> None:
    from datetime import timedelta

    def ids(**filters) -> list[str]:
        return [s.touchpoint.event_id for s in journey(identity, ref=by_identifier(shopper), **filters)]

    assert ids(types=["page_view"]) == [f"{uid}-1", f"{uid}-3", f"{uid}-5"]
    assert ids(channels=[common_pb2.CHANNEL_OFFLINE]) == [f"{uid}-4"]
    assert ids(sources=["web"], descending=True) == [f"{uid}-5", f"{uid}-3", f"{uid}-2", f"{uid}-1"]
    assert ids(since=stamp(T0 + timedelta(minutes=20)), until=stamp(T0 + timedelta(minutes=40))) == \
        [f"{uid}-2", f"{uid}-3"]


def test_journey_resumes_from_a_cursor(identity, shopper: str, uid: str) -> None:
    first = journey(identity, ref=by_identifier(shopper), limit=2)
    rest = journey(identity, ref=by_identifier(shopper), cursor=first[-1].cursor)
    assert [s.touchpoint.event_id for s in first + rest] == [f"{uid}-{n}" for n in range(1, 6)]
    back = journey(identity, ref=by_identifier(shopper), descending=True, cursor=rest[0].cursor)
    assert [s.touchpoint.event_id for s in back] == [f"{uid}-2", f"{uid}-1"]


def test_journey_refuses_a_forged_cursor_and_bad_ranges(identity, shopper: str) -> None:
    for request, message in [({"cursor": "bm90IGEgY3Vyc29y"}, "is not a cursor"),
                             ({"since": stamp(T0), "until": stamp(T0)}, "since must be before until"),
                             ({"limit": -1}, "limit must not be negative")]:
        with pytest.raises(grpc.RpcError) as raised:
            journey(identity, ref=by_identifier(shopper), **request)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in raised.value.details()


def test_journey_of_an_unknown_profile_is_not_found(identity, uid: str) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        journey(identity, ref=by_id(f"no-such-profile-{uid}"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_forgetting_erases_the_person_and_suppresses_their_identifiers(identity, driver: Driver, shopper: str,
                                                                      uid: str) -> None:
    profile_id = profile_of(identity, shopper).profile_id
    answer = identity.ForgetProfile(pb.ForgetProfileRequest(ref=by_identifier(shopper)), timeout=30)
    assert (answer.profile_id, answer.identifiers_forgotten, answer.touchpoints_erased) == (profile_id, 3, 5)
    records, _, _ = driver.execute_query(
        "MATCH (n) WHERE (n:Identifier AND n.value CONTAINS $uid) OR (n:Touchpoint AND n.event_id STARTS WITH $uid) "
        "RETURN count(n) AS left", uid=uid)
    assert records[0]["left"] == 0
    (result,) = lookup(identity, by_id(profile_id))
    assert "was forgotten" in result.not_found.reason
    (ack,) = ingest(identity, [event(f"{uid}-later", f"cookie:new-{uid}", shopper, minute=90)])
    assert ack.status == pb.ACK_STATUS_REJECTED and "forgotten person" in ack.reason
    (other,) = lookup(identity, by_identifier(f"cookie:new-{uid}"))
    assert other.WhichOneof("result") == "not_found", "nothing of a suppressed event is written"


def test_unlinking_an_identifier_splits_the_profile_and_keeps_them_apart(identity, uid: str) -> None:
    ingest(identity, [
        event(f"{uid}-1", f"user_id:u-{uid}", f"email:{uid}@example.com"),
        event(f"{uid}-2", f"email:{uid}@example.com", f"cookie:wrong-{uid}", minute=1),
        event(f"{uid}-3", f"cookie:wrong-{uid}", f"device_id:d-{uid}", minute=2),
    ])
    assert len(profile_of(identity, f"user_id:u-{uid}").identifiers) == 4
    answer = identity.UnlinkIdentifier(pb.UnlinkIdentifierRequest(
        identifier=identifier(f"cookie:wrong-{uid}"), linked_to=identifier(f"email:{uid}@example.com"),
        reason="a shared computer"), timeout=30)
    assert len(answer.profile_ids) == 2
    person, stray = profile_of(identity, f"user_id:u-{uid}"), profile_of(identity, f"cookie:wrong-{uid}")
    assert identifiers_of(person) == {f"user_id:u-{uid}", f"email:{uid}@example.com"}
    assert identifiers_of(stray) == {f"cookie:wrong-{uid}", f"device_id:d-{uid}"}
    assert person.touchpoints_by_channel["online"] == 2, "the event with the e-mail follows the e-mail"
    assert stray.touchpoints_by_channel["online"] == 1
    ingest(identity, [event(f"{uid}-4", f"email:{uid}@example.com", f"cookie:wrong-{uid}", minute=3)])
    assert profile_of(identity, f"cookie:wrong-{uid}").profile_id == stray.profile_id, "the operator's unlink holds"


def test_unlinking_identifiers_that_are_not_linked_is_not_found(identity, uid: str) -> None:
    ingest(identity, [event(f"{uid}-1", f"cookie:a-{uid}"), event(f"{uid}-2", f"cookie:b-{uid}")])
    with pytest.raises(grpc.RpcError) as raised:
        identity.UnlinkIdentifier(pb.UnlinkIdentifierRequest(identifier=identifier(f"cookie:a-{uid}"),
                                                             linked_to=identifier(f"cookie:b-{uid}")), timeout=30)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND and "are not linked" in raised.value.details()
