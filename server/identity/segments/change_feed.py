"""One reader of the segment change log per server process, feeding every watcher.

A watcher (a WatchSegment stream) used to poll Neo4j on its own ten times a second: a
thousand watchers were ten thousand queries a second for nothing. Now one poller reads the
log after the highest position it has seen, for every watched segment at once, one query
per poll interval however many watch, and hands each change to the watchers of its segment.

A watcher first catches up from the log itself (the changes after the position it resumes
from), then takes the live changes the poller handed it meanwhile, skipping those it has
already given out. It registers before it catches up, so nothing falls between the two:
what the poller read before the registration is in the log, what it reads after is handed
over. Positions are committed in order (segments/lock_log), so reading "after the highest
position seen" misses nothing.

Each watcher's buffer is bounded. A consumer too slow to take what it is handed is cut off
with ResourceExhausted naming the position to resume after, rather than growing memory.

Catch-up reads are shared and paced. A full page of the log never changes (positions are
committed in order), so watchers replaying the same segment share each full page, read once
(ReplayPages); a partial page is read fresh, since changes may still join it. Every watcher of
the process draws from one budget whose rate follows the event loop's lag (ReplayPacer): a
thousand watchers replaying a large segment from position 0 are millions of messages, and
unpaced they took the event loop from health checks (p99 1.35 s) and lookups (15/s against
1,632/s). Paced, replay gives way to them and runs at full speed while they are quiet.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from server.errors import IdentityError, ResourceExhausted, ShuttingDown, StorageUnavailable
from server.identity.segments.membership import CHANGES_PAGE, Membership, MembershipChange
from server.identity.segments.replay_pacer import ReplayPacer

log = logging.getLogger(__name__)

T = TypeVar("T")
# Changes one poll reads at most; a full page is followed by the next at once.
POLL_PAGE = 2000
# Watchers woken at once when changes are handed over, and the pause between such slices: a
# change to a thousand watchers is a thousand messages to send, and the event loop answers
# health checks and lookups between the slices rather than after all of them.
FANOUT_SLICE = 50
SHUTTING_DOWN = ("the server is shutting down; resume after the last position you processed, on another "
                 "server or once this one is back")
FANOUT_PAUSE_S = 0.001
# Changes a watcher's catch-up hands out per draw from the replay budget: small, so that many
# replaying watchers take turns rather than one running through its whole backlog.
REPLAY_CHUNK = 100


class Blocking(Protocol):
    """Runs a blocking call (a Neo4j query) off the event loop (server.api.work.WorkPool)."""

    async def run(self, call: Callable[..., T], *args: Any) -> T: ...


@dataclass(eq=False)
class Watcher:
    """One stream's view of the feed: a bounded buffer of the changes handed to it."""

    segment: str
    capacity: int
    buffer: deque[MembershipChange] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    failure: IdentityError | None = None

    def hand(self, change: MembershipChange) -> None:
        """Buffers the change; the feed wakes the watcher (paced, see ChangeFeed._wake)."""
        if len(self.buffer) >= self.capacity:
            self.overflowed = True
        else:
            self.buffer.append(change)

    def fail(self, error: IdentityError) -> None:
        self.failure = error
        self.arrived.set()


class ReplayPages:
    """Full pages of one segment's change log, read once for every watcher that replays them
    (the event loop's only: no lock). At most `size` pages are kept, the least recently used
    going first; a read in flight is shared by whoever asks meanwhile."""

    def __init__(self, read: Callable[[str, int], Awaitable[list[MembershipChange]]], size: int = 64) -> None:
        self._read = read
        self._size = size
        self._pages: OrderedDict[tuple[str, int], asyncio.Future[list[MembershipChange]]] = OrderedDict()

    async def page(self, name: str, after: int) -> list[MembershipChange]:
        key = (name, after)
        if (shared := self._pages.get(key)) is not None:
            self._pages.move_to_end(key)
            changes = await asyncio.shield(shared)
            if len(changes) == CHANGES_PAGE:
                return changes
            # a partial page read before this watcher asked may lack what joined it since
            return await self._read(name, after)
        shared = asyncio.ensure_future(self._read(name, after))
        self._pages[key] = shared
        try:
            changes = await asyncio.shield(shared)
        except BaseException:
            self._pages.pop(key, None)
            raise
        if len(changes) < CHANGES_PAGE:  # partial: changes may still join it, so it is not kept
            self._pages.pop(key, None)
        while len(self._pages) > self._size:
            self._pages.popitem(last=False)
        return changes


class SharedChecks:
    """The position check of watchers that open at once with the same segment and position,
    run once for all of them (the event loop's only: no lock). A thousand watchers reconnecting
    together were three thousand queries queued before any health check or lookup, and the
    health checks waited 110 ms at p99 while they ran. Only a check in flight is shared: a
    watcher that opens after it ended gets a check of its own."""

    def __init__(self, check: Callable[[str, int], Awaitable[None]]) -> None:
        self._check = check
        self._running: dict[tuple[str, int], asyncio.Future[None]] = {}

    async def check(self, name: str, after: int) -> None:
        key = (name, after)
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._check(name, after))
            self._running[key] = running
            running.add_done_callback(lambda done: self._ended(key, done))
        await asyncio.shield(running)

    def _ended(self, key: tuple[str, int], done: asyncio.Future[None]) -> None:
        self._running.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every sharer may have gone away before it ended


