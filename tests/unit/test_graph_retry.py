"""Retries in the graph layer: a transient error the driver masks as ResultFailedError while it
rolls back, and the schema applied by servers that start together."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from neo4j.exceptions import Neo4jError, ResultFailedError, TransientError

import server.graph as graph_module
from server.errors import ConfigurationError, StorageUnavailable
from server.graph import Graph, Neo4jSettings, _transient_cause, load_queries


def masked(cause: BaseException) -> ResultFailedError:
    try:
        try:
            raise cause
        except BaseException:
            raise ResultFailedError(None, "The result has failed.")
    except ResultFailedError as exc:
        return exc


def test_a_deadlock_behind_a_failed_result_counts_as_transient() -> None:
    deadlock = TransientError._hydrate_neo4j(code="Neo.TransientError.Transaction.DeadlockDetected",
                                             message="deadlock detected")
    assert _transient_cause(masked(deadlock))


def test_a_failed_result_with_no_transient_cause_is_not_retried() -> None:
    assert not _transient_cause(masked(ValueError("a bug")))


# Applying the schema while other servers apply it too: each statement is run again after the
# errors that racing servers cause, within a bounded time, and anything else fails at once.

SCHEMA = """
CREATE CONSTRAINT touchpoint_event_id IF NOT EXISTS
FOR (t:Touchpoint) REQUIRE t.event_id IS UNIQUE;

CREATE INDEX touchpoint_occurred_at IF NOT EXISTS
FOR (t:Touchpoint) ON (t.occurred_at);
"""


def neo4j_error(code: str, message: str = "as the test says") -> Neo4jError:
    return Neo4jError._hydrate_neo4j(code=code, message=message)


def deadlock() -> Neo4jError:
    return neo4j_error("Neo.TransientError.Transaction.DeadlockDetected", "can't acquire UpdateLock on LABEL(0)")


def rule_just_created() -> Neo4jError:
    return neo4j_error("Neo.ClientError.Schema.EquivalentSchemaRuleAlreadyExists", "An equivalent index already exists")


class FakeNeo4j:
    """Sessions that run nothing: a query fails with the errors queued under a word it holds,
    one per run, then succeeds; SHOW INDEXES answers with the indexes given as not online."""

    def __init__(self, failures: dict[str, list[Neo4jError]] | None = None,
                 not_online: list[dict[str, Any]] | None = None) -> None:
        self.failures = failures or {}
        self.not_online = not_online or []
        self.ran: list[tuple[str, dict[str, Any]]] = []

    @contextmanager
    def session(self, fetch_size: int | None = None) -> Iterator[FakeNeo4j]:
        yield self

    def run(self, query: str, params: dict[str, Any] | None = None) -> FakeResult:
        self.ran.append((query, params or {}))
        for word, errors in self.failures.items():
            if word in query and errors:
                raise errors.pop(0)
        return FakeResult(self.not_online if "SHOW INDEXES" in query else [])

    def runs_of(self, word: str) -> int:
        return sum(word in query for query, _ in self.ran)


class FakeResult(list[dict[str, Any]]):
    def consume(self) -> None:
        return None


class FakeClock:
    """Stands in for the time module in server.graph: sleeping advances the clock at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(graph_module, "time", fake)
    return fake


@pytest.fixture
def graph() -> Iterator[Graph]:
    # the driver connects on first use only, and the tests hand it no work
    queries = {**load_queries(), "schema": SCHEMA}  # the real schema/* commands, a small schema
    with Graph(Neo4jSettings("bolt://127.0.0.1:7", "neo4j", "unused", "neo4j"), queries=queries) as graph:
        yield graph


def with_neo4j(graph: Graph, fake: FakeNeo4j, monkeypatch: pytest.MonkeyPatch) -> FakeNeo4j:
    monkeypatch.setattr(graph, "_session", fake.session)
    return fake


