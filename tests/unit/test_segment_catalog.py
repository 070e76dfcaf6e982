"""Evaluation order of segments that name each other (no Neo4j)."""

from __future__ import annotations

import pytest

from server.errors import InvalidArgument
from server.identity.segments.catalog import SegmentCatalog, StoredSegment, evaluation_order, with_dependents
from server.identity.segments.rule_tree import AllOf, InSegment, SegmentDefinition, TraitEquals


def stored(name: str, *depends_on: str) -> StoredSegment:
    rule = AllOf((TraitEquals("k", "v"), *(InSegment(d) for d in depends_on))) if depends_on else TraitEquals("k", "v")
    return StoredSegment(name=name, version=1, description="", rule=rule, depends_on=tuple(depends_on),
                         time_dependent=False, updated_at=None, evaluated_version=1, evaluated_at=None, member_count=0)


def test_a_segment_is_evaluated_after_the_segments_it_names() -> None:
    order = [s.name for s in evaluation_order([stored("vip", "buyers", "known"), stored("buyers", "known"),
                                               stored("known"), stored("alone")])]
    assert order.index("known") < order.index("buyers") < order.index("vip")
    assert sorted(order) == ["alone", "buyers", "known", "vip"]


def test_a_change_of_one_segment_reaches_every_segment_that_depends_on_it() -> None:
    segments = evaluation_order([stored("vip", "buyers"), stored("buyers", "known"), stored("known"), stored("other")])
    assert [s.name for s in with_dependents(segments, "known")] == ["known", "buyers", "vip"]
    assert [s.name for s in with_dependents(segments, "vip")] == ["vip"]


def test_references_must_exist_and_must_not_close_a_cycle() -> None:
    catalog = SegmentCatalog.__new__(SegmentCatalog)  # check_references reads nothing from Neo4j
    existing = [stored("known"), stored("buyers", "known")]
    catalog.check_references(SegmentDefinition("vip", "", AllOf((InSegment("buyers"),))), existing)
    with pytest.raises(InvalidArgument, match="does not exist"):
        catalog.check_references(SegmentDefinition("vip", "", InSegment("nowhere")), existing)
    with pytest.raises(InvalidArgument, match="depends on 'known'"):
        catalog.check_references(SegmentDefinition("known", "", InSegment("buyers")), existing)
