"""Offline imports: a CRM export or POS file deduplicated within itself and linked to the graph.

Each source record becomes an offline touchpoint of type `record` that carries the record's
own identifier (`record:<source>/<record_id>`) and whatever identifiers the record has
(e-mail, phone, CRM id ...), so deterministic stitching happens exactly as for live events,
and the record's traits feed the golden record. The event id includes a digest of the
record's content: importing the same file twice changes nothing, and a changed record is a
new observation of the same record identifier.

Records with enough person attributes (names, address, date of birth) become Matchable and
are then linked probabilistically, chunk by chunk, against everything Matchable in the graph,
which includes the records of this import written before: that is the deduplication within
the file. The summary classifies each record once, in this order: linked probabilistically,
linked deterministically (its profile holds identifiers beyond its own), left for review (a
possible match), or new.

Without a current model the import fits one (Linker.refit), and so it does when the graph
has outgrown the current model (twice the records it was fitted on); a refused refit leaves
the current model, which the import then uses. When that is refused, or there
are too few records to fit on, the summary says how many Matchable records were left
unlinked and why, and (with online linkage on) they are queued for the online worker, which
links them once a model is current.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from server.errors import FailedPrecondition, ModelRefused
from server.graph import Graph
from server.identity import quarantine
from server.identity.ingest import MAX_EVENT_ID_LENGTH, EventRefused, Ingestor
from server.identity.linkage.attributes import person_attributes
from server.identity.linkage.model import LinkageModel
from server.identity.linkage.quality import LinkageQuality
from server.identity.linkage.candidates import Subject, describe_rows
from server.identity.linkage.linker import LinkOutcome, Linker
from server.identity.values import Ack, AckStatus, EventInput, Identifier, ValueWarning
from server.identity.normalize import CONTROL_IN_ID
from server.tuning import MODEL_OUTGROWN_BY, READ_PAGE, WRITE_PAGE

log = logging.getLogger(__name__)

RECORD_TYPE = "record"
RECORD_EVENT_TYPE = "record"
MAX_REJECTIONS_LISTED = 1000


@dataclass(frozen=True)
class SourceRecord:
    """A record of an offline source as the client sent it."""

    record_id: str
    source: str
    identifiers: tuple[tuple[str, str], ...] = ()
    traits: Mapping[str, str] = field(default_factory=dict)
    recorded_at: datetime | None = None
    received_at: datetime | None = None  # set by a replay from quarantine
    problem: str = ""  # what the transport could not decode (a recorded_at that is no time)
    consent: Mapping[str, object] = field(default_factory=dict)  # category -> choice, as of recorded_at


@dataclass(frozen=True)
class ImportProgress:
    phase: str  # writing, fitting, linking
    records_received: int
    records_done: int


@dataclass
class ImportSummary:
    records: int = 0
    new_profiles: int = 0
    linked_deterministic: int = 0
    linked_probabilistic: int = 0
    possible_matches: int = 0
    rejected: int = 0
    rejections: list[tuple[str, str]] = field(default_factory=list)
    pairs_compared: int = 0
    model_version: str = ""
    quality: LinkageQuality = field(default_factory=LinkageQuality)
    upper: float = 1.0  # the model's threshold, for the quality's probability bands
    model_refusals: list[str] = field(default_factory=list)
    records_left_unlinked: int = 0  # Matchable records no model scored: none was current, none could be fitted
    why_unlinked: str = ""
    records_with_warnings: int = 0
    warnings: list[tuple[str, ValueWarning]] = field(default_factory=list)
    # ids of the quarantine items of the records rejected (all of them, for a replay)
    rejected_ids: set[str] = field(default_factory=set)
    rejected_codes: Counter[str] = field(default_factory=Counter)


def record_identifier(record: SourceRecord) -> Identifier:
    return Identifier(RECORD_TYPE, f"{record.source.strip()}/{record.record_id.strip()}")


def record_event(record: SourceRecord) -> EventInput:
    """The record as an offline touchpoint; EventRefused when it cannot be one."""
    if record.problem:
        raise EventRefused(quarantine.BAD_TIMESTAMP, f"record {record.record_id}: {record.problem}")
    for name, value in (("record_id", record.record_id), ("source", record.source)):
        if not value.strip():
            raise EventRefused(quarantine.BAD_RECORD, f"record {record.record_id}: {name} is empty")
        if CONTROL_IN_ID.search(value.strip()):
            raise EventRefused(quarantine.BAD_RECORD, f"record {record.record_id!r}: {name} contains control characters")
    own = record_identifier(record)
    # a record stating consent is a statement as of recorded_at: the same choice exported again
    # later is a newer statement, so a touchpoint of its own; a record without consent keeps
    # the id it had before consent existed
    stated = ([sorted((k, repr(v)) for k, v in record.consent.items()),
               record.recorded_at.isoformat() if record.recorded_at else ""] if record.consent else [])
    content = json.dumps([sorted(record.identifiers), sorted(record.traits.items()), *stated], ensure_ascii=False)
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    event_id = f"{RECORD_TYPE}/{own.value}/{digest}"
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        room = MAX_EVENT_ID_LENGTH - len(event_id) + len(own.value) - 1
        raise EventRefused(quarantine.BAD_RECORD, f"record {record.record_id[:40]!r}: source and record_id take "
                           f"{len(own.value) - 1} characters together (at most {room})")
    return EventInput(
        event_id=event_id,
        occurred_at=record.recorded_at,
        source=record.source.strip(),
        channel="offline",
        type=RECORD_EVENT_TYPE,
        identifiers=((own.type, own.value), *record.identifiers),
        traits=dict(record.traits),
        received_at=record.received_at,
        added_identifiers=1,
        consent=dict(record.consent),
    )


def record_payload(record: SourceRecord, received_at: datetime) -> dict[str, object]:
    return {"record_id": record.record_id, "source": record.source,
            "identifiers": [list(pair) for pair in record.identifiers], "traits": dict(record.traits),
            "recorded_at": record.recorded_at.isoformat() if record.recorded_at else None,
            "received_at": (record.received_at or received_at).isoformat(), "problem": record.problem,
            "consent": dict(record.consent)}


def record_from_payload(payload: Mapping[str, Any]) -> SourceRecord:
    def moment(key: str) -> datetime | None:
        text = payload.get(key)
        return datetime.fromisoformat(str(text)) if text else None

    return SourceRecord(record_id=str(payload["record_id"]), source=str(payload["source"]),
                        identifiers=tuple((t, v) for t, v in payload["identifiers"]),
                        traits=dict(payload["traits"]),
                        recorded_at=moment("recorded_at"), received_at=moment("received_at"),
                        problem=str(payload.get("problem") or ""), consent=dict(payload.get("consent") or {}))


def record_rejection(record: SourceRecord, code: str, reason: str, received_at: datetime) -> quarantine.Rejection:
    return quarantine.Rejection(quarantine.RECORD, record.record_id, record.source.strip(), code, reason,
                                record_payload(record, received_at), record.identifiers)


class RecordImporter:
    """Runs one import: write, fit a model if there is none yet, link, summarise.

    With queue_unlinked (online linkage runs), records left unlinked for want of a model wait
    in the online linkage queue; without, a later import of the same records links them."""

    def __init__(self, graph: Graph, ingestor: Ingestor, linker: Linker, batch_size: int = WRITE_PAGE,
                 queue_unlinked: bool = False) -> None:
        self.graph = graph
        self.ingestor = ingestor
        self.linker = linker
        self.batch_size = batch_size
        self.queue_unlinked = queue_unlinked

    def run(self, records: Iterable[SourceRecord]) -> Iterator[ImportProgress | ImportSummary]:
        summary = ImportSummary()
        written: list[Identifier] = []
        matchable: list[Identifier] = []
        source = iter(records)
        while batch := list(islice(source, self.batch_size)):
            self._write(batch, summary, written, matchable)
            yield ImportProgress("writing", summary.records, summary.records)
        outcome = LinkOutcome()
        model = None
        if matchable:
            model = self.linker.model(max_age=0)  # another server may have refitted meanwhile
            if model is None or self._outgrown(model):
                yield ImportProgress("fitting", summary.records, summary.records)
                model = self._fit(summary, model)
        if model is not None:
            summary.model_version = model.version
            summary.upper = model.upper
            for start in range(0, len(matchable), self.batch_size):
                outcome.add(self.linker.link(matchable[start:start + self.batch_size], model))
                yield ImportProgress("linking", summary.records, min(start + self.batch_size, len(matchable)))
        elif matchable:
            self._leave_unlinked(matchable, summary)
        summary.pairs_compared = outcome.pairs_compared
        summary.quality = outcome.quality
        self._classify(written, outcome, summary)
        yield summary

    def _outgrown(self, model: LinkageModel) -> bool:
        """Whether the graph holds MODEL_OUTGROWN_BY times the records the model was fitted on: a
        model fitted early (by the online worker on the first signups, or on a small first
        import) knew little of the data that is there now."""
        return self.linker.matchable() > MODEL_OUTGROWN_BY * max(model.records, 1)

    def _fit(self, summary: ImportSummary, current: LinkageModel | None) -> LinkageModel | None:
        """A model fitted on the graph's records (tried twice when refused, see Linker.refit);
        when that fails, the current model, or None while there is none: the summary says why."""
        try:
            return self.linker.refit(trigger="import")
        except ModelRefused as exc:
            summary.model_refusals = list(exc.reasons)
            if current is None:
                summary.why_unlinked = f"no linkage model is current, and the one fitted ({exc.version}) was refused"
        except FailedPrecondition as exc:
            if current is None:
                summary.why_unlinked = f"no linkage model is current, and none could be fitted: {exc}"
        return current

    def _leave_unlinked(self, matchable: list[Identifier], summary: ImportSummary) -> None:
        """Says what no model scored, and queues it for the online worker, which links it once a
        model is current (it fits one itself, later, on more records)."""
        unlinked = sorted(set(matchable))
        summary.records_left_unlinked = len(unlinked)
        if not summary.why_unlinked:
            summary.why_unlinked = "no linkage model is current"
        if self.queue_unlinked:
            now = datetime.now(UTC)
            for start in range(0, len(unlinked), WRITE_PAGE):
                keys = [{"type": i.type, "value": i.value} for i in unlinked[start:start + WRITE_PAGE]]
                self.graph.transaction("queue unlinked records", lambda tx: tx.run("linkage/queue", keys=keys, now=now))
            summary.why_unlinked += "; they wait in the online linkage queue for a model"
        else:
            summary.why_unlinked += "; import them again once a model is current"
        log.warning("import: %d records with person attributes left without probabilistic linkage: %s",
                    len(unlinked), summary.why_unlinked)

    def _write(self, batch: list[SourceRecord], summary: ImportSummary, written: list[Identifier],
               matchable: list[Identifier]) -> None:
        summary.records += len(batch)
        received_at = datetime.now(UTC)
        events: list[EventInput] = []
        valid: list[SourceRecord] = []
        rejections: list[quarantine.Rejection] = []
        for record in batch:
            try:
                events.append(record_event(record))
                valid.append(record)
            except EventRefused as exc:
                rejections.append(record_rejection(record, exc.code, str(exc), received_at))
                self._reject(summary, record.record_id, exc.code, str(exc))
        acks = self.ingestor.ingest(events, online_linkage=False, keep_rejects=False) if events else []
        subjects = []
        for record, ack in zip(valid, acks, strict=True):
            self._note_warnings(summary, record, ack)
            if ack.status is AckStatus.REJECTED:
                self._reject(summary, record.record_id, ack.code, ack.reason)
                if ack.code != quarantine.SUPPRESSED:
                    rejections.append(record_rejection(record, ack.code, ack.reason, received_at))
                continue
            identifier = record_identifier(record)
            written.append(identifier)
            attributes = person_attributes(record.traits, self.linker.linkage)
            if attributes is not None:
                subjects.append(Subject(identifier, attributes))
        self._quarantine(rejections, summary, received_at)
        if subjects:
            rows = describe_rows(subjects, self.linker.linkage)
            self.graph.transaction("describe records", lambda tx: tx.run(
                "linkage/describe", rows=rows, pending=False, now=datetime.now(UTC)))
            matchable.extend(s.identifier for s in subjects)

    def _quarantine(self, rejections: list[quarantine.Rejection], summary: ImportSummary, now: datetime) -> None:
        """Keeps the rejected records for replay (after the import's own writes: a record is
        acked in the summary, at the end)."""
        rules, salt = self.ingestor.rules, self.ingestor.salt
        quarantine.keep_now(self.graph, quarantine.rows(rules, salt, rejections, now))
        summary.rejected_ids.update(r.rejection_id for r in rejections)

    @staticmethod
    def _note_warnings(summary: ImportSummary, record: SourceRecord, ack: Ack) -> None:
        if not ack.warnings or ack.status is AckStatus.REJECTED:
            return
        summary.records_with_warnings += 1
        room = MAX_REJECTIONS_LISTED - len(summary.warnings)
        summary.warnings.extend((record.record_id, w) for w in ack.warnings[:max(room, 0)])

    @staticmethod
    def _reject(summary: ImportSummary, record_id: str, code: str, reason: str) -> None:
        summary.rejected += 1
        summary.rejected_codes[code] += 1
        if len(summary.rejections) < MAX_REJECTIONS_LISTED:
            summary.rejections.append((record_id, reason))

    def _classify(self, written: list[Identifier], outcome: LinkOutcome, summary: ImportSummary) -> None:
        for start in range(0, len(written), READ_PAGE):
            keys = [{"type": i.type, "value": i.value} for i in written[start:start + READ_PAGE]]
            for record in self.graph.read("linkage/import_outcome", keys=keys):
                identifier = Identifier(record["type"], record["value"])
                if identifier in outcome.linked:
                    summary.linked_probabilistic += 1
                elif record["held"] > record["own"]:
                    summary.linked_deterministic += 1
                elif identifier in outcome.possible:
                    summary.possible_matches += 1
                else:
                    summary.new_profiles += 1
