"""The flawed events of bench/ingest_flaws.py: the same events, plus values the server keeps as invalid."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bench.ingest_flaws import (
    FLAW_KINDS,
    IMPOSSIBLE_DATE_OF_BIRTH,
    INVALID_TYPE,
    add_flaws,
    choose_flaws,
    flawed_value,
)
from bench.population import EventSpec, generate
from server.identity.normalize import InvalidIdentifier, normalize_identifier, normalize_traits
from server.identity.identity_config import load_rules

RULES = load_rules()
EVENTS = generate(people=100, events=1000, prefix="t").events


def event(identifiers: int, traits: dict[str, str] | None = None) -> EventSpec:
    return EventSpec("t-e-1", datetime(2026, 8, 1, tzinfo=UTC), "web", "online", "identify",
                     tuple(("cookie", f"t-c-{n}") for n in range(identifiers)), traits or {})


@pytest.mark.parametrize("kind", sorted(INVALID_TYPE))
def test_every_flawed_identifier_is_one_the_server_keeps_as_invalid(kind: str) -> None:
    rng = random.Random(1)
    for sample in EVENTS[:200]:
        type_, value = flawed_value(kind, sample, rng)
        with pytest.raises(InvalidIdentifier) as raised:
            normalize_identifier(RULES, type_, value)
        assert raised.value.kept.type == INVALID_TYPE[kind]


def test_every_flawed_date_of_birth_is_kept_unparsed_with_a_warning() -> None:
    rng = random.Random(1)
    for sample in EVENTS[:50]:
        key, value = flawed_value(IMPOSSIBLE_DATE_OF_BIRTH, sample, rng)
        warnings: list = []
        assert "date_of_birth_unparsed" in normalize_traits({key: value}, warnings)
        assert [w.field for w in warnings] == ["traits.date_of_birth"]


def test_flawed_events_keep_their_ids_and_good_values() -> None:
    flawed = add_flaws(EVENTS, 0.5, RULES.max_identifiers_per_event)
    assert [e.event_id for e in flawed.events] == [e.event_id for e in EVENTS]
    for clean, dirty in zip(EVENTS, flawed.events):
        assert dirty.identifiers[:len(clean.identifiers)] == clean.identifiers
        assert {k: dirty.traits[k] for k in clean.traits} == clean.traits
        assert (dirty.occurred_at, dirty.type, dirty.properties) == (clean.occurred_at, clean.type, clean.properties)


def test_about_the_asked_share_of_events_is_flawed_and_the_same_seed_flaws_the_same_ones() -> None:
    one = add_flaws(EVENTS, 0.3, RULES.max_identifiers_per_event, seed=5)
    two = add_flaws(EVENTS, 0.3, RULES.max_identifiers_per_event, seed=5)
    assert one.events == two.events
    assert 0.25 < one.flawed_events / len(EVENTS) < 0.35
    changed = [d for c, d in zip(EVENTS, one.events) if c != d]
    assert len(changed) == one.flawed_events
    assert sum(len(d.identifiers) > len(c.identifiers) for c, d in zip(EVENTS, one.events)) == one.with_invalid_identifiers


def test_no_event_is_given_more_identifiers_than_the_rules_allow() -> None:
    rng = random.Random(2)
    for _ in range(200):
        assert len([k for k in choose_flaws(event(15), rng, 16) if k in INVALID_TYPE]) <= 1
        assert choose_flaws(event(16), rng, 16) in ([], [IMPOSSIBLE_DATE_OF_BIRTH])
    crowded = add_flaws([event(16), event(15)], 1.0, 16)
    assert max(len(e.identifiers) for e in crowded.events) == 16


def test_a_good_date_of_birth_is_never_replaced() -> None:
    rng = random.Random(3)
    kinds = {k for _ in range(200) for k in choose_flaws(event(1, {"date_of_birth": "1980-01-02"}), rng, 16)}
    assert kinds == set(FLAW_KINDS) - {IMPOSSIBLE_DATE_OF_BIRTH}