class ChangeFeed:
    """Follows the change log for every watcher of this process with one poller."""

    def __init__(self, membership: Membership, blocking: Blocking, poll: float = 0.1, buffer: int = 10_000,
                 replay_rate: float = 5_000.0) -> None:
        self.membership = membership
        self.blocking = blocking
        self.poll = poll
        self.buffer = buffer
        self.pacer = ReplayPacer(replay_rate)
        self.pages = ReplayPages(lambda name, after: self.blocking.run(self.membership.changes, name, after,
                                                                       CHANGES_PAGE))
        self.checks = SharedChecks(lambda name, after: self.blocking.run(self.membership.check_position, name, after))
        self._watchers: dict[str, set[Watcher]] = {}
        self._head: int | None = None  # the highest position the poller has handed over
        self._poller: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def watchers(self) -> int:
        return sum(len(watchers) for watchers in self._watchers.values())

    async def follow(self, name: str, after: int) -> AsyncIterator[MembershipChange]:
        """Every change of the segment after the position, then each new one, until the
        consumer goes away. Exactly once across reconnects, as Membership.check_position says."""
        name = name.strip()
        await self.checks.check(name, after)
        watcher = Watcher(name, self.buffer)
        self._register(watcher)
        try:
            last = after
            async for change in self._catch_up(name, after):
                last = change.position
                yield change
            while True:
                for change in await self._next_live(watcher, last):
                    last = change.position
                    yield change
        finally:
            self._unregister(watcher)

    async def _catch_up(self, name: str, after: int) -> AsyncIterator[MembershipChange]:
        while changes := await self.pages.page(name, after):
            for start in range(0, len(changes), REPLAY_CHUNK):
                chunk = changes[start:start + REPLAY_CHUNK]
                await self.pacer.take(len(chunk))
                for change in chunk:
                    yield change
            after = changes[-1].position
            if len(changes) < CHANGES_PAGE:
                return

    async def _next_live(self, watcher: Watcher, last: int) -> list[MembershipChange]:
        """The changes handed to the watcher after position last (waits for at least one)."""
        while True:
            if watcher.overflowed:
                raise ResourceExhausted(
                    f"the consumer of segment {watcher.segment!r} fell {watcher.capacity} changes behind "
                    f"(--watch-buffer); resume with after_position {last}")
            if watcher.failure is not None:
                raise watcher.failure
            fresh = [change for change in watcher.buffer if change.position > last]
            watcher.buffer.clear()
            watcher.arrived.clear()
            if fresh:
                return fresh
            await watcher.arrived.wait()

    def _register(self, watcher: Watcher) -> None:
        if self._closed:
            raise ShuttingDown(SHUTTING_DOWN)
        self._watchers.setdefault(watcher.segment, set()).add(watcher)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="segment-change-feed")

    def _unregister(self, watcher: Watcher) -> None:
        watchers = self._watchers.get(watcher.segment)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[watcher.segment]

    async def _poll(self) -> None:
        """Reads the log for every watched segment while anyone watches; stops when nobody does."""
        try:
            if self._head is None:
                self._head = await self.blocking.run(self.membership.last_position)
            while self._watchers:
                read = await self._poll_once()
                if read < POLL_PAGE:
                    await asyncio.sleep(self.poll)
            self._head = None  # nobody watches: the next watcher starts the poller afresh
        except IdentityError as exc:  # Neo4j went away: every watcher ends and may resume
            log.warning("segment change feed failed: %s", exc)
            self._fail_all(exc)
        except Exception as exc:  # anything else, too: a dead poller must never leave watchers hanging
            log.exception("segment change feed failed; its watchers end UNAVAILABLE, the next watcher restarts it")
            self._fail_all(StorageUnavailable(f"the segment change feed failed ({type(exc).__name__}); resume after "
                                              "the last position you processed"))

    def _fail_all(self, error: IdentityError) -> None:
        """Ends every watcher with the error; the next one to register starts a new poller."""
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.fail(error)
        self._watchers.clear()
        self._head = None

    async def _poll_once(self) -> int:
        assert self._head is not None
        changes = await self.blocking.run(self.membership.log_changes, sorted(self._watchers), self._head, POLL_PAGE)
        handed: dict[Watcher, None] = {}  # in order, once each
        for change in changes:
            for watcher in self._watchers.get(change.segment, ()):
                watcher.hand(change)
                handed[watcher] = None
        if changes:
            self._head = changes[-1].position
        await self._wake(list(handed))
        return len(changes)

    @staticmethod
    async def _wake(watchers: list[Watcher]) -> None:
        for start in range(0, len(watchers), FANOUT_SLICE):
            if start:
                await asyncio.sleep(FANOUT_PAUSE_S)
            for watcher in watchers[start:start + FANOUT_SLICE]:
                watcher.arrived.set()

    async def close(self) -> None:
        """Stops the poller and ends every watcher at once (UNAVAILABLE): a watch never ends by
        itself, and its consumer resumes after its last position on another server rather than
        holding this one's shutdown for the whole grace period."""
        self._closed = True
        self.pacer.close()
        if self._poller is not None:
            self._poller.cancel()
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.fail(ShuttingDown(SHUTTING_DOWN))