def test_a_schema_statement_chosen_as_deadlock_victim_is_run_again_until_it_succeeds(
        graph: Graph, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    fake = with_neo4j(graph, FakeNeo4j({"touchpoint_event_id": [deadlock(), deadlock(), deadlock()]}), monkeypatch)
    with caplog.at_level(logging.WARNING, logger="server.graph"):
        assert graph.apply_schema() == 2
    assert fake.runs_of("touchpoint_event_id") == 4 and fake.runs_of("touchpoint_occurred_at") == 1
    assert len(clock.sleeps) == 3 and clock.sleeps == sorted(clock.sleeps), "the backoff grows"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all("touchpoint_event_id" in w and "DeadlockDetected" in w for w in warnings)


def test_a_rule_that_another_server_created_a_moment_before_is_not_an_error(
        graph: Graph, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = with_neo4j(graph, FakeNeo4j({"touchpoint_occurred_at": [rule_just_created()]}), monkeypatch)
    assert graph.apply_schema() == 2
    assert fake.runs_of("touchpoint_occurred_at") == 2


def test_the_schema_is_applied_before_waiting_for_the_indexes_to_come_online(
        graph: Graph, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = with_neo4j(graph, FakeNeo4j(), monkeypatch)
    graph.apply_schema(online_seconds=42)
    first_words = [next(line for line in query.splitlines() if not line.startswith("//")).split()[0]
                   for query, _ in fake.ran]  # the named query starts with its comment
    assert first_words == ["CREATE", "CREATE", "CALL"]
    assert fake.ran[-1][0].endswith("CALL db.awaitIndexes($seconds)") and fake.ran[-1][1] == {"seconds": 42}


def test_neo4j_that_keeps_deadlocking_fails_the_start_as_unavailable_within_the_bound(
        graph: Graph, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    with_neo4j(graph, FakeNeo4j({"touchpoint_event_id": [deadlock() for _ in range(1000)]}), monkeypatch)
    with pytest.raises(StorageUnavailable, match="kept failing transiently for 10 s.*touchpoint_event_id.*UpdateLock"):
        graph.apply_schema(retry_seconds=10)
    assert clock.now <= 10 and clock.sleeps


def test_a_clash_with_a_different_rule_that_stays_is_a_configuration_error(
        graph: Graph, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    clash = [neo4j_error("Neo.ClientError.Schema.IndexAlreadyExists", "There already exists an index") for _ in range(100)]
    fake = with_neo4j(graph, FakeNeo4j({"touchpoint_event_id": clash}), monkeypatch)
    with pytest.raises(ConfigurationError, match="touchpoint_event_id.*clashes.*There already exists an index"):
        graph.apply_schema()
    assert fake.runs_of("touchpoint_event_id") == graph_module.SCHEMA_CLASH_ATTEMPTS


def test_a_statement_neo4j_refuses_fails_the_start_at_once_with_its_reason(
        graph: Graph, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = neo4j_error("Neo.ClientError.Statement.SyntaxError", "Invalid input 'CONSTRAIN'")
    fake = with_neo4j(graph, FakeNeo4j({"touchpoint_event_id": [refused]}), monkeypatch)
    with pytest.raises(ConfigurationError, match="refused the schema statement.*Invalid input 'CONSTRAIN'"):
        graph.apply_schema()
    assert fake.runs_of("touchpoint_event_id") == 1 and not clock.sleeps


def test_indexes_that_do_not_come_online_in_time_fail_the_start_naming_them(
        graph: Graph, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    timeout = neo4j_error("Neo.ClientError.Procedure.ProcedureCallFailed", "Expected all indexes to come online")
    with_neo4j(graph, FakeNeo4j({"awaitIndexes": [timeout]},
                                not_online=[{"name": "touchpoint_occurred_at", "state": "POPULATING"}]), monkeypatch)
    with pytest.raises(StorageUnavailable, match=r"within 5 s \(not ONLINE: touchpoint_occurred_at \(POPULATING\)\)"):
        graph.apply_schema(online_seconds=5)
