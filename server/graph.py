"""The one place that talks to Neo4j: the driver, transactions, retries and named queries.

Queries live in `cypher/**/*.cypher`, one per file, named by their path without the
extension (`cypher/ingest/record_touchpoints.cypher` is `ingest/record_touchpoints`). They
are read once at start into a read-only mapping; Python never builds query text, and every
user value reaches Neo4j as a parameter.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, LiteralString, Protocol, TypeVar, cast

import neo4j
from neo4j.exceptions import (
    AuthError,
    DriverError,
    Neo4jError,
    ResultFailedError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)
from neo4j.time import DateTime

from server.errors import ConfigurationError, IdentityError, StorageFailure, StorageUnavailable

log = logging.getLogger(__name__)

CYPHER_DIR = Path(__file__).resolve().parent.parent / "cypher"
SCHEMA_QUERY = "schema"

T = TypeVar("T")
# Where a segment rule's compiled predicate goes in a query template (see Tx.run_rule).
RULE_PLACEHOLDER = "/*RULE*/"
# Whole-transaction attempts when the driver reports a transient error masked as ResultFailedError.
MASKED_RETRIES = 5
# Applying the schema while other servers apply it too (Graph.apply_schema): the time all its
# statements may take with their retries, the backoff between the attempts at one statement,
# and the attempts a statement gets when it keeps finding an existing rule that is not the same.
SCHEMA_RETRY_SECONDS = 60.0
SCHEMA_FIRST_BACKOFF = 0.05
SCHEMA_MAX_BACKOFF = 2.0
SCHEMA_CLASH_ATTEMPTS = 5
# How long a server waits at start for its indexes to populate (Neo4j's own default).
INDEXES_ONLINE_SECONDS = 300
# Maintenance procedures of the graph layer itself, not domain queries: constant text.
AWAIT_INDEXES = "schema/await_indexes"
INDEXES_NOT_ONLINE = "schema/indexes_not_online"


class CompiledPredicate(Protocol):
    """A Cypher boolean expression over `p` and the parameters it names."""

    @property
    def predicate(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, Any]: ...


def load_queries(root: Path = CYPHER_DIR) -> Mapping[str, str]:
    """Reads every named query below root; start fails on an empty file or a missing folder."""
    if not root.is_dir():
        raise ConfigurationError(f"query folder {root} does not exist")
    queries: dict[str, str] = {}
    for path in sorted(root.rglob("*.cypher")):
        name = path.relative_to(root).with_suffix("").as_posix()
        text = path.read_text(encoding="utf-8").strip()
        if not _strip_comments(text):
            raise ConfigurationError(f"query file {path} has no Cypher in it")
        queries[name] = text
    return MappingProxyType(queries)


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("//")).strip()


def split_statements(text: str) -> list[str]:
    """Splits a schema file into its statements (separated by a `;` at the end of a line)."""
    parts = re.split(r";\s*(?:\n|$)", _strip_comments(text))
    return [part.strip() for part in parts if part.strip()]


def epoch_millis(moment: datetime | None) -> int | None:
    """Times cross into Neo4j as epoch milliseconds: the driver's own temporal conversion costs
    more than the query on the ingest path. Queries turn them into datetimes."""
    return None if moment is None else int(moment.timestamp() * 1000)


def to_datetime(value: object) -> datetime | None:
    """A time read from Neo4j (epoch milliseconds, or a driver DateTime) as an aware datetime."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, UTC)
    return cast(DateTime, value).to_native()  # neither None, datetime nor int: a driver DateTime


@dataclass(frozen=True)
class Neo4jSettings:
    uri: str
    user: str
    password: str = field(repr=False)  # never in a log line or a traceback's locals
    database: str = "neo4j"
    # how long the driver retries a transaction through transient errors and an unreachable
    # Neo4j before the call fails UNAVAILABLE (the driver's default is 30 s)
    retry_seconds: float = 30.0


