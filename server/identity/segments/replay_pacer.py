"""The budget every WatchSegment catch-up of a process draws from: replay takes what the event
loop can spare, and yields to everything else.

A thousand watchers replaying a large segment from position 0 are millions of stream
messages, and each costs the event loop about as much as a lookup does. A fixed rate is wrong
both ways: measured at 5,000 changes a second beside lookups, lookups kept 0.14 of their
throughput and health checks waited 890 ms at p99, while alone the same server could replay
faster. So the rate follows the loop's own lag. Granting is a sleep, and the time the loop
takes beyond it says how busy the loop is with other work:

- lag above REPLAY_LAG_TARGET_S halves the rate, down to a floor that keeps every watcher
  moving (REPLAY_FLOOR_SHARE of the ceiling);
- lag below it adds REPLAY_RAMP_SHARE of the ceiling back, up to the ceiling (`--replay-rate`).

The lag is smoothed (REPLAY_LAG_SMOOTHING): one late wakeup, when the operating system ran
another process for a moment, is noise; the loop held by other work for two samples running
is not.

Health checks and lookups show up as lag at once, so replay gives way to them within a few
milliseconds and returns to full speed about a second after they stop.

Waiters are granted in arrival order, one wakeup each. The token bucket this replaces let
every waiter poll it: a thousand waiters were tens of thousands of wakeups a second.
Event loop only: no lock.
"""

from __future__ import annotations

import asyncio
from collections import deque

# The loop lag above which replay halves its rate: a health check answered within a few
# milliseconds of its arrival still has most of a 50 ms p99 budget left.
REPLAY_LAG_TARGET_S = 0.005
# The lowest rate, as a share of the ceiling: replay never stops, however busy the server.
REPLAY_FLOOR_SHARE = 0.02
# The rate regained per calm sample, as a share of the ceiling: from the floor to the ceiling
# in about a hundred samples (a second or more).
REPLAY_RAMP_SHARE = 0.01
# The longest sleep between two lag samples.
REPLAY_SLICE_S = 0.01
# The weight of the newest sample in the smoothed lag.
REPLAY_LAG_SMOOTHING = 0.4


class ReplayPacer:
    """Grants changes to waiting catch-ups, first come first served, at a rate steered by the
    event loop's lag between `floor` and `ceiling` changes a second."""

    def __init__(self, ceiling: float, floor: float | None = None, lag_target: float = REPLAY_LAG_TARGET_S) -> None:
        if ceiling <= 0:
            raise ValueError(f"the replay rate must be positive, not {ceiling}")
        self.ceiling = ceiling
        self.floor = min(ceiling, floor if floor is not None else max(1.0, ceiling * REPLAY_FLOOR_SHARE))
        self.lag_target = lag_target
        self.rate = ceiling
        self.lag = 0.0  # smoothed, in seconds
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._granter: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Catch-ups waiting for a grant (cancelled ones not yet skipped included)."""
        return len(self._waiting)

    async def take(self, count: int) -> None:
        """Waits until `count` changes are granted to the caller."""
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()
        self._waiting.append((count, granted))
        if self._granter is None or self._granter.done():
            self._granter = loop.create_task(self._grant(), name="segment-replay-pacer")
        await granted  # a waiter that goes away cancels its future, and the granter skips it

    async def _grant(self) -> None:
        """Grants the next waiter, then pays for what it was granted by sleeping, sampling the
        loop's lag at every slice of the sleep."""
        loop = asyncio.get_running_loop()
        while self._waiting:
            count, granted = self._waiting.popleft()
            if granted.done():
                continue
            granted.set_result(None)
            owed = float(count)
            while owed > 0:
                pause = min(owed / self.rate, REPLAY_SLICE_S)
                paid = pause * self.rate
                began = loop.time()
                await asyncio.sleep(pause)
                self.steer(loop.time() - began - pause)
                owed -= paid

    def steer(self, lag: float) -> None:
        """One lag sample: a busy loop halves the rate, a calm one regains a step of it."""
        self.lag += REPLAY_LAG_SMOOTHING * (max(0.0, lag) - self.lag)
        if self.lag > self.lag_target:
            self.rate = max(self.floor, self.rate / 2)
        else:
            self.rate = min(self.ceiling, self.rate + self.ceiling * REPLAY_RAMP_SHARE)

    def close(self) -> None:
        """Stops granting: the feed is closing and its watchers are ended."""
        if self._granter is not None:
            self._granter.cancel()
        while self._waiting:
            self._waiting.popleft()[1].cancel()
