"""The replay pacer: catch-ups granted first come first served, at a rate that gives way
when other work holds the event loop and comes back when it stops (no Neo4j)."""

from __future__ import annotations

import asyncio
import time

import pytest

from server.identity.segments.replay_pacer import ReplayPacer


async def keep_taking(pacer: ReplayPacer, until: float, granted: list[int], chunk: int = 10) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        await pacer.take(chunk)
        granted.append(chunk)


async def hold_the_loop(until: float, hold_s: float = 0.015) -> None:
    """Stands for interactive calls: work that keeps the event loop busy in slices."""
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        time.sleep(hold_s)
        await asyncio.sleep(0)


# Lag targets well above what a shared, noisy machine adds to a calm loop, and loop holds well
# above the targets: the tests check how the pacer steers, not how calm the machine is.
CALM_TARGET_S = 0.03
BUSY_HOLD_S = 0.06


def granted_in(seconds: float, busy: bool, watchers: int = 5) -> tuple[int, ReplayPacer]:
    async def scenario() -> tuple[int, ReplayPacer]:
        pacer = ReplayPacer(2_000, lag_target=CALM_TARGET_S)
        until = asyncio.get_running_loop().time() + seconds
        granted: list[int] = []
        work = [keep_taking(pacer, until, granted) for _ in range(watchers)]
        await asyncio.gather(*work, *([hold_the_loop(until, BUSY_HOLD_S)] if busy else []))
        pacer.close()
        return sum(granted), pacer

    return asyncio.run(scenario())


def test_alone_replay_runs_at_its_ceiling() -> None:
    granted, pacer = granted_in(0.5, busy=False)
    assert 500 <= granted <= 1_300  # 2,000 a second for half a second, give or take a grant per watcher
    assert pacer.rate >= pacer.ceiling / 2


def test_replay_gives_way_while_other_work_holds_the_loop() -> None:
    """Before the pacer followed the loop's lag, a busy loop was granted as much as an idle one."""
    busy, pacer = granted_in(0.6, busy=True)
    assert busy < 2_000 * 0.6 / 4
    assert pacer.rate < pacer.ceiling / 4
    assert busy > 0  # the floor keeps every watcher moving


def test_replay_returns_to_its_ceiling_once_the_loop_is_calm_again() -> None:
    async def scenario() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        pacer = ReplayPacer(2_000, lag_target=CALM_TARGET_S)
        granted: list[int] = []
        busy_until = loop.time() + 0.6
        await asyncio.gather(keep_taking(pacer, busy_until, granted), hold_the_loop(busy_until, BUSY_HOLD_S))
        low = pacer.rate
        await keep_taking(pacer, loop.time() + 2.0, granted)
        pacer.close()
        return low, pacer.rate

    low, after = asyncio.run(scenario())
    assert low <= 2_000 / 4
    assert after >= 2_000 * 0.75


def test_waiters_are_granted_in_arrival_order_and_one_that_leaves_holds_nobody_up() -> None:
    async def scenario() -> list[str]:
        pacer = ReplayPacer(1_000)
        order: list[str] = []

        async def waiter(name: str) -> None:
            await pacer.take(50)
            order.append(name)

        first = asyncio.ensure_future(waiter("first"))
        await asyncio.sleep(0)
        leaving = asyncio.ensure_future(waiter("leaving"))
        await asyncio.sleep(0)
        rest = [asyncio.ensure_future(waiter(name)) for name in ("second", "third")]
        await asyncio.sleep(0)
        leaving.cancel()
        await asyncio.wait_for(asyncio.gather(first, *rest), timeout=2)
        pacer.close()
        return order

    assert asyncio.run(scenario()) == ["first", "second", "third"]


def test_grants_follow_the_rate() -> None:
    """Twenty grants of 50 at 1,000 a second: the first at once, each later one paid for by the
    one before it (0.95 s), never a burst of all of them."""
    async def scenario() -> float:
        pacer = ReplayPacer(1_000)
        loop = asyncio.get_running_loop()
        began = loop.time()
        for _ in range(20):
            await pacer.take(50)
        pacer.close()
        return loop.time() - began

    assert asyncio.run(scenario()) >= 0.9


def test_closing_cancels_whoever_waits() -> None:
    async def scenario() -> None:
        pacer = ReplayPacer(10)
        await pacer.take(10)  # the next grant waits a second for this one to be paid
        waiting = asyncio.ensure_future(pacer.take(10))
        await asyncio.sleep(0.01)
        pacer.close()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(scenario())


def test_a_rate_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        ReplayPacer(0)


def test_the_rate_and_the_waiting_catch_ups_are_exported_as_metrics() -> None:
    from server.api.metrics import Lag, ServerMetrics, StateSources

    async def scenario() -> tuple[float, int]:
        pacer = ReplayPacer(10)
        await pacer.take(10)  # the next grant waits a second for this one to be paid
        waiting = [asyncio.ensure_future(pacer.take(10)) for _ in range(3)]
        await asyncio.sleep(0.01)
        seen = (pacer.rate, pacer.waiting)
        pacer.close()
        await asyncio.gather(*waiting, return_exceptions=True)
        return seen

    rate, waiting = asyncio.run(scenario())
    metrics = ServerMetrics()
    metrics.watch(StateSources(open_calls=dict, neo4j_sessions_in_use=lambda: 0, neo4j_up=lambda: True,
                               linkage_lag=lambda: Lag(0, 0.0), segment_lag=lambda: Lag(0, 0.0),
                               linkage_on=lambda: True, replay=lambda: (rate, waiting)))
    samples = {s.name: s.value for family in metrics.registry.collect() for s in family.samples}
    assert samples["identity_segment_replay_rate"] == 10 and samples["identity_segment_replay_waiting"] == 3
