"""How long to wait before the next try: one rule for webhook retries and feed reconnects."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(attempt: int, base: float, cap: float, *, retry_after: float | None = None,
                  jitter: Callable[[], float] = random.random) -> float:
    """base doubled per failed attempt (the first waits base), capped, then jittered to half to all
    of it, so that many runners do not retry in step; a server's retry_after (capped too) is a floor.
    attempt counts from 1; anything below counts as 1."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    delay *= 0.5 + jitter() / 2
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay
