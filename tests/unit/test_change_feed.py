"""The change feed: one poller for every watcher of a process, catch-up then live without a gap
or a duplicate, and a bounded buffer per watcher (against a fake change log, no Neo4j)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from server.errors import OutOfRange, ResourceExhausted, ShuttingDown, StorageUnavailable
from server.identity.segments.change_feed import ChangeFeed
from server.identity.segments.replay_pacer import ReplayPacer
from server.identity.segments.membership import Membership, MembershipChange

T = TypeVar("T")
AT = datetime(2026, 12, 1, tzinfo=UTC)


class FakeLog:
    """The change log as Membership exposes it, counting the poller's queries."""

    def __init__(self) -> None:
        self.changes: list[MembershipChange] = []
        self.checks: list[tuple[str, int]] = []
        self.polls = 0
        self.fail_polls = False

    def append(self, segment: str, profile_id: str) -> MembershipChange:
        change = MembershipChange(len(self.changes) + 1, segment, profile_id, "enter", AT, "ingest")
        self.changes.append(change)
        return change

    def check_position(self, name: str, after: int) -> None:
        self.checks.append((name, after))
        if after > len(self.changes):
            raise OutOfRange(f"position {after} was never given out")

    def last_position(self) -> int:
        return len(self.changes)

    def changes_of(self, name: str, after: int, limit: int) -> list[MembershipChange]:
        return [c for c in self.changes if c.segment == name and c.position > after][:limit]

    def log_changes(self, names: list[str], after: int, limit: int) -> list[MembershipChange]:
        self.polls += 1
        if self.fail_polls:
            raise StorageUnavailable("Neo4j is unavailable: test")
        return [c for c in self.changes if c.segment in names and c.position > after][:limit]


class Inline:
    """Runs the blocking calls on the loop itself: the fake log does not block."""

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        return call(*args)


def feed_over(log: FakeLog, buffer: int = 100) -> ChangeFeed:
    membership: Any = type("M", (), {})()
    membership.check_position = log.check_position
    membership.last_position = log.last_position
    membership.changes = log.changes_of
    membership.log_changes = log.log_changes
    return ChangeFeed(membership, Inline(), poll=0.01, buffer=buffer)


async def take(stream: AsyncIterator[MembershipChange], count: int) -> list[int]:
    return [(await asyncio.wait_for(anext(stream), 5)).position for _ in range(count)]


