"""The synthetic population the truth tests and benchmarks stand on."""

from __future__ import annotations

import phonenumbers

from bench.population import JUNK, generate


def test_the_same_seed_gives_the_same_population() -> None:
    one, two = generate(50, 500, seed=3, prefix="a"), generate(50, 500, seed=3, prefix="a")
    assert [e.event_id for e in one.events] == [e.event_id for e in two.events] and one.truth == two.truth


def test_every_value_and_event_embeds_the_prefix() -> None:
    population = generate(50, 500, prefix="zq")
    assert all(e.event_id.startswith("zq-") for e in population.events)
    assert all("zq" in value for kind, value in population.truth if kind != "phone")


def test_events_are_in_time_order_and_carry_identifiers() -> None:
    events = generate(80, 800).events
    assert all(e.identifiers for e in events)
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)


def test_phones_are_valid_and_unique() -> None:
    phones = [value for kind, value in generate(400, 2000, prefix="ph").truth if kind == "phone"]
    assert phones and len(set(phones)) == len(phones)
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(p)) for p in phones)


def test_the_traps_are_there_and_belong_to_nobody() -> None:
    population = generate(400, 4000, household_share=0.2, junk_share=0.05, prefix="tr")
    carried = {i for e in population.events for i in e.identifiers}
    assert any("-tablet-" in value for _, value in carried)
    assert set(JUNK) & carried
    assert not any("-tablet-" in value for _, value in population.truth) and not set(JUNK) & set(population.truth)


def test_anonymous_visitors_log_in_later_on_the_same_browser() -> None:
    events = generate(100, 1000, prefix="an").events
    first_seen: dict[tuple[str, str], str] = {}
    for event in events:
        for identifier in event.identifiers:
            first_seen.setdefault(identifier, event.type)
    logins = [e for e in events if e.type == "identify" and any(t == "cookie" for t, _ in e.identifiers)]
    assert logins and all(first_seen[next(i for i in e.identifiers if i[0] == "cookie")] == "page_view" for e in logins)
