"""The online linkage worker: links, in the background, the identifiers ingest queued."""

from __future__ import annotations

import logging
import threading
import time

from server.identity.linkage.linker import Linker
from server.identity.values import Identifier
from server.tuning import IDLE_WAIT_S, ONLINE_LINKAGE_BATCH

log = logging.getLogger(__name__)

LAG_REPORT_EVERY = 30.0  # seconds between lag reports of a busy worker
LAG_WARNING_S = 10.0  # a wait longer than this is logged as a warning


class LinkageWorker:
    """Links the identifiers ingest queued (LinkPending), oldest first, in the background.

    The queue lives in Neo4j, so the server stays stateless: a restarted server picks up what
    was left, and several servers may each run a worker (they may link the same identifier
    twice; every write is a MERGE, so that costs time, not correctness).
    """

    def __init__(self, linker: Linker, batch_size: int = ONLINE_LINKAGE_BATCH, idle_wait: float = IDLE_WAIT_S) -> None:
        self.linker = linker
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="linkage-worker")
        self._warned = False

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
        """Links one batch of the queue; returns how many identifiers it took off."""
        model = self.linker.model()
        if model is None:
            if not self._warned:
                log.warning("online linkage waits for a model: import records or call RefitLinkageModel")
                self._warned = True
            return 0
        pending = self.linker.graph.read("linkage/pending", limit=self.batch_size)
        if not pending:
            return 0
        self.linker.link([Identifier(r["type"], r["value"]) for r in pending], model)
        rows = [{"type": r["type"], "value": r["value"], "pending_since": r["pending_since"]} for r in pending]
        self.linker.graph.transaction("linkage done", lambda tx: tx.run("linkage/done", rows=rows))
        return len(pending)

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
