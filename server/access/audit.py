"""The audit trail: every admin call with its outcome, and every refused call, in Neo4j.

Admin calls change or erase people's data, so each one is written before its answer goes
out (`record`): a crash after the answer cannot lose the entry. Refused calls are queued and
written in batches by a thread of their own (`record_soon`): a flood of bad tokens must not
turn into a flood of transactions, so the queue is bounded and what overflows is counted,
logged and written as one entry.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from server.graph import Graph, epoch_millis, to_datetime

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000  # refused calls waiting to be written
BATCH = 500
FLUSH_EVERY_S = 0.2


@dataclass(frozen=True)
class AuditEntry:
    """Who (the token's name), what (method and target), when, and how it ended (OK or the
    status code), with the refusal message or error, and the peer's address."""

    caller: str
    method: str
    target: str
    outcome: str
    detail: str = ""
    peer: str = ""
    at: datetime | None = None

    def row(self) -> dict[str, object]:
        return {"id": uuid.uuid4().hex, "at": epoch_millis(self.at or datetime.now(UTC)), "caller": self.caller,
                "method": self.method, "target": self.target, "outcome": self.outcome, "detail": self.detail,
                "peer": self.peer}


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    caller: str = ""
    method: str = ""
    limit: int = 1000


class AuditTrail:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._waiting: queue.Queue[AuditEntry | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._dropped = 0
        self._lock = threading.Lock()
        self._writer = threading.Thread(target=self._write_queued, name="audit-writer", daemon=True)
        self._writer.start()

    def record(self, entry: AuditEntry) -> None:
        """Writes the entry now (blocking: call it from a worker thread)."""
        self._write([entry])

    def record_soon(self, entry: AuditEntry) -> None:
        """Queues the entry for the writer thread; never blocks."""
        try:
            self._waiting.put_nowait(entry)
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def read(self, query: AuditQuery) -> list[AuditEntry]:
        records = self.graph.read(
            "audit/list", since=epoch_millis(query.since) if query.since else None,
            until=epoch_millis(query.until) if query.until else None, caller=query.caller, method=query.method,
            limit=query.limit)
        return [AuditEntry(r["caller"], r["method"], r["target"], r["outcome"], r["detail"] or "", r["peer"] or "",
                           to_datetime(r["at"])) for r in records]

    def close(self) -> None:
        """Writes what is queued and stops the writer."""
        self._waiting.put(None)
        self._writer.join(timeout=10)

    def _write(self, entries: list[AuditEntry]) -> None:
        self.graph.transaction("audit", lambda tx: tx.run("audit/record", entries=[e.row() for e in entries]))

    def _write_queued(self) -> None:
        stopping = False
        while not stopping:
            first = self._waiting.get()
            batch, stopping = ([first], False) if first is not None else ([], True)
            while len(batch) < BATCH and not stopping:
                try:
                    entry = self._waiting.get(timeout=FLUSH_EVERY_S)
                except queue.Empty:
                    break
                if entry is None:
                    stopping = True
                else:
                    batch.append(entry)
            batch.extend(self._overflow())
            if batch:
                self._write_logged(batch)

    def _overflow(self) -> list[AuditEntry]:
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        if not dropped:
            return []
        log.warning("audit: %d refused calls came faster than they could be written; counted, not itemised", dropped)
        return [AuditEntry("(many)", "(refused calls)", "", "DROPPED", f"{dropped} refused calls not itemised: "
                           f"more than {QUEUE_LIMIT} waited to be written")]

    def _write_logged(self, batch: list[AuditEntry]) -> None:
        try:
            self._write(batch)
        except Exception:  # the audit of refusals must never take the server down
            log.exception("audit: %d entries of refused calls could not be written", len(batch))
