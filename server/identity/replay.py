"""Replay: quarantined events and records through ingest again, invalid values re-examined.

After an operator changes the configuration (declares a type or an alias, raises a limit),
a replay feeds every quarantined item that matches a filter through the normal ingest path:
what passes is accepted once (idempotent by event_id, as always) and leaves quarantine; what
fails again stays, with the reason of today. Then the values touchpoints kept as invalid are
examined under the new rules, and those that are valid now are linked as if their touchpoint
had carried them from the start. Every step is idempotent: a replay that stops half way is
simply run again.
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from server.graph import Graph, to_datetime
from server.identity import quarantine
from server.identity.ingest import Ingestor, Revival, invalid_json, revive_identifiers
from server.identity.values import AckStatus, Channel, EventInput, Identifier, Touchpoint
from server.identity.normalize import InvalidIdentifier, normalize_identifier
from server.identity.quarantine import RejectedView, RejectionFilter
from server.identity.records import ImportProgress, RecordImporter, SourceRecord, record_from_payload
from server.tuning import WRITE_PAGE

log = logging.getLogger(__name__)

PAGE = WRITE_PAGE
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ReplayStatus:
    phase: str  # events, records, invalid_values
    total: int
    done: int


@dataclass
class ReplaySummary:
    events_replayed: int = 0
    events_accepted: int = 0
    events_duplicate: int = 0
    events_still_rejected: int = 0
    records_replayed: int = 0
    records_accepted: int = 0
    records_still_rejected: int = 0
    not_replayable: int = 0
    invalid_values_examined: int = 0
    invalid_values_linked: int = 0
    still_rejected: Counter[str] = field(default_factory=Counter)


class Replayer:
    """Lists, replays and expires the quarantine."""

    def __init__(self, graph: Graph, ingestor: Ingestor, importer: RecordImporter, page_size: int = PAGE) -> None:
        self.graph = graph
        self.ingestor = ingestor
        self.importer = importer
        self.page_size = page_size

    # `list` names this method in the class body: signatures below say builtins.list
    def list(self, where: RejectionFilter, limit: int = 0) -> Iterator[RejectedView]:
        """Quarantined items, newest rejection first, page by page."""
        params = where.params()
        params.update(since=params["since"] or EPOCH, upper=params["until"] or FAR_FUTURE)
        after_id, listed = None, 0
        while not limit or listed < limit:
            size = min(self.page_size, limit - listed) if limit else self.page_size
            page = self.graph.read("quarantine/list", **params, after_id=after_id, limit=size)
            for record in page:
                yield quarantine.rejected_view(record)
            listed += len(page)
            if len(page) < size:
                return
            params["upper"] = quarantine.as_offset(page[-1]["last_rejected_at"].to_native())
            after_id = page[-1]["id"]

    def replay(self, where: RejectionFilter, invalid_values: bool = True) -> Iterator[ReplayStatus | ReplaySummary]:
        summary = ReplaySummary()
        total = self.graph.read("quarantine/count", **where.params())[0]["items"]
        records: list[tuple[str, SourceRecord]] = []
        done, after = 0, ""
        while page := self.graph.read("quarantine/page", **where.params(), after=after, limit=self.page_size):
            after = page[-1]["id"]
            events = self._sort(page, records, summary)
            self._replay_events(events, summary)
            done += len(page)
            yield ReplayStatus("events", total, done)
        if records:
            yield from self._replay_records(records, summary)
        if invalid_values:
            yield from self._reexamine(summary)
        yield summary

    @staticmethod
    def _sort(page: builtins.list[dict[str, Any]], records: builtins.list[tuple[str, SourceRecord]],
              summary: ReplaySummary) -> builtins.list[tuple[str, EventInput]]:
        """The page's events; its records go to `records`, replayed together as one import."""
        events = []
        for item in page:
            if item["payload"] is None:
                summary.not_replayable += 1
                continue
            payload = json.loads(item["payload"])
            if item["kind"] == quarantine.EVENT:
                events.append((item["id"], quarantine.event_from_payload(payload)))
            else:
                records.append((item["id"], record_from_payload(payload)))
        return events

    def _replay_events(self, events: builtins.list[tuple[str, EventInput]], summary: ReplaySummary) -> None:
        if not events:
            return
        acks = self.ingestor.ingest([event for _, event in events])
        released = []
        for (item_id, event), ack in zip(events, acks, strict=True):
            summary.events_replayed += 1
            if ack.status is AckStatus.ACCEPTED:
                summary.events_accepted += 1
            elif ack.status is AckStatus.DUPLICATE:
                summary.events_duplicate += 1
            else:
                summary.events_still_rejected += 1
                summary.still_rejected[ack.code] += 1
                if ack.code != quarantine.SUPPRESSED and item_id == self._event_item_id(event):
                    continue  # kept again under the same id, with today's reason
            released.append(item_id)
        self._release(released)

    @staticmethod
    def _event_item_id(event: EventInput) -> str:
        return quarantine.rejection_id(quarantine.EVENT, quarantine.event_payload(event, datetime.now(UTC)))

    def _replay_records(self, records: builtins.list[tuple[str, SourceRecord]],
                        summary: ReplaySummary) -> Iterator[ReplayStatus]:
        """Replays records as one import: linked against the graph and each other."""
        outcome = None
        for step in self.importer.run(record for _, record in records):
            if isinstance(step, ImportProgress):
                yield ReplayStatus("records", len(records), step.records_done)
            else:
                outcome = step
        assert outcome is not None, "an import ends with its summary"
        summary.records_replayed += len(records)
        summary.records_still_rejected += outcome.rejected
        summary.records_accepted += len(records) - outcome.rejected
        summary.still_rejected.update(outcome.rejected_codes)
        self._release([item_id for item_id, _ in records if item_id not in outcome.rejected_ids])

    def _release(self, item_ids: builtins.list[str]) -> None:
        if item_ids:
            self.graph.transaction("quarantine release", lambda tx: tx.run("quarantine/release", ids=item_ids))

    # -- invalid values on touchpoints -------------------------------------------------------

    def _reexamine(self, summary: ReplaySummary) -> Iterator[ReplayStatus]:
        total = self.graph.read("quarantine/invalid_count")[0]["touchpoints"]
        done, after = 0, ""
        while page := self.graph.read("quarantine/invalid_page", after=after, limit=self.page_size):
            after = page[-1]["event_id"]
            revised, revivals = [], []
            for row in page:
                kept, found = self._examine(row["invalid"], summary)
                if found or kept != list(row["invalid"]):
                    revised.append({"event_id": row["event_id"], "invalid": kept})
                if found:
                    revivals.append(_revival(row, found))
            if revised:
                self._write_revisions(revised, revivals)
                summary.invalid_values_linked += sum(len(r.revived) for r in revivals)
            done += len(page)
            yield ReplayStatus("invalid_values", total, done)

    def _examine(self, stored: builtins.list[str],
                 summary: ReplaySummary) -> tuple[builtins.list[str], builtins.list[Identifier]]:
        """The values that stay invalid (with today's reasons), and those valid now."""
        kept, found = [], []
        for text in stored:
            summary.invalid_values_examined += 1
            value = json.loads(text)
            if not value.get("replayable", True):
                kept.append(text)
                continue
            try:
                found.append(normalize_identifier(self.ingestor.rules, value["type"], value["value"]))
            except InvalidIdentifier as exc:
                kept.append(invalid_json(exc.kept))
        return kept, found

    def _write_revisions(self, revised: builtins.list[dict[str, Any]], revivals: builtins.list[Revival]) -> None:
        rules = self.ingestor.rules

        def work(tx: Any) -> None:
            revive_identifiers(tx, rules, revivals, datetime.now(UTC))
            tx.run("quarantine/revise_invalid", rows=revised)

        self.graph.transaction("replay invalid values", work)

    # -- retention -----------------------------------------------------------------------------

    def purge(self, retention: timedelta, batch: int = 1000) -> int:
        """Deletes items last rejected longer ago than retention; returns how many."""
        cutoff = datetime.now(UTC) - retention
        purged = 0
        while True:
            count: int = self.graph.transaction("quarantine purge", lambda tx: tx.run(
                "quarantine/purge", cutoff=cutoff, limit=batch)[0]["purged"])
            purged += count
            if count < batch:
                return purged


def _revival(row: Mapping[str, Any], found: list[Identifier]) -> Revival:
    carried = {Identifier(c["type"], c["value"]) for c in row["carried"]}
    revived = tuple(sorted(set(found) - carried))
    occurred_at = to_datetime(row["occurred_at"])
    assert occurred_at is not None
    touchpoint = Touchpoint(event_id=row["event_id"], occurred_at=occurred_at, source=row["source"],
                            channel=Channel(row["channel"]), type=row["type"],
                            identifiers=tuple(sorted(carried | set(revived))))
    return Revival(touchpoint, revived, any(c["primary"] for c in row["carried"]))


class RetentionWorker:
    """Expires quarantined items past the retention setting, hourly, in the background.
    Every server runs one; they delete the same expired items, which costs nothing."""

    def __init__(self, replayer: Replayer, retention: timedelta, every: float = 3600.0) -> None:
        self.replayer = replayer
        self.retention = retention
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="quarantine-retention")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                purged = self.replayer.purge(self.retention)
                if purged:
                    log.info("quarantine: %d items past retention deleted", purged)
            except Exception:
                log.exception("quarantine retention failed; retrying later")
            self._stop.wait(self.every)
