"""Servers started at the same moment against a database without its schema all come up.

Each server applies `cypher/schema.cypher` at start; concurrent schema commands deadlock or
find the rule another server just created. The test starts several real server processes
held at a barrier after their imports, drops the schema, releases them together, and expects
every one to report SERVING with the schema complete and its indexes ONLINE. The tests share
one Neo4j, so the schema is restored afterwards, whatever happens, and checked to be as it was.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from neo4j import Driver

from server.graph import Graph, Neo4jSettings, load_queries, split_statements

REPO = Path(__file__).resolve().parents[2]
SERVERS = 4
START_TIMEOUT = 120.0

# `python -m server`'s own main(), run once the slow imports are done and the test says go:
# the processes then reach Neo4j within a millisecond of one another, not a second apart.
AT_THE_BARRIER = (
    "import sys\n"
    "from server.__main__ import main\n"
    "print('at the barrier', flush=True)\n"
    "sys.stdin.readline()\n"
    "sys.exit(main(sys.argv[1:]))\n"
)

SchemaSnapshot = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def schema_rules() -> list[tuple[str, str]]:
    """(kind, name) of every constraint and index that schema.cypher creates."""
    rules = [re.match(r"CREATE (CONSTRAINT|INDEX) (\w+) IF NOT EXISTS", s) for s in
             split_statements(load_queries()["schema"])]
    assert all(rules), "every schema statement is a named CREATE ... IF NOT EXISTS"
    return [(m.group(1), m.group(2)) for m in rules if m]


def schema_snapshot(driver: Driver) -> SchemaSnapshot:
    """The database's constraints and indexes as SHOW lists them, without their ids."""
    constraints, _, _ = driver.execute_query(
        "SHOW CONSTRAINTS YIELD name, type, entityType, labelsOrTypes, properties, ownedIndex "
        "RETURN * ORDER BY name")
    indexes, _, _ = driver.execute_query(
        "SHOW INDEXES YIELD name, type, entityType, labelsOrTypes, properties, owningConstraint, state "
        "RETURN * ORDER BY name")
    return [r.data() for r in constraints], [r.data() for r in indexes]


def drop_schema(driver: Driver) -> None:
    # names from our own schema file, checked to be plain words above: DROP takes no parameters
    for kind, name in schema_rules():
        driver.execute_query(f"DROP {kind} {name} IF EXISTS")


@pytest.fixture
def schema_before(graph: Graph, driver: Driver) -> Iterator[SchemaSnapshot]:
    """The schema as it was (complete: the graph fixture applied it); restored afterwards,
    whatever the test did to it, and checked to be as it was."""
    before = schema_snapshot(driver)
    try:
        yield before
    finally:
        graph.apply_schema()
    assert schema_snapshot(driver) == before


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_at_barrier(neo4j: Neo4jSettings, port: int, log: Path) -> subprocess.Popen[bytes]:
    # no collector and no operators' port: servers started together must not contend for one
    env = {**os.environ, "IDENTITY_COLLECT_LISTEN": "off", "IDENTITY_HTTP_LISTEN": "off",
           "NEO4J_URI": neo4j.uri, "NEO4J_USER": neo4j.user, "NEO4J_PASSWORD": neo4j.password,
           "NEO4J_DATABASE": neo4j.database}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-c", AT_THE_BARRIER, "--listen", f"127.0.0.1:{port}"],
                                cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)


def wait_for_text(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n{log.read_text(errors='replace')}"
        time.sleep(0.05)


def release(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.flush()  # flushed in a second pass, so that the writes are microseconds apart
        proc.stdin.close()


def health(port: int) -> int:
    """The server's overall health status, or -1 while it does not answer."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status
        except grpc.RpcError:
            return -1


def wait_serving(port: int, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while health(port) != health_pb2.HealthCheckResponse.SERVING:
        assert proc.poll() is None, f"server died with {proc.returncode}:\n{log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"server not SERVING in time:\n{log.read_text(errors='replace')}"
        time.sleep(0.1)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_servers_started_together_on_a_database_without_schema_all_serve(
        schema_before: SchemaSnapshot, driver: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path) -> None:
    ports = [free_port() for _ in range(SERVERS)]
    logs = [tmp_path / f"server-{n}.log" for n in range(SERVERS)]
    procs = [start_at_barrier(neo4j_settings, port, log) for port, log in zip(ports, logs)]
    try:
        for proc, log in zip(procs, logs):
            wait_for_text(log, "at the barrier", proc, START_TIMEOUT)
        drop_schema(driver)  # only now, so that other work on this database misses it for a moment only
        constraints, indexes = schema_snapshot(driver)
        assert not {name for _, name in schema_rules()} & {r["name"] for r in constraints + indexes}
        release(procs)
        deadline = time.monotonic() + START_TIMEOUT
        for port, proc, log in zip(ports, procs, logs):
            wait_serving(port, proc, log, deadline)
        assert [proc.poll() for proc in procs] == [None] * SERVERS, "every server is still running"
        assert schema_snapshot(driver) == schema_before, "the schema is complete and every index ONLINE"
        outputs = [log.read_text(errors="replace") for log in logs]
        assert not [out for out in outputs if "Traceback" in out or "cannot start" in out]
    finally:
        stop(procs)
