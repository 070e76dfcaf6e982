"""The ingest write path against the real Neo4j: a batch writes only the profiles that outlive
it, and the profiles it merges still resolve by their ids."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from neo4j import Driver

from server.graph import Graph, Tx
from server.identity.identity_config import load_rules
from server.identity.ingest import Ingestor
from server.identity.profiles import Profiles
from server.identity.values import Ack, AckStatus, EventInput, Identifier, ProfileView, Touchpoint

RULES = load_rules()
SALT = "write-path-test-salt"
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def event(event_id: str, *identifiers: str, minute: int = 0) -> EventInput:
    pairs = tuple((kind, value) for kind, value in (i.split(":", 1) for i in identifiers))
    return EventInput(event_id, T0 + timedelta(minutes=minute), "web", "online", "page_view", pairs)


def batch(graph: Graph, *events: EventInput) -> list[Ack]:
    """One call, one batch, one transaction."""
    acks = Ingestor(graph, RULES, SALT).ingest(list(events))
    assert [a.status for a in acks] == [AckStatus.ACCEPTED] * len(events), [a.reason for a in acks]
    return acks


def profile(graph: Graph, key: str | Identifier) -> ProfileView:
    (found,) = Profiles(graph, RULES, SALT).lookup([key])
    assert isinstance(found, ProfileView), found
    return found


def merged_into(driver: Driver, profile_id: str) -> list[str]:
    records, _, _ = driver.execute_query(
        "MATCH (old:Profile)-[:MERGED_INTO]->(:Profile {profile_id: $id}) RETURN old.profile_id AS id ORDER BY id",
        id=profile_id)
    return [r["id"] for r in records]


def test_a_new_cookie_that_logs_in_joins_the_known_profile_and_leaves_no_profile_behind(
        graph: Graph, driver: Driver, uid: str) -> None:
    (known,) = batch(graph, event(f"{uid}-1", f"user_id:u-{uid}", f"email:{uid}@example.com"))
    acks = batch(graph, event(f"{uid}-2", f"cookie:c-{uid}", minute=1),
                 event(f"{uid}-3", f"cookie:c-{uid}", f"user_id:u-{uid}", minute=2))
    assert {a.profile_id for a in acks} == {known.profile_id}
    assert profile(graph, Identifier("cookie", f"c-{uid}")).profile_id == known.profile_id
    assert merged_into(driver, known.profile_id) == [], "no profile was made for the cookie and merged away"


def test_profiles_made_and_merged_away_in_one_batch_are_never_written(graph: Graph, driver: Driver, uid: str) -> None:
    acks = batch(graph, event(f"{uid}-1", f"cookie:a-{uid}"), event(f"{uid}-2", f"cookie:b-{uid}", minute=1),
                 event(f"{uid}-3", f"cookie:a-{uid}", f"cookie:b-{uid}", minute=2),
                 event(f"{uid}-4", f"cookie:b-{uid}", f"email:{uid}@example.com", minute=3))
    (profile_id,) = {a.profile_id for a in acks}
    records, _, _ = driver.execute_query(
        "MATCH (i:Identifier)-[:BELONGS_TO]->(p:Profile) WHERE i.value STARTS WITH $a OR i.value STARTS WITH $b "
        "OR i.value = $email RETURN collect(DISTINCT p.profile_id) AS profiles, count(i) AS identifiers",
        a=f"a-{uid}", b=f"b-{uid}", email=f"{uid}@example.com")
    assert records[0]["profiles"] == [profile_id] and records[0]["identifiers"] == 3
    assert merged_into(driver, profile_id) == []
    assert profile(graph, profile_id).touchpoints_by_channel["online"] == 4


def test_a_known_profile_absorbed_by_a_new_one_resolves_to_it(graph: Graph, driver: Driver, uid: str) -> None:
    (known,) = batch(graph, event(f"{uid}-1", f"cookie:k-{uid}"))
    acks = batch(graph, event(f"{uid}-2", f"user_id:u-{uid}", f"email:{uid}@example.com", minute=1),
                 event(f"{uid}-3", f"email:{uid}@example.com", f"cookie:k-{uid}", minute=2))
    (survivor,) = {a.profile_id for a in acks}
    assert survivor != known.profile_id, "the new profile held two identifiers, the known one one"
    assert profile(graph, known.profile_id).profile_id == survivor
    assert merged_into(driver, survivor) == [known.profile_id]


def test_a_known_profile_merged_through_a_profile_of_the_same_batch_points_at_the_survivor(
        graph: Graph, driver: Driver, uid: str) -> None:
    (small,) = batch(graph, event(f"{uid}-1", f"cookie:k-{uid}"))
    (big,) = batch(graph, event(f"{uid}-2", *(f"cookie:{n}-{uid}" for n in "wxyz"), minute=1))
    batch(graph, event(f"{uid}-3", f"user_id:u-{uid}", f"email:{uid}@example.com", minute=2),
          event(f"{uid}-4", f"email:{uid}@example.com", f"cookie:k-{uid}", minute=3),
          event(f"{uid}-5", f"email:{uid}@example.com", f"cookie:w-{uid}", minute=4))
    merged = profile(graph, Identifier("user_id", f"u-{uid}"))
    assert merged.profile_id == big.profile_id and len(merged.identifiers) == 7
    assert merged_into(driver, big.profile_id) == [small.profile_id], "the new profile between them was never written"
    assert profile(graph, small.profile_id).profile_id == big.profile_id


def test_batches_that_share_only_a_junk_value_do_not_wait_for_each_other(graph: Graph, uid: str) -> None:
    """Junk typed at every till is in a share of all batches. A batch that holds it, with its
    transaction still open, must not hold up another batch that carries it too: the
    suppression check reads without locking (a locking seek made every such batch wait)."""
    junk = "email:test@test.com"
    batch(graph, event(f"{uid}-0", f"cookie:z-{uid}", junk))  # the junk node exists from now on
    held, release = threading.Event(), threading.Event()

    def hold(tx: Tx, new: Sequence[Touchpoint], primaries: Mapping[str, Identifier], now: datetime) -> None:
        held.set()
        release.wait(30)

    first = threading.Thread(target=lambda: Ingestor(graph, RULES, SALT, hold).ingest(
        [event(f"{uid}-a", f"cookie:a-{uid}", junk, minute=1)]))
    first.start()
    try:
        assert held.wait(30), "the first batch never reached stitching"
        acks: list[Ack] = []
        second = threading.Thread(target=lambda: acks.extend(
            batch(graph, event(f"{uid}-b", f"cookie:b-{uid}", junk, minute=2))))
        second.start()
        second.join(timeout=15)
        assert not second.is_alive(), "the second batch waited for the first one's commit"
        assert [a.status for a in acks] == [AckStatus.ACCEPTED]
    finally:
        release.set()
        first.join(timeout=30)
