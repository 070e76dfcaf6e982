"""The local Neo4j launcher: reuse, clear errors. The docker path where an engine exists."""

from __future__ import annotations

import pytest

from localneo4j import LaunchError, LocalNeo4j, Neo4jTarget, docker_unavailable_reason, provision


@pytest.fixture
def local_only(neo4j_target: Neo4jTarget) -> LocalNeo4j:
    if neo4j_target.origin != "local":
        pytest.skip(f"this run's Neo4j comes from {neo4j_target.origin}, not the local launcher")
    return LocalNeo4j()


def test_launcher_reuses_a_running_instance(local_only: LocalNeo4j) -> None:
    pid_before = local_only.pid()
    assert local_only.start() is False
    assert local_only.pid() == pid_before


def test_launcher_names_the_password_when_the_running_instance_rejects_it(local_only: LocalNeo4j) -> None:
    wrong = LocalNeo4j(password="not-the-password-at-all")
    with pytest.raises(LaunchError, match="rejected user 'neo4j' with the password from NEO4J_PASSWORD"):
        wrong.start()


def test_launcher_refuses_a_port_taken_by_something_else(tmp_path) -> None:
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        other = LocalNeo4j(home=tmp_path, bolt_port=port)
        with pytest.raises(LaunchError, match=f"port {port} is taken"):
            other.start(timeout=5)


def test_launcher_reports_missing_java(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk-here"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LaunchError, match="Java is missing"):
        LocalNeo4j(home=tmp_path, bolt_port=1, http_port=2).start(timeout=5)


def test_docker_runtime_without_an_engine_says_why(monkeypatch) -> None:
    reason = docker_unavailable_reason()
    if reason is None:
        pytest.skip("a Docker engine is reachable here; test_docker_runtime_gives_a_working_neo4j covers it")
    monkeypatch.delenv("NEO4J_URI", raising=False)
    monkeypatch.setenv("NEO4J_RUNTIME", "docker")
    with pytest.raises(LaunchError, match="NEO4J_RUNTIME=docker, but"):
        provision()


@pytest.mark.docker
def test_docker_runtime_gives_a_working_neo4j(monkeypatch) -> None:
    reason = docker_unavailable_reason()
    if reason is not None:
        pytest.skip(f"testcontainers needs a Docker engine: {reason}")
    from neo4j import GraphDatabase

    monkeypatch.delenv("NEO4J_URI", raising=False)
    monkeypatch.setenv("NEO4J_RUNTIME", "docker")
    target = provision()
    try:
        with GraphDatabase.driver(target.uri, auth=(target.user, target.password)) as driver:
            assert driver.execute_query("RETURN 1 AS one").records[0]["one"] == 1
    finally:
        target.release()


def test_a_second_instance_starts_on_its_own_ports_and_stops_cleanly(tmp_path) -> None:
    import socket
    import time

    from neo4j import GraphDatabase

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    other = LocalNeo4j(home=tmp_path / "neo4j", bolt_port=free_port(), http_port=free_port(), heap="512m",
                       pagecache="128m")
    assert other.start(timeout=180) is True
    try:
        with GraphDatabase.driver(other.uri, auth=(other.user, other.password)) as driver:
            assert driver.execute_query("RETURN 1 AS one").records[0]["one"] == 1
    finally:
        began = time.monotonic()
        assert other.stop() is True
    assert time.monotonic() - began < 30, "stop waited for a process that had already exited"
    assert other.pid() is None and not other.bolt_answers()
