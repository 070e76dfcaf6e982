"""The work pools (server/api/work.py) and the counting of refused calls (server/access/audit.py),
without Neo4j."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from server.access.audit import AuditEntry, refusal_rows
from server.api.work import WorkPool, WorkPools
from server.batching import Coalescer
from server.errors import ResourceExhausted


def test_a_pool_runs_blocking_calls_off_the_loop_on_at_most_its_threads() -> None:
    pool = WorkPool("test", 2)
    running, most = 0, 0
    lock = threading.Lock()
    release = threading.Event()

    def call(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(5)
        with lock:
            running -= 1
        return n * 2

    async def scenario() -> list[int]:
        calls = [asyncio.ensure_future(pool.run(call, n)) for n in range(6)]
        await asyncio.sleep(0.1)
        release.set()
        return list(await asyncio.gather(*calls))

    try:
        assert asyncio.run(scenario()) == [0, 2, 4, 6, 8, 10]
        assert most == 2
    finally:
        pool.shutdown()


def test_iterate_fetches_a_blocking_iterator_in_chunks_and_closes_it() -> None:
    pool = WorkPool("test", 1)
    closed = threading.Event()

    def numbers() -> Iterator[int]:
        try:
            yield from range(10)
        finally:
            closed.set()

    async def scenario() -> list[int]:
        return [n async for n in pool.iterate(numbers, chunk=3)]

    try:
        assert asyncio.run(scenario()) == list(range(10))
        assert closed.wait(5)
    finally:
        pool.shutdown()


def test_imports_have_a_pool_of_their_own() -> None:
    pools = WorkPools.of_size(16)
    try:
        assert len({id(pools.ingest), id(pools.read), id(pools.admin), id(pools.imports)}) == 4
        assert pools.imports.threads == 4 and pools.admin.threads == 4
    finally:
        pools.shutdown()


def test_refused_calls_are_counted_per_minute_caller_method_and_outcome() -> None:
    at = datetime(2026, 12, 5, 10, 0, 30, tzinfo=UTC)
    later = datetime(2026, 12, 5, 10, 1, 5, tzinfo=UTC)
    entries = [AuditEntry("(no token)", "Ingest", "", "UNAUTHENTICATED", "needs a token", "ipv4:1.2.3.4", at)] * 250
    entries += [AuditEntry("(no token)", "Ingest", "", "UNAUTHENTICATED", "needs a token", "ipv4:5.6.7.8", later)] * 3
    entries += [AuditEntry("web", "ForgetProfile", "", "PERMISSION_DENIED", "needs admin", "ipv4:1.2.3.4", at)]
    entries += [AuditEntry("(many)", "(refused calls)", "", "DROPPED", "not told apart", "", at, count=40)]
    rows = refusal_rows(entries)
    assert [(r["caller"], r["method"], r["count"], r["peer"]) for r in rows] == [
        ("(many)", "(refused calls)", 40, ""),
        ("(no token)", "Ingest", 250, "ipv4:1.2.3.4"),
        ("(no token)", "Ingest", 3, "ipv4:5.6.7.8"),
        ("web", "ForgetProfile", 1, "ipv4:1.2.3.4"),
    ]
    assert {r["minute"] for r in rows} == {int(at.timestamp()) // 60 * 60_000, int(later.timestamp()) // 60 * 60_000}


def test_a_full_pool_queue_refuses_the_call_naming_the_pool() -> None:
    pool = WorkPool("ingest", 1, queue_limit=2)
    release = threading.Event()

    async def scenario() -> None:
        held = [asyncio.ensure_future(pool.run(release.wait, 5)) for _ in range(2)]
        await asyncio.sleep(0)  # both are placed
        with pytest.raises(ResourceExhausted, match="the ingest pool has 2 calls waiting or running"):
            await pool.run(release.wait, 5)
        release.set()
        await asyncio.gather(*held)
        assert pool.queued == 0 and await pool.run(lambda: 7) == 7  # room again

    try:
        asyncio.run(scenario())
    finally:
        pool.shutdown()


def test_the_lookup_coalescer_refuses_beyond_its_waiting_limit() -> None:
    release = threading.Event()

    def answer(keys: list[int]) -> list[int]:
        release.wait(5)
        return keys

    coalescer: Coalescer[int, int] = Coalescer(answer, max_size=1, workers=1, max_waiting=2)

    async def scenario() -> None:
        first = coalescer.ask_soon(1)  # taken by the worker, which blocks
        await asyncio.sleep(0.05)
        waiting = [coalescer.ask_soon(2), coalescer.ask_soon(3)]
        with pytest.raises(ResourceExhausted, match="2 lookups wait"):
            coalescer.ask_soon(4)
        release.set()
        assert [await first, *[await w for w in waiting]] == [1, 2, 3]

    try:
        asyncio.run(scenario())
    finally:
        coalescer.close()
