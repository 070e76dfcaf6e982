"""A lookup's answer as convert fills it in place: every field of the view, times exact to the
microsecond, and an unknown time left unset (not the epoch)."""

from __future__ import annotations

from datetime import UTC, datetime

from identity.v1 import identity_service_pb2 as pb

from server.api import convert
from server.identity.consent import DENIED, GRANTED, ConsentState
from server.identity.values import GoldenTraitView, HeldIdentifier, Identifier, LookupMiss, ProfileView

SEEN = datetime(2026, 11, 3, 9, 30, 15, 123456, tzinfo=UTC)
LATER = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


def view() -> ProfileView:
    return ProfileView(
        profile_id="p1",
        identifiers=(HeldIdentifier(Identifier("cookie", "c1"), SEEN, LATER),
                     HeldIdentifier(Identifier("email", "ann@example.com"), None, None)),
        merged_profile_ids=("p0",),
        traits=(GoldenTraitView("first_name", "Ann", "crm", SEEN),),
        touchpoints_by_channel={"online": 3, "offline": 1},
        first_seen=SEEN,
        last_seen=None,
        segments=("vip",),
        consent=(ConsentState("advertising", GRANTED, LATER, "web"), ConsentState("email", DENIED, None, "default")),
    )


def test_a_found_profile_carries_every_field_of_its_view() -> None:
    result = convert.lookup_result("7", view())
    assert result.request_id == "7" and result.WhichOneof("result") == "profile"
    profile = result.profile
    assert profile.profile_id == "p1" and list(profile.merged_profile_ids) == ["p0"]
    cookie, email = profile.identifiers
    assert (cookie.identifier.type, cookie.identifier.value) == ("cookie", "c1")
    assert cookie.first_seen.ToDatetime(tzinfo=UTC) == SEEN and cookie.last_seen.ToDatetime(tzinfo=UTC) == LATER
    assert not email.HasField("first_seen") and not email.HasField("last_seen"), "an unknown time stays unset"
    (trait,) = profile.traits
    assert (trait.key, trait.value, trait.source, trait.observed_at.ToDatetime(tzinfo=UTC)) == (
        "first_name", "Ann", "crm", SEEN)
    assert dict(profile.touchpoints_by_channel) == {"online": 3, "offline": 1}
    assert profile.first_seen.ToDatetime(tzinfo=UTC) == SEEN and not profile.HasField("last_seen")
    assert list(profile.segments) == ["vip"]
    advertising, email_consent = profile.consent
    assert (advertising.category, advertising.status, advertising.source) == (
        "advertising", pb.CONSENT_STATUS_GRANTED, "web")
    assert advertising.stated_at.ToDatetime(tzinfo=UTC) == LATER
    assert email_consent.status == pb.CONSENT_STATUS_DENIED and not email_consent.HasField("stated_at")


def test_times_before_the_epoch_keep_their_exact_value() -> None:
    early = datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)
    profile = convert.lookup_result("1", ProfileView("p", (), (), (), {}, early, None)).profile
    assert profile.first_seen.ToDatetime(tzinfo=UTC) == early
    assert (profile.first_seen.seconds, profile.first_seen.nanos) == (-1, 500_000_000)


def test_a_miss_is_not_found_with_its_reason() -> None:
    result = convert.lookup_result("2", LookupMiss("no profile holds cookie:x"))
    assert result.WhichOneof("result") == "not_found" and result.not_found.reason == "no profile holds cookie:x"
