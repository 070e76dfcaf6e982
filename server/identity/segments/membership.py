"""Segment membership: evaluation of rules over profiles, kept as IN_SEGMENT edges, with
every enter and exit appended to a durable change log in the same transaction.

Two ways in:
- incremental: ingest, linkage, merges, unlinks and forgets mark the profiles they change
  (SegmentsDirty); `evaluate_marked` takes a batch of them, oldest first, and evaluates every
  segment for just those profiles;
- full: a new definition, and the schedule of segments with time windows, evaluate one
  segment (and the segments that depend on it) over every active profile, in pages.

Every evaluation locks its profiles first, so two evaluations of one profile (two servers,
or a full and an incremental one) run one after the other, and the second sees the
first's edges: a change is logged once. Positions come from one log node locked at the
end of the transaction, so positions are committed in order (see segments/lock_log).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from server.errors import InvalidArgument, OutOfRange
from server.graph import Graph, Tx, epoch_millis, to_datetime
from server.identity import consent
from server.identity.values import Identifier
from server.identity.segments.catalog import (
    SegmentCatalog,
    StoredSegment,
    definition_row,
    with_dependents,
)
from server.identity.segments.compile import compile_rule
from server.identity.segments.rule_tree import SegmentDefinition, to_dict, validate
from server.tuning import READ_PAGE, SEGMENT_CLAIM

log = logging.getLogger(__name__)

ENTER, EXIT = "enter", "exit"
PAGE_SIZE = READ_PAGE
CLAIM_SIZE = SEGMENT_CLAIM
CHANGES_PAGE = 500
UPSERT_LEASE = timedelta(minutes=30)


@dataclass(frozen=True)
class MembershipChange:
    position: int
    segment: str
    profile_id: str
    kind: str  # enter | exit
    at: datetime
    cause: str  # ingest, linkage, merge, unlink, forget, schedule, definition, recompute


@dataclass(frozen=True)
class SegmentMemberView:
    profile_id: str
    since: datetime | None
    identifiers: tuple[Identifier, ...]


def now_millis() -> int:
    moment = epoch_millis(datetime.now(UTC))
    assert moment is not None
    return moment


def evaluate(tx: Tx, catalog: SegmentCatalog, segments: list[StoredSegment], profile_ids: list[str],
             cause_of: Callable[[str], str], now: int) -> int:
    """Evaluates the segments, in order, for the (already locked) profiles and logs the changes;
    returns how many changes were logged."""
    changes: list[dict[str, object]] = []
    for segment in segments:
        records = tx.run_rule("segments/evaluate", catalog.compiled(segment), segment=segment.name,
                              version=segment.version, profile_ids=profile_ids, now=now)
        changes.extend({"segment": segment.name, "profile_id": r["profile_id"],
                        "kind": ENTER if r["entered"] else EXIT, "cause": cause_of(r["profile_id"])}
                       for r in records)
    if changes:
        tx.run("segments/lock_log", now=now)
        tx.run("segments/append_changes", changes=changes, now=now)
    return len(changes)


class Membership:
    """Definitions, evaluation, members and the change feed of segments."""

    def __init__(self, graph: Graph, catalog: SegmentCatalog, known_identifier_types: frozenset[str]) -> None:
        self.graph = graph
        self.catalog = catalog
        self.known_types = known_identifier_types

    # -- definitions --------------------------------------------------------------------

    def upsert(self, definition: SegmentDefinition) -> StoredSegment:
        """Validates and stores the definition as the segment's next version, then evaluates
        it (and the segments that depend on it) over every profile."""
        validate(definition, self.known_types, self.catalog.consent_defaults)
        self.catalog.check_references(definition, self.catalog.all())
        compiled = compile_rule(definition.rule, self.catalog.strong_types, self.catalog.consent_defaults)
        row = definition_row(definition, compiled, json.dumps(to_dict(definition.rule), sort_keys=True))
        owner = f"upsert:{uuid.uuid4().hex}"
        lease_ms = int(UPSERT_LEASE.total_seconds() * 1000)
        self.graph.transaction("save segment", lambda tx: tx.run(
            "segments/save_definition", now=now_millis(), owner=owner, lease_ms=lease_ms, **row))
        try:
            self.evaluate_fully(definition.name, "definition")
        finally:
            self.release(definition.name, owner)
        self._plan(definition.name)
        return self.catalog.get(definition.name)

    def _plan(self, name: str) -> None:
        """Runs the new version's evaluation on no profiles, so that Neo4j plans it now (a
        second or more for a large rule) rather than when the first marked profile waits."""
        segments = [s for s in self.catalog.all() if s.name == name]
        self.graph.transaction("plan segment", lambda tx: evaluate(  # a list of strings: plans are cached by type
            tx, self.catalog, segments, [""], lambda _: "definition", now_millis()))

    def get(self, name: str) -> StoredSegment:
        return self.catalog.get(_name(name))

    # -- evaluation ---------------------------------------------------------------------

    def evaluate_fully(self, name: str, cause: str) -> int:
        """Evaluates the segment and its dependents over every active profile, page by page
        (one transaction a page), then over inactive profiles that still hold an edge.
        Returns how many changes were logged."""
        segments = with_dependents(self.catalog.all(), name)
        target = segments[0]
        changes, after = 0, ""
        while True:
            page = [r["profile_id"] for r in self.graph.read("segments/active_profiles_page", after=after, limit=PAGE_SIZE)]
            if not page:
                break
            differing = self._differences(segments, page)
            if differing:
                changes += self._evaluate_page(segments, differing, cause)
            after = page[-1]
        for segment in segments:
            while stale := [r["profile_id"] for r in self.graph.read("segments/stale_members", segment=segment.name, limit=PAGE_SIZE)]:
                changes += self._evaluate_page(segments, stale, cause)
        self.graph.transaction("segment evaluated", lambda tx: tx.run(
            "segments/mark_evaluated", segment=target.name, version=target.version, now=now_millis()))
        log.info("segment %s v%d evaluated over every profile: %d changes", target.name, target.version, changes)
        return changes

    def _differences(self, segments: list[StoredSegment], profile_ids: list[str]) -> list[str]:
        """The profiles whose membership of any of the segments would change (read only)."""
        now = now_millis()

        def work(tx: Tx) -> set[str]:
            return {r["profile_id"] for segment in segments for r in tx.run_rule(
                "segments/differences", self.catalog.compiled(segment), segment=segment.name,
                profile_ids=profile_ids, now=now)}

        return sorted(self.graph.read_transaction("segment differences", work))

    def _evaluate_page(self, segments: list[StoredSegment], profile_ids: list[str], cause: str) -> int:
        def work(tx: Tx) -> int:
            tx.run("segments/lock_profiles", profile_ids=sorted(profile_ids))
            return evaluate(tx, self.catalog, segments, profile_ids, lambda _: cause, now_millis())
        return self.graph.transaction("evaluate segments", work)

    def evaluate_marked(self, limit: int = CLAIM_SIZE) -> tuple[int, int]:
        """Evaluates every segment for a batch of the profiles marked as changed, oldest first;
        returns (profiles taken, changes logged)."""
        def work(tx: Tx) -> tuple[int, int]:
            claimed = tx.run("segments/claim_dirty", limit=limit)
            if claimed:  # consent first: rules and destinations read it
                consent.refresh(tx, sorted(r["profile_id"] for r in claimed))
            segments = self.catalog.recent() if claimed else []
            if not segments:
                return len(claimed), 0
            causes = {r["profile_id"]: r["cause"] or "ingest" for r in claimed}
            return len(claimed), evaluate(tx, self.catalog, segments, sorted(causes), causes.__getitem__, now_millis())

        return self.graph.transaction("evaluate marked profiles", work)

    def lag(self) -> tuple[int, float]:
        """Profiles waiting for evaluation, and the oldest one's wait in seconds."""
        (record,) = self.graph.read("segments/lag")
        oldest = to_datetime(record["oldest"])
        return record["marked"], (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0

    def due(self, schedule: timedelta, now: datetime) -> list[StoredSegment]:
        """Segments whose full evaluation is due: a version never fully evaluated (e.g. the
        server stopped half-way), or a time window whose members age out on the schedule."""
        due = []
        for segment in self.catalog.all():
            if segment.evaluated_version != segment.version:
                due.append(segment)
            elif segment.time_dependent and (segment.evaluated_at is None or now - segment.evaluated_at >= schedule):
                due.append(segment)
        return due

    def claim(self, name: str, owner: str, lease: timedelta) -> bool:
        """Claims a full evaluation for this server, so that servers do not all run it at once."""
        records = self.graph.transaction("claim segment", lambda tx: tx.run(
            "segments/claim_evaluation", segment=name, owner=owner, now=now_millis(),
            lease_ms=int(lease.total_seconds() * 1000)))
        return bool(records and records[0]["claimed"])

    def release(self, name: str, owner: str) -> None:
        self.graph.transaction("release segment", lambda tx: tx.run("segments/release_evaluation", segment=name, owner=owner))

    # -- reads ---------------------------------------------------------------------------

    def members(self, name: str, identifier_types: tuple[str, ...], page_size: int = 0) -> Iterator[SegmentMemberView]:
        """Current members, streamed from Neo4j in pages of page_size records (the driver's
        fetch size), in constant server memory."""
        segment = self.get(name)
        unknown = sorted(set(identifier_types) - self.known_types)
        if unknown:
            raise InvalidArgument(f"identifier_types {unknown} are not known types ({', '.join(sorted(self.known_types))})")
        for record in self.graph.stream("segments/members", fetch_size=page_size or None, segment=segment.name,
                                        types=list(identifier_types)):
            yield SegmentMemberView(
                profile_id=record["profile_id"],
                since=to_datetime(record["since"]),
                identifiers=tuple(Identifier(i["type"], i["value"]) for i in record["identifiers"]),
            )

    def changes(self, name: str, after: int, limit: int = CHANGES_PAGE) -> list[MembershipChange]:
        """The segment's logged changes after a position (at most limit), in position order."""
        return [MembershipChange(r["position"], name, r["profile_id"], r["kind"], _at(r["at"]), r["cause"])
                for r in self.graph.read("segments/changes_after", segment=name, after=after, limit=limit)]

    def check_position(self, name: str, after: int) -> None:
        """A consumer may resume after any position the log still holds; older ones are gone."""
        self.get(name)
        if after < 0:
            raise InvalidArgument(f"after_position {after} is negative")
        (state,) = self.graph.read("segments/log_state")
        if after >= state["next"]:  # resuming there would skip every change up to it, silently
            raise OutOfRange(f"position {after} was never given out: the log's last position is {state['next'] - 1}; "
                             "resume after a position a change carried, or from 0 for every change")
        self._check_retained(after)

    def _check_retained(self, after: int) -> None:
        (state,) = self.graph.read("segments/log_state")
        if 0 < after < state["trimmed_through"]:
            raise OutOfRange(
                f"changes up to position {state['trimmed_through']} were deleted by retention; position {after} "
                f"cannot be resumed exactly: read the members with ListSegmentMembers and watch from "
                f"position {state['next'] - 1}")

    def last_position(self) -> int:
        """The position of the last change logged (0 before the first)."""
        (state,) = self.graph.read("segments/log_state")
        return int(state["next"]) - 1

    def log_changes(self, names: list[str], after: int, limit: int) -> list[MembershipChange]:
        """The changes of any of the segments after a position (at most limit), in position
        order: what the change feed's one poller reads for every watcher of the process."""
        return [MembershipChange(r["position"], r["segment"], r["profile_id"], r["kind"], _at(r["at"]), r["cause"])
                for r in self.graph.read_once("segments/log_changes_after", segments=names, after=after, limit=limit)]

    def trim(self, retention: timedelta, limit: int = 10_000) -> int:
        """Deletes changes older than the retention; returns how many."""
        before = epoch_millis(datetime.now(UTC) - retention)
        records = self.graph.transaction("trim segment changes", lambda tx: tx.run(
            "segments/trim_changes", before=before, limit=limit))
        return records[0]["deleted"] if records else 0


def _at(value: object) -> datetime:
    moment = to_datetime(value)
    assert moment is not None
    return moment


def _name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidArgument("name is empty")
    return name

