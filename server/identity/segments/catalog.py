"""Segment definitions as stored in Neo4j, in the order they must be evaluated.

A segment may test membership of other segments, so evaluation follows the dependency
order (a segment after the segments it names), and a definition that would close a cycle
is refused.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from server.errors import InvalidArgument, NotFound
from server.graph import Graph, to_datetime
from server.identity.segments.compile import CompiledRule, compile_rule
from server.tuning import DEFINITIONS_MAX_AGE_S
from server.identity.segments.rule_tree import Rule, SegmentDefinition, dependencies, from_dict, is_time_dependent


@dataclass(frozen=True)
class StoredSegment:
    """A segment's current definition and how far its evaluation has come."""

    name: str
    version: int
    description: str
    rule: Rule
    depends_on: tuple[str, ...]
    time_dependent: bool
    updated_at: datetime | None
    evaluated_version: int | None
    evaluated_at: datetime | None
    member_count: int


def stored_segment(record: Mapping[str, Any], rule: Rule | None = None) -> StoredSegment:
    return StoredSegment(
        name=record["name"],
        version=record["version"],
        description=record["description"] or "",
        rule=rule if rule is not None else from_dict(json.loads(record["rule"])),
        depends_on=tuple(record["depends_on"]),
        time_dependent=record["time_dependent"],
        updated_at=to_datetime(record["updated_at"]),
        evaluated_version=record["evaluated_version"],
        evaluated_at=to_datetime(record["evaluated_at"]),
        member_count=record["member_count"],
    )


class SegmentCatalog:
    """Reads the definitions and compiles each version once."""

    def __init__(self, graph: Graph, strong_types: Collection[str],
                 consent_defaults: Mapping[str, str] = MappingProxyType({})) -> None:
        self.graph = graph
        self.strong_types = tuple(sorted(strong_types))
        self.consent_defaults = consent_defaults  # configured category -> granted | denied
        self._compiled: dict[tuple[str, int], CompiledRule] = {}
        self._rules: dict[tuple[str, int], Rule] = {}
        self._lock = threading.Lock()
        self._recent: tuple[float, list[StoredSegment]] | None = None

    def all(self) -> list[StoredSegment]:
        """Every segment, in evaluation order, as stored now (rules are parsed once a version)."""
        segments = []
        for record in self.graph.read("segments/definitions"):
            key = (record["name"], record["version"])
            segment = stored_segment(record, self._rules.get(key))
            self._rules[key] = segment.rule
            segments.append(segment)
        ordered = evaluation_order(segments)
        with self._lock:
            self._recent = (time.monotonic(), ordered)
        return ordered

    def recent(self, max_age: float = DEFINITIONS_MAX_AGE_S) -> list[StoredSegment]:
        """Every segment as read at most max_age seconds ago: for the evaluation of marked
        profiles, which asks several times a second under ingest. Definitions this server
        saved are seen at once (saving reads them back)."""
        with self._lock:
            recent = self._recent
        if recent is not None and time.monotonic() - recent[0] <= max_age:
            return recent[1]
        return self.all()

    def get(self, name: str) -> StoredSegment:
        for segment in self.all():
            if segment.name == name:
                return segment
        raise NotFound(f"there is no segment named {name!r}")

    def compiled(self, segment: StoredSegment) -> CompiledRule:
        key = (segment.name, segment.version)
        if key not in self._compiled:
            self._compiled[key] = compile_rule(segment.rule, self.strong_types, self.consent_defaults)
        return self._compiled[key]

    def check_references(self, definition: SegmentDefinition, existing: Iterable[StoredSegment]) -> None:
        """Every segment the rule names exists, and none of them depends on this one."""
        by_name = {s.name: s for s in existing}
        for name in sorted(dependencies(definition.rule)):
            if name not in by_name:
                raise InvalidArgument(f"rule names segment {name!r} (in_segment), which does not exist")
            if definition.name in _reachable(by_name, name):
                raise InvalidArgument(f"rule names segment {name!r} (in_segment), which depends on "
                                      f"{definition.name!r}: segments may not depend on themselves")


def definition_row(definition: SegmentDefinition, compiled: CompiledRule, rule_json: str) -> dict[str, Any]:
    return {
        "segment_name": definition.name,
        "description": definition.description,
        "rule": rule_json,
        "predicate": compiled.predicate,
        "depends_on": sorted(dependencies(definition.rule)),
        "time_dependent": is_time_dependent(definition.rule),
    }


def evaluation_order(segments: list[StoredSegment]) -> list[StoredSegment]:
    """Segments after the segments they name (depth-first; names break ties for a stable order)."""
    by_name = {s.name: s for s in segments}
    ordered: list[StoredSegment] = []
    placed: set[str] = set()

    def place(segment: StoredSegment, path: frozenset[str]) -> None:
        if segment.name in placed or segment.name in path:
            return
        for name in sorted(segment.depends_on):
            if name in by_name:
                place(by_name[name], path | {segment.name})
        placed.add(segment.name)
        ordered.append(segment)

    for segment in sorted(segments, key=lambda s: s.name):
        place(segment, frozenset())
    return ordered


def with_dependents(segments: list[StoredSegment], name: str) -> list[StoredSegment]:
    """The named segment and every segment that depends on it, directly or not, in evaluation order."""
    affected = {name}
    for segment in segments:  # evaluation order: a dependent comes after what it names
        if affected & set(segment.depends_on):
            affected.add(segment.name)
    return [s for s in segments if s.name in affected]


def _reachable(by_name: Mapping[str, StoredSegment], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo.extend(by_name[name].depends_on)
    return seen
