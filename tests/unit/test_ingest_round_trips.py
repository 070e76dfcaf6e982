"""The ingest write path's round trips: a batch costs the same few queries whatever its size,
each Neo4j round trip being worth more than the work of a hundred events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from server.identity.identity_config import load_rules
from server.identity.ingest import write_batch
from server.identity.values import Channel, Identifier, Touchpoint

RULES = load_rules()
T0 = datetime(2026, 11, 1, tzinfo=UTC)


class Transaction:
    """A transaction against a graph that knows none of the batch yet, or all of its events."""

    def __init__(self, known_events: bool = False) -> None:
        self.known_events = known_events
        self.queries: list[str] = []
        self.params: dict[str, Mapping[str, Any]] = {}

    def run(self, name: str, **params: Any) -> list[dict[str, Any]]:
        self.queries.append(name)
        self.params[name] = params
        if name == "ingest/record_touchpoints":
            return [{"event_id": row["event_id"]} for row in params["rows"] if self.known_events]
        if name == "stitching/read_state":
            identifiers = [{**key, "flag": None, "profile_id": None, "neighbours": [], "unlinked": []}
                           for key in params["keys"]]
            return [{"identifiers": identifiers, "profiles": []}]
        if name == "ingest/profiles_of_events":
            return [{"event_id": event_id, "profile_id": "p"} for event_id in params["event_ids"]]
        return []


def touchpoints(count: int) -> list[Touchpoint]:
    """Visitors who log in: a page view on a new cookie, then the cookie with a user id."""
    made = []
    for n in range(count // 2):
        cookie, user = Identifier("cookie", f"c{n}"), Identifier("user_id", f"u{n}")
        made.append(Touchpoint(f"e{n}-1", T0 + timedelta(minutes=n), "web", Channel.ONLINE, "page_view", (cookie,)))
        made.append(Touchpoint(f"e{n}-2", T0 + timedelta(minutes=n), "web", Channel.ONLINE, "identify", (cookie, user)))
    return made


def test_a_batch_of_new_events_takes_five_queries_whatever_its_size() -> None:
    for size in (2, 500):
        tx = Transaction()
        outcome = write_batch(tx, RULES, "salt", touchpoints(size), T0)
        assert len(outcome.created) == size
        assert tx.queries == ["ingest/suppressed", "ingest/record_touchpoints", "ingest/record_identifiers",
                              "stitching/read_state", "stitching/write_plan"]


def test_a_batch_writes_one_profile_per_person_and_no_merge() -> None:
    tx = Transaction()
    write_batch(tx, RULES, "salt", touchpoints(500), T0)
    plan = tx.params["stitching/write_plan"]["plan"]
    assert len(plan["new_profiles"]) == 250 and plan["merges"] == []
    assert len(plan["assignments"]) == 500 and len(plan["links"]) == 250


def test_a_redelivered_batch_only_reads_its_events_profiles() -> None:
    tx = Transaction(known_events=True)
    outcome = write_batch(tx, RULES, "salt", touchpoints(500), T0)
    assert tx.queries == ["ingest/suppressed", "ingest/record_touchpoints", "ingest/profiles_of_events"]
    assert outcome.created == frozenset() and set(outcome.profiles.values()) == {"p"}
