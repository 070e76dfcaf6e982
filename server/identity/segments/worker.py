"""The segment worker: keeps membership current in the background, in every server.

It evaluates the profiles that writes marked (oldest first), runs the full evaluations that
are due (a definition not yet evaluated to the end, time windows on their schedule) under a
lease so that one server runs each, and trims the change log to its retention. All its
state is in Neo4j: a restarted server picks up where any server left off.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

from server.identity.segments.membership import CLAIM_SIZE, Membership
from server.tuning import IDLE_WAIT_S, SEGMENT_SETTLE_S

log = logging.getLogger(__name__)

TRIM_EVERY = 60.0
SCHEDULE_CHECK_EVERY = 1.0
LAG_WARNING_S = 5.0  # a wait longer than this is logged as a warning


class SegmentWorker:
    """Two threads: one evaluates marked profiles as they come (the enter/exit latency
    consumers see), the other runs due full evaluations and trims the log, so that a full
    evaluation of a large graph never holds the marked profiles back."""

    def __init__(self, membership: Membership, schedule: timedelta, retention: timedelta,
                 idle_wait: float = IDLE_WAIT_S, lag_report_every: float = 30.0,
                 settle: float = SEGMENT_SETTLE_S) -> None:
        self.membership = membership
        self.lag_report_every = lag_report_every  # seconds between reports of a busy worker
        self.schedule = schedule
        self.retention = retention
        self.idle_wait = idle_wait
        self.settle = settle  # after a claim that emptied the queue
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._evaluate_marked, daemon=True, name="segment-worker"),
                         threading.Thread(target=self._schedule, daemon=True, name="segment-scheduler")]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def run_scheduled(self) -> bool:
        """Runs one full evaluation that is due and this server could claim; returns whether it ran one."""
        lease = max(self.schedule, timedelta(minutes=10))
        for segment in self.membership.due(self.schedule, datetime.now(UTC)):
            if self._stop.is_set() or not self.membership.claim(segment.name, self.owner, lease):
                continue
            try:
                cause = "schedule" if segment.evaluated_version == segment.version else "definition"
                self.membership.evaluate_fully(segment.name, cause)
                return True
            finally:
                self.membership.release(segment.name, self.owner)
        return False

    def _report(self, evaluated: int, seconds: float) -> None:
        """While the worker is busy, says how fast it goes and how far behind it is."""
        marked, oldest_wait = self.membership.lag()
        level = logging.WARNING if oldest_wait > LAG_WARNING_S else logging.INFO
        log.log(level, "segments: %d profiles evaluated in %.0f s; %d waiting, the oldest for %.1f s",
                evaluated, seconds, marked, oldest_wait)

    def _evaluate_marked(self) -> None:
        reported, evaluated = time.monotonic(), 0
        while not self._stop.is_set():
            try:
                taken, _ = self.membership.evaluate_marked()
                evaluated += taken
                if time.monotonic() - reported > self.lag_report_every and evaluated:
                    self._report(evaluated, time.monotonic() - reported)
                    reported, evaluated = time.monotonic(), 0
                if not taken:
                    self._stop.wait(self.idle_wait)
                elif taken < CLAIM_SIZE:  # caught up: let the next claim gather several batches
                    self._stop.wait(self.settle)
            except Exception:  # marked profiles stay marked; the next round retries them
                log.exception("segment evaluation failed; retrying")
                self._stop.wait(1.0)

    def _schedule(self) -> None:
        trimmed = 0.0
        while not self._stop.is_set():
            try:
                if self.run_scheduled():
                    continue
                if time.monotonic() - trimmed > TRIM_EVERY:
                    trimmed = time.monotonic()
                    self.membership.trim(self.retention)
                self._stop.wait(SCHEDULE_CHECK_EVERY)
            except Exception:  # what is due stays due; the next round retries it
                log.exception("scheduled segment evaluation failed; retrying")
                self._stop.wait(5.0)
