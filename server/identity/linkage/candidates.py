"""Matchable identifiers: person attributes and blocking keys in Neo4j, and the queue of
identifiers online linkage has yet to link.

An identifier with person attributes (a CRM record, a loyalty signup's card) is Matchable:
it carries its cleaned attributes, one blocking key per configured pass (each in an indexed
slot) and a name key that orders an oversized block (sorted neighbourhood).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from server.graph import Tx
from server.identity.linkage.attributes import PersonAttributes, blocking_keys, person_attributes
from server.identity.linkage.linkage_config import LinkageRules
from server.identity.values import Identifier, Touchpoint

BLOCK_SLOTS = 7  # block_0 .. block_6 on Matchable, each indexed (cypher/schema.cypher)


@dataclass(frozen=True)
class Subject:
    """An identifier with person attributes, to be linked."""

    identifier: Identifier
    attributes: PersonAttributes


def block_slots(attributes: PersonAttributes, rules: LinkageRules) -> list[str | None]:
    """The subject's blocking keys by slot: slot n holds the key of the n-th configured pass."""
    slots: list[str | None] = [None] * BLOCK_SLOTS
    for key in blocking_keys(attributes, rules):
        slots[rules.blocking.index(key.split(":", 1)[0])] = key
    return slots


def name_key(attributes: PersonAttributes) -> str:
    """Orders a block by surname, then given name, for the sorted neighbourhood of an
    oversized block (the in-memory pipeline orders the same way)."""
    return f"{(attributes.surname or '').replace(' ', '')}!{(attributes.given_name or '').replace(' ', '')}"


def describe_rows(subjects: Iterable[Subject], rules: LinkageRules) -> list[dict[str, object]]:
    return [{"type": s.identifier.type, "value": s.identifier.value,
             "person": json.dumps(s.attributes.as_dict(), sort_keys=True),
             "blocks": block_slots(s.attributes, rules), "name_key": name_key(s.attributes)}
            for s in sorted(subjects, key=lambda s: s.identifier)]


def subject_row(record: Mapping[str, object]) -> dict[str, object]:
    return {"type": record["type"], "value": record["value"], "blocks": record["blocks"],
            "name_key": record["name_key"] or "!"}


class OnlineQueue:
    """Runs in the ingest transaction (Ingestor's after-stitching hook): describes the primary
    identifiers of events whose traits describe a person and queues them (LinkPending) for the
    online linkage worker; the latest event of the batch wins for each identifier."""

    def __init__(self, linkage: LinkageRules) -> None:
        self.linkage = linkage

    def __call__(self, tx: Tx, touchpoints: Sequence[Touchpoint], primaries: Mapping[str, Identifier],
                 now: datetime) -> None:
        subjects: dict[Identifier, Subject] = {}
        for touchpoint in sorted(touchpoints, key=lambda t: t.occurred_at):
            primary = primaries.get(touchpoint.event_id)
            if primary is None or not touchpoint.traits:
                continue
            attributes = person_attributes(touchpoint.traits, self.linkage)
            if attributes is not None:
                subjects[primary] = Subject(primary, attributes)
        if subjects:
            tx.run("linkage/describe", rows=describe_rows(subjects.values(), self.linkage), pending=True, now=now)
