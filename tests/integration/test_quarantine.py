"""The quarantine's own mechanics against the real Neo4j: paging, filters, retention, and a
replay that spans pages. (The end-to-end story is tests/integration/test_nothing_lost.py.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from neo4j import Driver

from server.graph import Graph
from server.identity.ingest import Ingestor
from server.identity.linkage.linkage_config import load_linkage_rules
from server.identity.linkage.linker import Linker
from server.identity.values import AckStatus, EventInput
from server.identity.quarantine import RejectionFilter
from server.identity.records import RecordImporter
from server.identity.replay import Replayer, ReplaySummary
from server.identity.identity_config import load_rules

RULES = load_rules()
SALT = "quarantine-test-salt"


def replayer(graph: Graph, page_size: int) -> Replayer:
    ingestor = Ingestor(graph, RULES, SALT)
    importer = RecordImporter(graph, ingestor, Linker(graph, RULES, load_linkage_rules()))
    return Replayer(graph, ingestor, importer, page_size=page_size)


def untyped(source: str, n: int) -> EventInput:
    """Rejected for no type; a replay cannot fix it."""
    return EventInput(f"{source}-{n}", datetime(2026, 11, 1, tzinfo=UTC), source, "online", " ",
                      (("cookie", f"{source}-c{n}"),))


def test_listing_pages_through_everything_newest_first_and_filters(graph: Graph) -> None:
    source = f"list-{uuid.uuid4().hex[:8]}"
    quarantine = replayer(graph, page_size=2)
    for n in range(5):  # five transactions: five distinct rejection times
        (ack,) = quarantine.ingestor.ingest([untyped(source, n)])
        assert ack.code == "no_type"
    listed = list(quarantine.list(RejectionFilter(source=source)))
    assert [v.subject_id for v in listed] == [f"{source}-{n}" for n in (4, 3, 2, 1, 0)]
    assert [v.subject_id for v in quarantine.list(RejectionFilter(source=source), limit=3)] == [
        f"{source}-{n}" for n in (4, 3, 2)]
    middle = listed[2].last_rejected_at
    window = RejectionFilter(source=source, since=middle, until=listed[0].last_rejected_at)
    assert [v.subject_id for v in quarantine.list(window)] == [f"{source}-3", f"{source}-2"]
    assert list(quarantine.list(RejectionFilter(source=source, codes=("too_large",)))) == []
    assert list(quarantine.list(RejectionFilter(source=source, kind="record"))) == []


def test_a_replay_spans_pages_and_releases_what_passes(graph: Graph) -> None:
    source = f"pages-{uuid.uuid4().hex[:8]}"
    quarantine = replayer(graph, page_size=3)
    strict = Ingestor(graph, RULES.__class__(**{**RULES.__dict__, "max_properties": 1}), SALT)
    events = [EventInput(f"{source}-{n}", datetime(2026, 11, 1, tzinfo=UTC), source, "online", "page_view",
                         (("cookie", f"{source}-c{n}"),), properties={"a": "1", "b": "2"}) for n in range(7)]
    assert {a.code for a in strict.ingest(events)} == {"too_large"}
    steps = list(quarantine.replay(RejectionFilter(source=source), invalid_values=False))
    summary = steps[-1]
    assert isinstance(summary, ReplaySummary)
    assert (summary.events_replayed, summary.events_accepted, summary.events_still_rejected) == (7, 7, 0)
    assert [s.done for s in steps[:-1]] == [3, 6, 7]
    assert list(quarantine.list(RejectionFilter(source=source))) == []
    again = quarantine.ingestor.ingest(events)
    assert {a.status for a in again} == {AckStatus.DUPLICATE}


def test_retention_deletes_only_what_expired(graph: Graph, driver: Driver) -> None:
    source = f"old-{uuid.uuid4().hex[:8]}"
    quarantine = replayer(graph, page_size=100)
    quarantine.ingestor.ingest([untyped(source, n) for n in range(3)])
    driver.execute_query("MATCH (r:Rejected {source: $source}) WHERE r.subject_id <> $kept "
                         "SET r.last_rejected_at = datetime() - duration('P40D')", source=source, kept=f"{source}-2")
    assert quarantine.purge(timedelta(days=30)) >= 2
    assert [v.subject_id for v in quarantine.list(RejectionFilter(source=source))] == [f"{source}-2"]
