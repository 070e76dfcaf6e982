"""Merge protection, as the planner decides it: no database, just the rules."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from server.identity.values import Channel, Identifier, Touchpoint
from server.identity.identity_config import load_rules
from server.identity.stitching import BLOCKLISTED, SHARED, IdentifierState, Planner, ProfileState

RULES = load_rules()
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def ids(*pairs: str) -> tuple[Identifier, ...]:
    return tuple(Identifier(*p.split(":", 1)) for p in pairs)


def touch(n: int, *pairs: str, source: str = "web", **traits: str) -> Touchpoint:
    return Touchpoint(f"e{n}", T0 + timedelta(minutes=n), source, Channel.ONLINE, "page_view", ids(*pairs), traits)


class World:
    """A graph state before the batch, built like the stored one would be."""

    def __init__(self) -> None:
        self.identifiers: dict[Identifier, IdentifierState] = {}
        self.profiles: dict[str, ProfileState] = {}
        self.counter = itertools.count()

    def profile(self, profile_id: str, *pairs: str) -> None:
        state = ProfileState(profile_id, size=len(pairs))
        for i in ids(*pairs):
            self.identifiers[i] = IdentifierState(i, profile_id)
            if i.type in RULES.per_profile_limits:
                state.limited.setdefault(i.type, set()).add(i.value)
        self.profiles[profile_id] = state

    def plan(self, *touchpoints: Touchpoint):
        known = dict(self.identifiers)
        for t in touchpoints:
            for i in t.identifiers:
                known.setdefault(i, IdentifierState(i))
        planner = Planner(RULES, known, self.profiles, make_id=lambda: f"new{next(self.counter)}")
        return planner, planner.plan_batch(list(touchpoints))


def test_an_anonymous_visitor_is_merged_into_the_known_person_on_login() -> None:
    world = World()
    world.profile("anon", "cookie:c1")
    world.profile("ann", "user_id:u1", "email:ann@example.com", "cookie:c0")
    planner, plan = world.plan(touch(1, "cookie:c1", "user_id:u1"))
    assert [(m.absorbed, m.survivor) for m in plan.merges] == [("anon", "ann")]
    assert planner.current_profile(Identifier("cookie", "c1")) == "ann"
    assert plan.touchpoint_profiles == {"e1": "ann"}


def test_a_link_that_would_put_two_user_ids_in_one_profile_is_rejected_with_the_reason() -> None:
    world = World()
    world.profile("mum", "user_id:u1", "device_id:tablet")
    world.profile("dad", "user_id:u2")
    planner, plan = world.plan(touch(1, "device_id:tablet", "user_id:u2"))
    assert plan.merges == []
    (link,) = plan.links
    assert not link.accepted and "2 user_id values (limit 1)" in link.reason
    assert planner.current_profile(Identifier("device_id", "tablet")) == "mum", "the contested device stays"
    assert plan.touchpoint_profiles == {"e1": "dad"}, "the touchpoint follows its highest-priority identifier"


def test_a_blocklisted_value_is_flagged_and_links_nothing() -> None:
    world = World()
    _, plan = world.plan(touch(1, "loyalty_id:L1", "email:test@test.com"), touch(2, "loyalty_id:L2", "email:test@test.com"))
    assert [(f.identifier.value, f.flag) for f in plan.flags] == [("test@test.com", BLOCKLISTED)]
    assert plan.merges == [] and not any(link.accepted for link in plan.links)
    assert Identifier("email", "test@test.com") not in plan.assignments
    assert plan.touchpoint_profiles["e1"] != plan.touchpoint_profiles["e2"]


def test_a_value_seen_with_too_many_people_is_flagged_shared() -> None:
    world = World()
    events = [touch(n, "device_id:kiosk", f"email:p{n}@example.com") for n in range(1, 4)]
    planner, plan = world.plan(*events)
    assert [(f.identifier.value, f.flag) for f in plan.flags] == [("kiosk", SHARED)]
    assert "seen with 3 different email values (more than 2)" in plan.flags[0].reason
    third = planner.current_profile(Identifier("email", "p3@example.com"))
    first = planner.current_profile(Identifier("email", "p1@example.com"))
    assert third != first, "once shared, the kiosk links no one else"


def test_the_smaller_profile_is_absorbed_by_the_larger() -> None:
    world = World()
    world.profile("big", "user_id:u1", "cookie:a", "cookie:b")
    world.profile("small", "email:x@example.com")
    _, plan = world.plan(touch(1, "email:x@example.com", "cookie:a"))
    assert [(m.absorbed, m.survivor) for m in plan.merges] == [("small", "big")]


def test_an_unlinked_pair_stays_apart() -> None:
    world = World()
    world.profile("a", "email:a@example.com")
    world.profile("b", "cookie:c")
    known = dict(world.identifiers)
    planner = Planner(RULES, known, world.profiles, unlinked_pairs=[frozenset(ids("email:a@example.com", "cookie:c"))])
    plan = planner.plan_batch([touch(1, "email:a@example.com", "cookie:c")])
    assert plan.merges == [] and plan.links[0].reason == "unlinked by an operator"


def test_the_golden_record_prefers_trusted_sources_then_recent_values() -> None:
    world = World()
    _, plan = world.plan(
        touch(1, "crm_id:C1", source="crm", first_name="William"),
        touch(2, "crm_id:C1", "cookie:k", source="web", first_name="Bill", city="Springfield"),
    )
    (profile,) = plan.profiles.values()
    assert profile.golden["first_name"].value == "William", "crm outranks web"
    assert profile.golden["city"].value == "Springfield", "a trait only web sent still counts"
    assert profile.touchpoints == {"online": 2}


def test_merges_chain_within_one_batch_into_one_new_profile_and_sum_their_counts() -> None:
    world = World()
    _, plan = world.plan(touch(1, "cookie:a"), touch(2, "cookie:b"), touch(3, "cookie:a", "cookie:b"),
                         touch(4, "cookie:b", "email:e@example.com"))
    (live,) = plan.profiles.values()
    assert live.size == 3
    assert live.touchpoints == {"online": 4}
    assert len(set(plan.touchpoint_profiles.values())) == 1
    assert plan.new_profiles == [live.profile_id] and plan.merges == [], "profiles merged away at once are never written"
    assert set(plan.assignments.values()) == {live.profile_id}


def test_a_new_identifier_that_links_to_a_known_profile_joins_it_without_a_profile_of_its_own() -> None:
    world = World()
    world.profile("ann", "user_id:u1", "email:ann@example.com")
    _, plan = world.plan(touch(1, "cookie:c1", "user_id:u1"))
    assert plan.new_profiles == [] and plan.merges == []
    assert plan.assignments == {Identifier("cookie", "c1"): "ann"}
    assert plan.profiles["ann"].size == 3 and plan.touchpoint_profiles == {"e1": "ann"}


def test_a_known_profile_absorbed_by_a_new_one_merges_into_the_profile_written_in_its_place() -> None:
    world = World()
    world.profile("solo", "cookie:k")
    batch = [touch(1, "user_id:u", "email:e@example.com"), touch(2, "email:e@example.com", "cookie:k")]
    _, plan = world.plan(*batch)
    assert plan.new_profiles == ["new0"], "the two new identifiers' profile outgrew the known one"
    assert [(m.absorbed, m.survivor) for m in plan.merges] == [("solo", "new0")]
    world.profile("big", "cookie:x", "cookie:y", "cookie:z", "cookie:w")
    _, plan = world.plan(*batch, touch(3, "email:e@example.com", "cookie:x"))
    assert plan.new_profiles == [], "the new profile was merged away in the batch that made it"
    assert [(m.absorbed, m.survivor) for m in plan.merges] == [("solo", "big")]
    assert set(plan.assignments.values()) == {"big"} and set(plan.profiles) == {"big"}


def test_a_proposed_probabilistic_link_merges_profiles_like_a_seen_together_one() -> None:
    from server.identity.stitching import ProposedLink

    world = World()
    world.profile("crm", "record:crm/1", "crm_id:C1")
    world.profile("pos", "record:pos/9", "loyalty_id:L9")
    planner = Planner(RULES, world.identifiers, world.profiles)
    plan = planner.plan_links([ProposedLink(*ids("record:crm/1", "record:pos/9"), "model:v1", "matched", T0)])
    (link,) = plan.links
    assert link.accepted and link.reason == "matched" and link.event_id == "model:v1"
    assert [(m.absorbed, m.survivor) for m in plan.merges] == [("pos", "crm")], "equal sizes: the lower id survives"
    assert set(plan.profiles) == {"crm"} and plan.profiles["crm"].size == 4


def test_a_proposed_link_that_breaks_a_limit_or_an_operator_unlink_is_refused() -> None:
    from server.identity.stitching import ProposedLink

    world = World()
    world.profile("a", "record:crm/1", "crm_id:C1")
    world.profile("b", "record:crm/2", "crm_id:C2")
    world.profile("c", "record:pos/3")
    unlinked = [frozenset(ids("record:crm/1", "record:pos/3"))]
    planner = Planner(RULES, world.identifiers, world.profiles, unlinked)
    plan = planner.plan_links([
        ProposedLink(*ids("record:crm/1", "record:crm/2"), "model:v1", "matched", T0),
        ProposedLink(*ids("record:crm/1", "record:pos/3"), "model:v1", "matched", T0),
    ])
    assert [link.accepted for link in plan.links] == [False, False]
    assert "2 crm_id values (limit 1)" in plan.links[0].reason
    assert plan.links[1].reason == "unlinked by an operator"
    assert plan.merges == []
