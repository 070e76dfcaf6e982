"""The newcomer's feed of bench/edge_feed.py: Segment names, values broken on purpose next to
good ones, and a few events with nothing usable. The bench's verdict rests on these facts,
so they are checked against the server's own normalisation and validation here."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from bench.cdp_population import CdpEvent, generate
from bench.edge_feed import (
    BAD_DATE_OF_BIRTH,
    BAD_EMAIL,
    CONTROL_IN_ID,
    FUTURE_TIMESTAMP,
    INVALID_PHONE,
    ONLY_BAD_EMAIL,
    REJECTION_CODE,
    UNKNOWN_TYPE,
    UNKNOWN_TYPE_NAME,
    Feed,
    FeedShares,
    bad_email,
    expected,
    good_identifiers,
    invalid_phone,
    newcomer_feed,
    old_rule_losses,
    sent_as,
    with_control,
)
from server.identity.ingest import EventRefused, validate_event
from server.identity.values import EventInput
from server.identity.normalize import InvalidIdentifier, normalize_date, normalize_identifier
from server.identity.identity_config import load_rules

RULES = load_rules()
RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def feed() -> Feed:
    return newcomer_feed(generate(3000, seed=3, prefix="unit"), FeedShares(), seed=7)


def as_input(event: CdpEvent) -> EventInput:
    return EventInput(event.event_id, event.occurred_at, event.source, event.channel, event.type, event.identifiers,
                      event.traits, event.properties)


def test_the_same_seeds_give_the_same_feed() -> None:
    one = newcomer_feed(generate(300, seed=2, prefix="x"), seed=5)
    two = newcomer_feed(generate(300, seed=2, prefix="x"), seed=5)
    assert (one.events, one.records, one.flaws, one.unusable) == (two.events, two.records, two.flaws, two.unusable)
    other = newcomer_feed(generate(300, seed=2, prefix="x"), seed=6)
    assert other.flaws != one.flaws


def test_web_and_app_events_speak_segments_vocabulary_which_the_aliases_map(feed: Feed) -> None:
    names = Counter(kind for event in feed.events for kind, _ in event.identifiers)
    assert names["anonymousId"] > 0 and names["userId"] > 0
    assert names["cookie"] == 0 and names["user_id"] == 0
    assert normalize_identifier(RULES, "anonymousId", "c-1").type == "anonymous_id"
    assert normalize_identifier(RULES, "userId", "u-1").type == "user_id"
    assert sent_as(("cookie", "c-1")) == ("anonymousId", "c-1") and sent_as(("email", "a@b.co")) == ("email", "a@b.co")


def test_the_shares_of_flawed_items_are_the_issues(feed: Feed) -> None:
    counts = feed.flaw_counts()
    events, records = len(feed.world.events), len(feed.records)
    assert 0.50 <= counts[INVALID_PHONE] / records <= 0.60  # like 814 of 1,429
    assert 0.01 <= counts[BAD_DATE_OF_BIRTH] / records <= 0.03
    assert 0.04 <= counts[BAD_EMAIL] / events <= 0.06
    assert 0.006 <= counts[UNKNOWN_TYPE] / events <= 0.014
    assert 0 < counts[CONTROL_IN_ID] / events <= 0.005
    assert 0.003 <= len(feed.unusable) / events <= 0.008
    assert set(feed.unusable.values()) == {ONLY_BAD_EMAIL, FUTURE_TIMESTAMP}
    assert len(feed.events) == events + len(feed.unusable)


def test_every_broken_identifier_fails_the_servers_normalisation(feed: Feed) -> None:
    kept_as = {BAD_EMAIL: "email", INVALID_PHONE: "phone", UNKNOWN_TYPE: UNKNOWN_TYPE_NAME,
               CONTROL_IN_ID: "anonymous_id"}
    for flaws in feed.flaws.values():
        for flaw in flaws:
            if flaw.kind == BAD_DATE_OF_BIRTH:
                continue
            with pytest.raises(InvalidIdentifier) as caught:
                normalize_identifier(RULES, flaw.name, flaw.value)
            assert caught.value.kept.type == kept_as[flaw.kind], flaw


@pytest.mark.parametrize("seed", range(200))
def test_made_up_phones_and_addresses_are_never_valid_nor_blocklisted_junk(seed: int) -> None:
    rng = random.Random(seed)
    phone, email = invalid_phone(rng), bad_email(rng, f"ann.smith{seed}")
    for kind, value in (("phone", phone), ("email", email)):
        assert not RULES.is_blocklisted(kind, value)
        with pytest.raises(InvalidIdentifier):
            normalize_identifier(RULES, kind, value)


def test_the_issues_unassigned_number_is_among_those_made_up() -> None:
    rng = random.Random(0)
    made = {invalid_phone(rng) for _ in range(5000)}
    assert any(p.startswith("(878) 0") for p in made) and any(p.startswith("(212) 1") for p in made)
    assert any(not any(c.isdigit() for c in p) for p in made)  # text: "n/a call office"
    with pytest.raises(InvalidIdentifier):
        normalize_identifier(RULES, "phone", "(878) 017 5989")


def test_a_control_character_sits_inside_the_value_where_trimming_cannot_remove_it() -> None:
    rng = random.Random(1)
    for value in ("c", "edge-c12-0", "x" * 40):
        broken = with_control(rng, value)
        assert broken.strip() == broken and broken != value
        with pytest.raises(InvalidIdentifier):
            normalize_identifier(RULES, "anonymousId", broken)


def test_mistyped_dates_of_birth_are_no_dates(feed: Feed) -> None:
    dates = [f.value for flaws in feed.flaws.values() for f in flaws if f.kind == BAD_DATE_OF_BIRTH]
    assert dates
    for value in dates:
        with pytest.raises(Exception, match="is not a date"):
            normalize_date(value)


def test_good_identifiers_all_pass_and_exclude_the_broken_ones(feed: Feed) -> None:
    good = good_identifiers(feed)
    broken = {(f.name, f.value) for flaws in feed.flaws.values() for f in flaws if f.is_identifier}
    assert not good & broken
    for identifier in good:
        normalize_identifier(RULES, *identifier)  # raises if not
    truth = {sent_as(i) for i in feed.world.truth.person_of}
    assert truth <= good  # every identifier of the truth is sent in a usable event or record


def test_flawed_events_are_accepted_with_one_warning_per_flaw_and_keep_their_good_identifiers(feed: Feed) -> None:
    by_id = {e.event_id: e for e in feed.events}
    flawed = [(by_id[i], flaws) for i, flaws in feed.flaws.items() if i in by_id]
    assert flawed
    for event, flaws in flawed:
        checked = validate_event(RULES, as_input(event), RECEIVED)
        assert len(checked.warnings) == len(flaws)
        assert len(checked.touchpoint.invalid) == len(flaws)
        assert len(checked.touchpoint.identifiers) == len({normalize_identifier(RULES, *i)
                                                           for i in event.identifiers[:len(event.identifiers) - len(flaws)]})


def test_clean_events_pass_without_a_warning(feed: Feed) -> None:
    clean = [e for e in feed.events if e.event_id not in feed.flaws and e.event_id not in feed.unusable]
    for event in clean[:3000]:
        assert validate_event(RULES, as_input(event), RECEIVED).warnings == ()


def test_unusable_events_are_refused_with_the_expected_code(feed: Feed) -> None:
    by_id = {e.event_id: e for e in feed.events}
    for event_id, kind in feed.unusable.items():
        with pytest.raises(EventRefused) as caught:
            validate_event(RULES, as_input(by_id[event_id]), RECEIVED)
        assert caught.value.code == REJECTION_CODE[kind]


def test_what_the_server_should_show_follows_from_the_flaws(feed: Feed) -> None:
    want = expected(RULES, feed)
    counts = feed.flaw_counts()
    assert want.invalid_by_type == {"email": counts[BAD_EMAIL], "phone": counts[INVALID_PHONE],
                                    UNKNOWN_TYPE_NAME: counts[UNKNOWN_TYPE], "anonymous_id": counts[CONTROL_IN_ID]}
    assert want.unparsed_dates_of_birth == counts[BAD_DATE_OF_BIRTH]
    assert len(want.events_with_warnings) + len(want.records_with_warnings) == len(feed.flaws)
    assert want.has_invalid == sum(any(f.is_identifier for f in flaws) for flaws in feed.flaws.values())
    assert set(want.rejected) == set(feed.unusable)


def test_the_old_rule_would_have_lost_every_event_with_a_segment_name(feed: Feed) -> None:
    lost = old_rule_losses(feed, warned=["x-1"], rejected=["x-2"])
    with_segment_names = sum(any(t in ("anonymousId", "userId") for t, _ in e.identifiers) for e in feed.events)
    assert lost["with_warning_or_rejected"] == 2
    assert with_segment_names <= lost["with_old_vocabulary"] <= with_segment_names + 2 + len(feed.flaws)
    assert lost["with_old_vocabulary"] > 0.5 * len(feed.events)
