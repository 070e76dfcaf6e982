"""The audit trail: every admin call with its outcome, and every refused call, in Neo4j.

Admin calls change or erase people's data, so each one is written before its answer goes
out (`record`): a crash after the answer cannot lose the entry. Identifiers appear in it only
as the salted hashes forgetting uses (server/api/auth.py hashes them), and forgetting a person
scrubs whatever older entry names them in clear (`scrub`).

Refused calls are queued and written by a thread of their own (`record_soon`), counted per
minute, caller, method and outcome rather than itemised: a flood of bad tokens adds a bounded
number of nodes, never one per call. The same thread deletes entries older than the retention.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from server.graph import Graph, epoch_millis, to_datetime

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000  # refused calls waiting to be written
BATCH = 500
FLUSH_EVERY_S = 0.2
EXPIRE_EVERY_S = 3600.0  # between retention passes
EXPIRE_BATCH = 10_000  # entries deleted per transaction


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
    count: int = 1  # refusals this entry stands for (one minute's, counted)

    def row(self) -> dict[str, object]:
        return {"id": uuid.uuid4().hex, "at": epoch_micros(self.at or datetime.now(UTC)), "caller": self.caller,
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
    def __init__(self, graph: Graph, retention: timedelta = timedelta(days=365)) -> None:
        self.graph = graph
        self.retention = retention
        self._expired_at = 0.0  # monotonic time of the last retention pass
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
                           to_datetime(r["at"]), r["count"]) for r in records]

    def expire(self, now: datetime | None = None) -> int:
        """Deletes the entries older than the retention; returns how many."""
        before = int(((now or datetime.now(UTC)) - self.retention).timestamp() * 1000)
        deleted = 0
        while True:
            records = self.graph.transaction("audit", lambda tx: tx.run("audit/expire", before=before,
                                                                        batch=EXPIRE_BATCH))
            deleted += int(records[0]["deleted"])
            if records[0]["deleted"] < EXPIRE_BATCH:
                return deleted

    def close(self) -> None:
        """Writes what is queued and stops the writer."""
        self._waiting.put(None)
        self._writer.join(timeout=10)

    def _write(self, entries: list[AuditEntry]) -> None:
        self.graph.transaction("audit", lambda tx: tx.run("audit/record", entries=[e.row() for e in entries]))

    def _write_queued(self) -> None:
        stopping = False
        while not stopping:
            self._expire_due()
            try:
                first = self._waiting.get(timeout=EXPIRE_EVERY_S)
            except queue.Empty:
                continue
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
                self._count_logged(batch)

    def _expire_due(self) -> None:
        if time.monotonic() - self._expired_at < EXPIRE_EVERY_S:
            return
        self._expired_at = time.monotonic()
        try:
            if (deleted := self.expire()):
                log.info("audit: %d entries older than %s deleted (retention)", deleted, self.retention)
        except Exception:  # retention must never take the refusals' writer down
            log.exception("audit: the retention pass failed; it runs again in %.0f s", EXPIRE_EVERY_S)

    def _overflow(self) -> list[AuditEntry]:
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        if not dropped:
            return []
        log.warning("audit: %d refused calls came faster than they could be written; counted, not itemised", dropped)
        return [AuditEntry("(many)", "(refused calls)", "", "DROPPED", f"refused calls not told apart: more than "
                           f"{QUEUE_LIMIT} waited to be written", count=dropped)]

    def _count_logged(self, batch: list[AuditEntry]) -> None:
        try:
            self.graph.transaction("audit", lambda tx: tx.run("audit/count_refusals", refusals=refusal_rows(batch)))
        except Exception:  # the audit of refusals must never take the server down
            log.exception("audit: %d refused calls could not be counted", len(batch))


def epoch_micros(moment: datetime) -> int:
    """Audit times keep microseconds: an admin call's STARTED and outcome entries, a few
    milliseconds apart, must sort in the order they were written."""
    return (moment - EPOCH) // timedelta(microseconds=1)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def refusal_rows(entries: list[AuditEntry]) -> list[dict[str, object]]:
    """One row per minute, caller, method and outcome, with how many refusals it counts (the
    first one's detail and peer kept), in a stable order (the lock order of the MERGE)."""
    rows: dict[tuple[str, str, str, int], dict[str, object]] = {}
    for entry in entries:
        minute = int((entry.at or datetime.now(UTC)).timestamp()) // 60 * 60_000
        key = (entry.caller, entry.method, entry.outcome, minute)
        if key in rows:
            rows[key]["count"] = int(str(rows[key]["count"])) + entry.count
        else:
            rows[key] = {"id": uuid.uuid4().hex, "minute": minute, "caller": entry.caller, "method": entry.method,
                         "outcome": entry.outcome, "detail": entry.detail, "peer": entry.peer, "count": entry.count}
    return [rows[key] for key in sorted(rows)]
