"""Readiness: whether Neo4j answers, probed on a thread of its own.

gRPC health used to say SERVING while Neo4j was down, so load balancers kept sending calls
that could only fail. The probe asks Neo4j every PROBE_EVERY_S; a probe that fails, or takes
longer than PROBE_TIMEOUT_S (a hung Neo4j must not hang the probe), makes the server not
ready: gRPC health reports NOT_SERVING and `/readyz` answers 503 with the reason, until a
probe succeeds again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as FutureTimeout

log = logging.getLogger(__name__)

PROBE_EVERY_S = 1.0
PROBE_TIMEOUT_S = 3.0


class Readiness:
    def __init__(self, ping: Callable[[], None], on_change: Callable[[bool], None],
                 every: float = PROBE_EVERY_S, timeout: float = PROBE_TIMEOUT_S) -> None:
        self.ping, self.on_change = ping, on_change
        self.every, self.timeout = every, timeout
        self.ready, self.reason = True, ""
        self._stop = threading.Event()
        self._probes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readiness-probe")
        self._pending: Future[None] | None = None
        self._thread = threading.Thread(target=self._run, name="readiness", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():  # a server that failed to start never started its probe
            self._thread.join(timeout=self.timeout + 1)
        self._probes.shutdown(wait=False, cancel_futures=True)

    def probe(self) -> None:
        """One probe; a hung one is waited for, not stacked up: the next probe waits for it."""
        if self._pending is None or self._pending.done():
            self._pending = self._probes.submit(self.ping)
        try:
            self._pending.result(timeout=self.timeout)
        except FutureTimeout:
            self._set(False, f"Neo4j did not answer within {self.timeout:.0f} s")
        except Exception as exc:
            self._set(False, str(exc))
        else:
            self._set(True, "")

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.probe()

    def _set(self, ready: bool, reason: str) -> None:
        changed = ready != self.ready
        self.ready, self.reason = ready, reason
        if changed and not self._stop.is_set():
            if ready:
                log.warning("Neo4j answers again: serving")
            else:
                log.error("not ready, reporting NOT_SERVING: %s", reason)
            self.on_change(ready)