class Graph:
    """Runs named queries in managed transactions that the driver retries on transient errors.

    Write queries must therefore be idempotent: every write MERGEs on a natural key.
    """

    def __init__(self, settings: Neo4jSettings, queries: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.queries = queries if queries is not None else load_queries()
        self._in_use = 0
        self._in_use_lock = threading.Lock()
        # told each named query's seconds (sent to records read): where Neo4j's time goes, by
        # query, is a metric (identity_neo4j_query_seconds), and the profile of bench/profile_ingest
        self.query_observers: list[Callable[[str, float], None]] = []
        self._driver = neo4j.GraphDatabase.driver(
            settings.uri,
            auth=(settings.user, settings.password),
            notifications_min_severity=neo4j.NotificationMinimumSeverity.WARNING,
            # "unknown label or property" is normal on a fresh database, before the first write
            notifications_disabled_classifications=[neo4j.NotificationDisabledClassification.UNRECOGNIZED],
            # deadlocks between concurrent batches are expected and cheap to retry: start the
            # driver's backoff at 20 ms instead of a whole second
            initial_retry_delay=0.02,
            max_transaction_retry_time=settings.retry_seconds,
        )

    def __enter__(self) -> Graph:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._driver.close()

    def verify(self) -> None:
        """Checks that Neo4j answers and accepts the credentials; raises a message for operators."""
        try:
            self._driver.verify_connectivity()
        except AuthError as exc:
            raise ConfigurationError(
                f"Neo4j at {self.settings.uri} rejected user {self.settings.user!r}: wrong password? "
                f"Set NEO4J_PASSWORD (or --neo4j-password) to that server's password. ({exc.message})"
            ) from exc
        except (ServiceUnavailable, DriverError, OSError) as exc:
            raise StorageUnavailable(f"Neo4j at {self.settings.uri} is not reachable: {exc}") from exc

    def query(self, name: str) -> LiteralString:
        """The text of a named query: read from cypher/ at start, never built from user input."""
        try:
            return _trusted(self.queries[name])
        except KeyError:
            raise ConfigurationError(f"no query named {name!r} in {CYPHER_DIR}") from None

    def read(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """Runs a named read query and returns its records as dicts."""
        query = self.query(name)
        began = time.perf_counter()
        records = self._run(name, lambda session: session.execute_read(_records, query, params))
        self.observe(name, began)
        return records

    def observe(self, name: str, began: float) -> None:
        if self.query_observers:
            seconds = time.perf_counter() - began
            for observer in self.query_observers:
                observer(name, seconds)

    def read_once(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """Runs a named read query as one auto-commit round trip (a managed transaction takes
        three), for the lookup hot path; retried once on a transient error."""
        query = self.query(name)
        for attempt in (1, 2):
            try:
                began = time.perf_counter()
                with self._driver.session(database=self.settings.database,
                                          default_access_mode=neo4j.READ_ACCESS) as session:
                    records = [dict(record) for record in session.run(query, params)]
                self.observe(name, began)
                return records
            except (ServiceUnavailable, SessionExpired, TransientError) as exc:
                if attempt == 2:
                    raise StorageUnavailable(f"Neo4j is unavailable: {exc}") from exc
            except Neo4jError as exc:
                log.error("query %s failed: %s", name, exc)
                raise StorageFailure(f"the graph store failed on {name}; see the server log") from exc
        raise AssertionError("unreachable")

    def transaction(self, label: str, work: Callable[[Tx], T]) -> T:
        """Runs work in one write transaction that the driver retries on transient errors.

        work may run more than once, so it must not have effects outside the transaction;
        everything it decides is recomputed from what it reads on each attempt.
        """
        for attempt in range(MASKED_RETRIES):
            try:
                return self._run(label, lambda session: session.execute_write(lambda tx: work(Tx(self, tx))))
            except ResultFailedError as exc:
                # a deadlock in one query can surface as ResultFailedError while the driver rolls
                # back, which its own retry does not recognise; the cause is transient all the same
                if attempt == MASKED_RETRIES - 1 or not _transient_cause(exc):
                    raise
                log.warning("%s: a transient error was masked by %s; retrying the transaction", label, exc)
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def read_transaction(self, label: str, work: Callable[[Tx], T]) -> T:
        """Runs work in one read transaction (retried on transient errors), for reads that run
        several named queries, or templates (Tx.run_rule)."""
        return self._run(label, lambda session: session.execute_read(lambda tx: work(Tx(self, tx))))

    def stream(self, name: str, fetch_size: int | None = None, **params: Any) -> Iterator[dict[str, Any]]:
        """Yields the records of a named read query one at a time, in constant memory.

        Uses an explicit read transaction (not retried: records already yielded cannot be
        taken back), fetching in batches of the driver's fetch size.
        """
        query = self.query(name)
        try:
            with self._session(fetch_size) as session, session.begin_transaction() as tx:
                for record in tx.run(query, params):
                    yield dict(record)
        except (ServiceUnavailable, SessionExpired, TransientError) as exc:
            raise StorageUnavailable(f"Neo4j failed while streaming {name}: {exc}") from exc
        except Neo4jError as exc:
            log.error("query %s failed: %s", name, exc)
            raise StorageFailure(f"the graph store failed on {name}; see the server log") from exc

    def run_batched(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """Runs a query that commits in batches itself (CALL ... IN TRANSACTIONS): auto-commit only."""
        query = self.query(name)
        return self._run(name, lambda session: [record.data() for record in session.run(query, params)])

    def apply_schema(self, retry_seconds: float = SCHEMA_RETRY_SECONDS,
                     online_seconds: int = INDEXES_ONLINE_SECONDS) -> int:
        """Applies `cypher/schema.cypher` (constraints and indexes, all IF NOT EXISTS), then waits
        until every index is ONLINE, so that a server never serves before its indexes exist.

        Servers that start together run the same statements at the same moment: one may be
        chosen as a deadlock victim, or find the rule that another created an instant earlier.
        Each statement is therefore run again after such errors, within retry_seconds in all.
        Raises StorageUnavailable when Neo4j keeps failing transiently or the indexes do not
        come online in time, and ConfigurationError when Neo4j refuses a statement for good.
        """
        statements = split_statements(self.queries[SCHEMA_QUERY])
        deadline = time.monotonic() + retry_seconds
        for statement in statements:
            try:
                self._run_schema_command(_trusted(statement), {}, deadline)
            except (Neo4jError, DriverError) as exc:
                raise _schema_error(statement, exc, retry_seconds) from exc
        self._await_indexes(online_seconds, time.monotonic() + retry_seconds)
        return len(statements)

    def _run_schema_command(self, command: LiteralString, params: dict[str, Any], deadline: float) -> None:
        """Runs one idempotent schema command in its own auto-commit transaction, and again, after
        a growing and jittered pause, while it fails as servers that start together make it fail
        (_schema_race); the last error is raised once the deadline or the clash attempts are spent."""
        delay, clashes = SCHEMA_FIRST_BACKOFF, 0
        while True:
            try:
                with self._session() as session:
                    session.run(command, params).consume()
                return
            except (Neo4jError, DriverError) as exc:
                race = _schema_race(exc)
                clashes += race == "clash"
                if race is None or clashes >= SCHEMA_CLASH_ATTEMPTS or time.monotonic() + delay > deadline:
                    raise
                log.warning("schema: %s failed with %s (%s); running it again in %.2f s",
                            command.splitlines()[0], _error_code(exc), race, delay)
                time.sleep(random.uniform(delay / 2, delay))  # jitter: racing servers fall out of step
                delay = min(2 * delay, SCHEMA_MAX_BACKOFF)

    def _await_indexes(self, online_seconds: int, deadline: float) -> None:
        """Waits until every index is ONLINE: one created on a big graph populates for a while."""
        began = time.monotonic()
        try:
            self._run_schema_command(self.query(AWAIT_INDEXES), {"seconds": online_seconds}, deadline)
        except (Neo4jError, DriverError) as exc:
            pending = ", ".join(f"{r['name']} ({r['state']})" for r in self._indexes_not_online()) or "none by now"
            raise StorageUnavailable(f"Neo4j's indexes did not come ONLINE within {online_seconds} s "
                                     f"(not ONLINE: {pending}): {_error_message(exc)[:200]}") from exc
        if time.monotonic() - began > 1:
            log.info("Neo4j's indexes came ONLINE after %.1f s", time.monotonic() - began)

    def _indexes_not_online(self) -> list[dict[str, Any]]:
        try:
            with self._session() as session:
                return [dict(record) for record in session.run(self.query(INDEXES_NOT_ONLINE))]
        except (Neo4jError, DriverError):
            return []  # only for the message of an error already being raised

    @contextmanager
    def _session(self, fetch_size: int | None = None) -> Iterator[neo4j.Session]:
        """A session, counted while in use (each holds a pooled connection): a metric operators watch."""
        if fetch_size:
            session = self._driver.session(database=self.settings.database, fetch_size=fetch_size)
        else:
            session = self._driver.session(database=self.settings.database)
        with self._in_use_lock:
            self._in_use += 1
        try:
            with session:
                yield session
        finally:
            with self._in_use_lock:
                self._in_use -= 1

    @property
    def sessions_in_use(self) -> int:
        return self._in_use

    def ping(self) -> None:
        """One auto-commit query, never retried: the readiness probe wants the answer now.
        Raises StorageUnavailable when Neo4j does not answer."""
        try:
            with self._session() as session:
                session.run(self.query("health/ping")).consume()
        except (Neo4jError, DriverError, OSError) as exc:
            raise StorageUnavailable(f"Neo4j does not answer: {exc}") from exc

    def _run(self, name: str, work: Callable[[neo4j.Session], T]) -> T:
        """Runs work in a session; Neo4j's errors become the service's, with the query named in the log."""
        try:
            with self._session() as session:
                return work(session)
        except (ServiceUnavailable, SessionExpired, TransientError) as exc:
            raise StorageUnavailable(f"Neo4j is unavailable: {exc}") from exc
        except Neo4jError as exc:
            if exc.is_retryable():
                raise StorageUnavailable(f"Neo4j kept failing transiently: {exc}") from exc
            log.error("query %s failed: %s", name, exc)
            raise StorageFailure(f"the graph store failed on {name}; see the server log") from exc


class Tx:
    """A transaction that runs named queries, handed to the work of Graph.transaction."""

    def __init__(self, graph: Graph, tx: neo4j.ManagedTransaction) -> None:
        self._graph = graph
        self._tx = tx

    def run(self, name: str, **params: Any) -> list[dict[str, Any]]:
        began = time.perf_counter()
        records = _records(self._tx, self._graph.query(name), params)
        self._graph.observe(name, began)
        return records

    def run_rule(self, name: str, rule: CompiledPredicate, **params: Any) -> list[dict[str, Any]]:
        """Runs a named query template whose one RULE_PLACEHOLDER takes a segment rule's compiled
        predicate. The predicate is built by server/identity/segments/compile.py from constant
        fragments and generated parameter names only; every user value is in rule.parameters."""
        template = self._graph.query(name)
        if template.count(RULE_PLACEHOLDER) != 1:
            raise ConfigurationError(f"query {name!r} must hold {RULE_PLACEHOLDER} exactly once")
        clash = set(rule.parameters) & set(params)
        if clash:
            raise ConfigurationError(f"rule parameters {sorted(clash)} clash with those of {name!r}")
        query = _trusted(template.replace(RULE_PLACEHOLDER, rule.predicate))
        began = time.perf_counter()
        records = _records(self._tx, query, {**params, **rule.parameters})
        self._graph.observe(name, began)
        return records


def _trusted(text: str) -> LiteralString:
    """Query text from cypher/ (or a template filled with compile.py's constant fragments): the
    driver types queries as LiteralString, and this is the one place text read at start becomes one."""
    return cast(LiteralString, text)  # type: ignore[redundant-cast]  # mypy reads LiteralString as str; pyright does not


def _transient_cause(exc: BaseException) -> bool:
    """Whether a retryable Neo4j error stands behind exc (its cause or context chain)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (TransientError, ServiceUnavailable, SessionExpired)) or (
                isinstance(current, Neo4jError) and current.is_retryable()):
            return True
        current = current.__cause__ or current.__context__
    return False


SchemaRace = Literal["transient", "clash"]
# Concurrent CREATE ... IF NOT EXISTS can fail with one of these when another transaction has
# just created the rule: EquivalentSchemaRuleAlreadyExists, IndexAlreadyExists, ...WithNameAlreadyExists
_ALREADY_EXISTS = re.compile(r"Neo\.ClientError\.Schema\.\w*AlreadyExists")


def _schema_race(exc: BaseException) -> SchemaRace | None:
    """Whether a schema command failed as servers starting together make it fail, so that running
    it again may succeed: a transient error (a deadlock), or a clash with a rule just created."""
    if _transient_cause(exc):
        return "transient"
    if isinstance(exc, Neo4jError) and _ALREADY_EXISTS.fullmatch(exc.code or ""):
        return "clash"
    return None


def _schema_error(statement: str, exc: Neo4jError | DriverError, retry_seconds: float) -> IdentityError:
    """The operator's message for a schema statement that could not be applied."""
    head, message = statement.splitlines()[0], _error_message(exc)
    race = _schema_race(exc)
    if race == "transient":
        return StorageUnavailable(f"applying the schema kept failing transiently for {retry_seconds:g} s, "
                                  f"last on {head!r}: {message}")
    if race == "clash":
        return ConfigurationError(f"the schema statement {head!r} clashes with a different constraint or "
                                  f"index already in Neo4j; drop that one and start again: {message}")
    return ConfigurationError(f"Neo4j refused the schema statement {head!r}: {message}")


def _error_code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, Neo4jError) else type(exc).__name__


def _error_message(exc: Neo4jError | DriverError) -> str:
    return (exc.message if isinstance(exc, Neo4jError) else "") or str(exc)


def _records(tx: neo4j.ManagedTransaction, query: LiteralString, params: dict[str, Any]) -> list[dict[str, Any]]:
    # dict(record), not record.data(): queries return plain values, and data()'s recursive
    # conversion of graph types costs a third of a lookup
    return [dict(record) for record in tx.run(query, params)]
