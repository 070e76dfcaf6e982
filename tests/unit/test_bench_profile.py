"""bench/profile_ingest.py turns the server's query metric and py-spy's samples into shares."""

from __future__ import annotations

from pathlib import Path

from bench.profile_ingest import QUERY_SAMPLE, by_query, java_samples, python_by_kind, python_profile

METRICS = """# HELP identity_neo4j_query_seconds Seconds of each named query
identity_neo4j_query_seconds_count{query="stitching/read_state"} 10.0
identity_neo4j_query_seconds_sum{query="stitching/read_state"} 3.0
identity_neo4j_query_seconds_count{query="ingest/record_touchpoints"} 10.0
identity_neo4j_query_seconds_sum{query="ingest/record_touchpoints"} 1.0
"""


def test_the_metric_is_read_per_query() -> None:
    found = {name: (kind, float(value)) for kind, name, value in QUERY_SAMPLE.findall(METRICS) if kind == "sum"}
    assert found == {"stitching/read_state": ("sum", 3.0), "ingest/record_touchpoints": ("sum", 1.0)}


def test_queries_are_ranked_by_the_time_spent_since_the_first_reading() -> None:
    before = {"stitching/read_state": (2.0, 1.0), "ingest/record_touchpoints": (2.0, 0.2)}
    after = {"stitching/read_state": (10.0, 3.0), "ingest/record_touchpoints": (10.0, 1.0),
             "segments/lag": (1.0, 0.5)}  # first run after the first reading: counted whole
    rows = by_query(before, after, events=1000)
    assert [r["query"] for r in rows] == ["stitching/read_state", "ingest/record_touchpoints", "segments/lag"]
    assert rows[0]["calls"] == 8 and abs(rows[0]["seconds"] - 2.0) < 1e-9
    assert abs(sum(r["share"] for r in rows) - 1.0) < 1e-9
    assert abs(rows[0]["ms_per_event"] - 2.0) < 1e-9


def test_python_samples_count_own_and_inclusive_time(tmp_path: Path) -> None:
    raw = tmp_path / "python.raw"
    raw.write_text("main (a.py:1);work (a.py:2);encode (b.py:3) 3\nmain (a.py:1);wait (c.py:4) 1\n")
    shares = {frame: (own, inclusive) for frame, own, inclusive in python_profile(raw, top=10)}
    assert shares["main (a.py:1)"] == (0.0, 1.0)
    assert shares["encode (b.py:3)"] == (0.75, 0.75)
    assert shares["wait (c.py:4)"] == (0.25, 0.25)


PRINTED = """
jdk.ExecutionSample {
  stackTrace = [
    org.neo4j.index.internal.gbptree.KeySearch.search(Object) line: 80
    org.neo4j.kernel.impl.api.TransactionCommitProcess.commit(Object) line: 10
    java.lang.Thread.run() line: 1
  ]
}

jdk.ExecutionSample {
  stackTrace = [
    java.util.HashMap.get(Object) line: 5
    org.neo4j.bolt.protocol.Handler.read(Object) line: 20
  ]
}
"""


def test_java_samples_fall_in_the_first_stage_their_stack_shows() -> None:
    java = java_samples(PRINTED, top=5)
    assert java["samples"] == 2
    assert java["stages"] == {"commit: writing the transaction's changes": 0.5, "bolt: messages in and out": 0.5}
    assert java["methods"] == {"org.neo4j.index.internal.gbptree.KeySearch.search": 0.5,
                               "org.neo4j.bolt.protocol.Handler.read": 0.5}


def test_python_samples_are_counted_for_the_innermost_kind_of_work(tmp_path: Path) -> None:
    raw = tmp_path / "python.raw"
    raw.write_text(
        "run (server/identity/ingest.py:1);execute_write (neo4j/_sync/work/session.py:2);"
        "decide (server/identity/stitching.py:3) 2\n"  # the planner, though inside the driver's transaction
        "run (server/identity/ingest.py:1);pack (neo4j/_codec/packstream/v1/__init__.py:4) 1\n"
        "elsewhere (x.py:5) 1\n")
    kinds = python_by_kind(raw)
    assert kinds == {"stitching's planner (stitching.py)": 0.5,
                     "Neo4j driver: Bolt packing, unpacking, sockets": 0.25, "other": 0.25}