async def until(holds: Callable[[], bool], seconds: float = 5) -> None:
    """Yields to the loop until the condition holds: synchronisation by state, not by time."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not holds():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


def test_many_watchers_share_one_poll_and_each_gets_its_segments_changes() -> None:
    log = FakeLog()
    log.append("a", "p0")

    async def scenario() -> None:
        feed = feed_over(log)
        watchers_a = [feed.follow("a", 0) for _ in range(100)]
        watchers_b = [feed.follow("b", 0) for _ in range(100)]
        assert [await take(w, 1) for w in watchers_a] == [[1]] * 100  # caught up from the log
        firsts_b = [asyncio.ensure_future(take(w, 1)) for w in watchers_b]
        await until(lambda: feed.watchers == 200)
        polls_before, began = log.polls, asyncio.get_running_loop().time()
        log.append("b", "p1")
        log.append("a", "p2")
        assert [await take(w, 1) for w in watchers_a] == [[3]] * 100
        assert [await f for f in firsts_b] == [[2]] * 100
        await asyncio.sleep(0.1)  # ten poll intervals with 200 watchers: about ten queries, not 2,000
        # one query per poll interval (0.01 s), however many watchers, and however slow a loaded
        # machine made the interval: bounded by the time it took, not by a count of rounds
        intervals = (asyncio.get_running_loop().time() - began) / 0.01
        polls = log.polls - polls_before
        assert polls <= intervals + 5 and polls < 100, (polls, intervals)
        assert feed.watchers == 200
        for w in watchers_a + watchers_b:
            await w.aclose()  # type: ignore[attr-defined]
        assert feed.watchers == 0
        await feed.close()

    asyncio.run(scenario())


def test_a_change_logged_while_a_watcher_catches_up_is_given_once() -> None:
    log = FakeLog()
    for n in range(5):
        log.append("a", f"p{n}")

    async def scenario() -> list[int]:
        feed = feed_over(log)
        stream = feed.follow("a", 2)
        first = await take(stream, 3)  # 3, 4, 5 from the log
        log.append("a", "late")  # handed over live; may also be read by a catch-up
        rest = await take(stream, 1)
        log.append("a", "later")
        rest += await take(stream, 1)
        await stream.aclose()  # type: ignore[attr-defined]
        await feed.close()
        return first + rest

    assert asyncio.run(scenario()) == [3, 4, 5, 6, 7]


def test_a_consumer_too_slow_for_its_buffer_is_cut_off_with_the_position_to_resume_after() -> None:
    log = FakeLog()

    async def scenario() -> None:
        feed = feed_over(log, buffer=3)
        stream = feed.follow("a", 0)
        pending = asyncio.ensure_future(take(stream, 1))
        await until(lambda: feed.watchers == 1)
        log.append("a", "p1")
        assert await pending == [1]
        for n in range(10):  # the consumer takes nothing while ten changes arrive
            log.append("a", f"q{n}")
        polls = log.polls
        await until(lambda: log.polls >= polls + 2)  # the poller has read them and handed them over
        with pytest.raises(ResourceExhausted, match=r"fell 3 changes behind.*resume with after_position 1"):
            await take(stream, 1)
        assert feed.watchers == 0
        await feed.close()

    asyncio.run(scenario())


def test_a_failing_poll_ends_every_watcher_with_the_storage_error() -> None:
    log = FakeLog()

    async def scenario() -> None:
        feed = feed_over(log)
        streams = [feed.follow("a", 0) for _ in range(3)]
        waits = [asyncio.ensure_future(take(s, 1)) for s in streams]
        await until(lambda: feed.watchers == 3)
        log.fail_polls = True
        for wait in waits:
            with pytest.raises(StorageUnavailable):
                await wait
        await feed.close()

    asyncio.run(scenario())


def test_a_poller_that_dies_of_any_error_ends_its_watchers_and_the_next_watcher_restarts_it() -> None:
    log = FakeLog()
    broken = {"yes": False}
    real = log.log_changes

    def log_changes(names: list[str], after: int, limit: int) -> list[MembershipChange]:
        if broken["yes"]:
            raise KeyError("a bug, not a storage error")
        return real(names, after, limit)

    log.log_changes = log_changes  # type: ignore[method-assign]

    async def scenario() -> None:
        feed = feed_over(log)
        stream = feed.follow("a", 0)
        waiting = asyncio.ensure_future(take(stream, 1))
        await until(lambda: feed.watchers == 1)
        broken["yes"] = True
        with pytest.raises(StorageUnavailable, match="resume after the last position"):
            await waiting
        broken["yes"] = False
        again = feed.follow("a", 0)
        log.append("a", "p1")
        assert await take(again, 1) == [1]  # a new poller serves it
        await again.aclose()  # type: ignore[attr-defined]
        await feed.close()

    asyncio.run(scenario())


def test_catch_up_is_paced_by_one_budget_for_every_watcher_and_each_still_gets_everything() -> None:
    """Ten watchers replaying 500 changes each from position 0 at 10,000 changes a second take
    at least 0.4 s together (5,000 changes beyond the first burst), not one loop-hogging burst."""
    log = FakeLog()
    for n in range(500):
        log.append("a", f"p{n}")

    async def scenario() -> float:
        feed = feed_over(log)
        feed.pacer = ReplayPacer(10_000)
        began = asyncio.get_running_loop().time()
        streams = [feed.follow("a", 0) for _ in range(10)]
        got = await asyncio.gather(*(take(stream, 500) for stream in streams))
        took = asyncio.get_running_loop().time() - began
        assert all(positions == list(range(1, 501)) for positions in got)
        for stream in streams:
            await stream.aclose()  # type: ignore[attr-defined]
        await feed.close()
        return took

    assert asyncio.run(scenario()) >= 0.4


def test_watchers_replaying_one_segment_share_each_full_page_of_the_log() -> None:
    log = FakeLog()
    for n in range(1200):
        log.append("a", f"p{n}")
    reads: list[int] = []
    changes_of = log.changes_of

    def counted(name: str, after: int, limit: int) -> list[MembershipChange]:
        reads.append(after)
        return changes_of(name, after, limit)

    log.changes_of = counted  # type: ignore[method-assign]

    async def scenario() -> None:
        feed = feed_over(log)
        feed.pacer = ReplayPacer(1e9)  # sharing, not pacing, is under test
        streams = [feed.follow("a", 0) for _ in range(50)]
        got = await asyncio.gather(*(take(stream, 1200) for stream in streams))
        assert all(positions == list(range(1, 1201)) for positions in got)
        log.append("a", "late")  # joins the partial page: every watcher still gets it
        for stream in streams:
            assert await take(stream, 1) == [1201]
        for stream in streams:
            await stream.aclose()  # type: ignore[attr-defined]
        await feed.close()

    asyncio.run(scenario())
    # the two full pages (after 0 and after 500) once each; the partial one as each watcher needs it
    assert reads.count(0) == 1 and reads.count(500) == 1 and reads.count(1000) <= 2 * 50


def test_closing_the_feed_ends_every_watcher_at_once_and_refuses_new_ones() -> None:
    """A watch never ends by itself: on shutdown its consumer is told to resume elsewhere
    rather than holding the server for the whole grace period."""
    log = FakeLog()

    async def scenario() -> None:
        feed = feed_over(log)
        streams = [feed.follow("a", 0) for _ in range(3)]
        waits = [asyncio.ensure_future(take(s, 1)) for s in streams]
        await until(lambda: feed.watchers == 3)
        await feed.close()
        for wait in waits:
            with pytest.raises(ShuttingDown, match="resume after the last position"):
                await wait
        with pytest.raises(ShuttingDown):
            await take(feed.follow("a", 0), 1)

    asyncio.run(scenario())


def test_membership_is_what_the_feed_reads() -> None:
    """The fake above stands for these methods of Membership: keep their names in step."""
    for name in ("check_position", "last_position", "changes", "log_changes"):
        assert callable(getattr(Membership, name))


def test_watchers_opening_at_once_share_one_position_check_and_its_refusal() -> None:
    """A thousand watchers reconnecting together were three thousand queries queued ahead of
    every health check; now those opening together with one segment and position share one."""
    log = FakeLog()
    for n in range(3):
        log.append("a", f"p{n}")

    async def scenario() -> None:
        feed = feed_over(log)
        streams = [feed.follow("a", 1) for _ in range(50)]
        assert await asyncio.gather(*(take(stream, 2) for stream in streams)) == [[2, 3]] * 50
        assert log.checks == [("a", 1)]
        refused = [feed.follow("a", 9) for _ in range(5)]
        outcomes = await asyncio.gather(*(take(stream, 1) for stream in refused), return_exceptions=True)
        assert all(isinstance(o, OutOfRange) and "never given out" in str(o) for o in outcomes), outcomes
        assert log.checks == [("a", 1), ("a", 9)]
        late = feed.follow("a", 1)  # after the shared check ended: a check of its own
        assert await take(late, 1) == [2]
        assert log.checks[-1] == ("a", 1) and len(log.checks) == 3
        for stream in [*streams, late]:
            await stream.aclose()  # type: ignore[attr-defined]
        await feed.close()

    asyncio.run(scenario())
