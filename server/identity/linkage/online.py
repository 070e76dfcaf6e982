"""The online linkage worker: links, in the background, the identifiers ingest queued.

Without a current model it does not wait in silence: it fits one itself once identifiers
have waited for one and the graph holds enough records (a graph fed only by Ingest gets a
model too), one server at a time; a refused fit is logged as a warning, counted, shown in
GetLinkageStatus, and tried again later with a growing back-off.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from enum import Enum

from server.errors import FailedPrecondition, ModelRefused
from server.identity.linkage.linker import Linker
from server.identity.values import Identifier
from server.tuning import (IDLE_WAIT_S, ONLINE_FIT_AFTER_S, ONLINE_FIT_CHECK_S, ONLINE_FIT_LEASE_S,
                           ONLINE_FIT_MAX_RETRY_S, ONLINE_FIT_MIN_RECORDS, ONLINE_FIT_RETRY_S, ONLINE_LINKAGE_BATCH,
                           ONLINE_WAIT_REPORT_S)

log = logging.getLogger(__name__)

LAG_REPORT_EVERY = 30.0  # seconds between lag reports of a busy worker
LAG_WARNING_S = 10.0  # a wait longer than this is logged as a warning


@dataclass(frozen=True)
class OnlineFitting:
    """When the worker fits a model itself; server/tuning.py gives the reasons for the defaults."""

    min_records: int = ONLINE_FIT_MIN_RECORDS  # Matchable records in the graph
    after_s: float = ONLINE_FIT_AFTER_S  # the oldest waiting identifier has waited this long
    retry_s: float = ONLINE_FIT_RETRY_S  # after a refused attempt, doubled per refusal in a row
    max_retry_s: float = ONLINE_FIT_MAX_RETRY_S
    lease_s: float = ONLINE_FIT_LEASE_S  # one server fits; its claim expires after this
    check_every_s: float = ONLINE_FIT_CHECK_S
    report_every_s: float = ONLINE_WAIT_REPORT_S  # between warnings while identifiers wait for a model

    def retry_after(self, attempts: int) -> float:
        """Seconds before the next attempt after `attempts` failed ones in a row."""
        return float(min(self.retry_s * 2 ** max(attempts - 1, 0), self.max_retry_s))


class FitAttempt(Enum):
    """What one attempt of the worker to fit a model did."""

    ADOPTED = "adopted"
    REFUSED = "refused"  # the fit failed its checks, twice (the second time on a larger sample)
    NOT_FITTED = "not fitted"  # too few candidate pairs to fit on


class LinkageWorker:
    """Links the identifiers ingest queued (LinkPending), oldest first, in the background.

    The queue lives in Neo4j, so the server stays stateless: a restarted server picks up what
    was left, and several servers may each run a worker (they may link the same identifier
    twice; every write is a MERGE, so that costs time, not correctness). The fit schedule
    (attempts, back-off, the claim) lives there too (linkage/claim_fit).
    """

    def __init__(self, linker: Linker, batch_size: int = ONLINE_LINKAGE_BATCH, idle_wait: float = IDLE_WAIT_S,
                 fitting: OnlineFitting = OnlineFitting()) -> None:
        self.linker = linker
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.fitting = fitting
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="linkage-worker")
        self._next_check = 0.0  # monotonic time of the next look at whether a fit is due
        self._reported: float | None = None  # monotonic time of the last warning that identifiers wait for a model

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _report(self) -> None:
        """While the worker is busy, says how far behind it is (also in GetLinkageStatus)."""
        lag = self.linker.lag()
        level = logging.WARNING if lag.oldest_wait_s > LAG_WARNING_S else logging.INFO
        log.log(level, "online linkage: %d identifiers waiting, the oldest for %.1f s", lag.pending, lag.oldest_wait_s)

    def run_once(self) -> int:
        """Links one batch of the queue; returns how many identifiers it took off. Without a
        model, fits one when that is due (at most every check_every_s) and links nothing."""
        model = self.linker.model()
        if model is None:
            if time.monotonic() >= self._next_check:
                self._next_check = time.monotonic() + self.fitting.check_every_s
                if self.fit_if_due() is None:
                    self._report_waiting()
            return 0
        pending = self.linker.graph.read("linkage/pending", limit=self.batch_size)
        if not pending:
            return 0
        self.linker.link([Identifier(r["type"], r["value"]) for r in pending], model)
        rows = [{"type": r["type"], "value": r["value"], "pending_since": r["pending_since"]} for r in pending]
        self.linker.graph.transaction("linkage done", lambda tx: tx.run("linkage/done", rows=rows))
        return len(pending)

    def fit_if_due(self) -> FitAttempt | None:
        """Fits a model (Linker.refit, as imports and RefitLinkageModel do) when none is current,
        identifiers have waited for one fitting.after_s, the graph holds fitting.min_records
        Matchable records, and this server claims the fit (no other server is fitting, and a
        refused attempt's back-off has passed). What the attempt did, or None when none was due."""
        if self.linker.model(max_age=0) is not None:
            return None
        lag = self.linker.lag()
        if lag.pending == 0 or lag.oldest_wait_s < self.fitting.after_s:
            return None
        if self.linker.matchable() < self.fitting.min_records:
            return None
        attempts = self.linker.claim_fit(self.owner, self.fitting.lease_s)
        if attempts is None:
            return None
        log.info("online linkage: no linkage model is current and %d identifiers wait; fitting one", lag.pending)
        outcome, retry_after = "", None
        try:
            model = self.linker.refit(trigger="online")
        except ModelRefused as exc:
            attempts += 1
            retry_after = self.fitting.retry_after(attempts)
            outcome = f"the fit ({exc.version}) was refused: {'; '.join(exc.reasons)}"
            log.warning("online linkage: probabilistic linkage stays off, %s; %d identifiers wait, the oldest for "
                        "%.0f s; %d attempts refused in a row, the next in %.0f s (or import records or call "
                        "RefitLinkageModel)", outcome, lag.pending, lag.oldest_wait_s, attempts, retry_after)
            return FitAttempt.REFUSED
        except FailedPrecondition as exc:
            attempts += 1
            retry_after = self.fitting.retry_after(attempts)
            outcome = f"not fitted: {exc}"
            log.warning("online linkage: probabilistic linkage stays off, %s; %d identifiers wait; the next attempt "
                        "in %.0f s", outcome, lag.pending, retry_after)
            return FitAttempt.NOT_FITTED
        except BaseException as exc:  # a failed fit (Neo4j) is retried when next due, not at once
            outcome, retry_after = f"failed: {type(exc).__name__}", self.fitting.retry_after(attempts + 1)
            raise
        else:
            attempts, outcome = 0, f"model {model.version} fitted and made current"
            log.info("online linkage: fitted linkage model %s itself; probabilistic linkage is on, linking the "
                     "%d identifiers waiting", model.version, lag.pending)
            return FitAttempt.ADOPTED
        finally:
            self.linker.release_fit(self.owner, attempts, retry_after, outcome)

    def _report_waiting(self) -> None:
        """While identifiers wait for a model that is not being fitted, says so, and why, as a
        warning every fitting.report_every_s."""
        if self._reported is not None and time.monotonic() - self._reported < self.fitting.report_every_s:
            return
        status = self.linker.status()
        if status.off is None or status.lag.pending == 0:
            return
        self._reported = time.monotonic()
        log.warning("online linkage is waiting: probabilistic linkage is off: %s (this worker fits a model itself "
                    "once identifiers have waited %.0f s and the graph holds %d records with person attributes)",
                    status.why_off, self.fitting.after_s, self.fitting.min_records)

    def _run(self) -> None:
        reported = time.monotonic()
        while not self._stop.is_set():
            try:
                if self.run_once() == 0:
                    self._stop.wait(self.idle_wait)
                elif time.monotonic() - reported > LAG_REPORT_EVERY:
                    reported = time.monotonic()
                    self._report()
            except Exception:  # a failed batch stays queued; the next round retries it
                log.exception("online linkage failed; retrying")
                self._stop.wait(1.0)
