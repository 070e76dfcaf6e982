"""Chooses the Neo4j to use: an existing one, a testcontainer, or the local process."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from localneo4j.launcher import DEFAULT_PASSWORD, DEFAULT_USER, LaunchError, LocalNeo4j

DOCKER_IMAGE = "neo4j:5.26-community"


@dataclass(frozen=True)
class Neo4jTarget:
    """How to reach one Neo4j, and how to release it when done."""

    uri: str
    user: str
    password: str
    database: str
    origin: str  # "env", "docker" or "local"
    release: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)


def _database() -> str:
    return os.environ.get("NEO4J_DATABASE", "neo4j")


def docker_unavailable_reason() -> str | None:
    """None when a Docker engine answers; otherwise why testcontainers cannot be used."""
    try:
        import docker  # installed with testcontainers
    except ImportError:
        return "the docker package is not installed (pip install -e .[test])"
    try:
        docker.from_env().ping()
    except Exception as exc:  # the docker client raises many kinds for "no engine"
        return f"no Docker engine is reachable ({type(exc).__name__}: {exc})"
    return None


def provision(start_local: bool = True) -> Neo4jTarget:
    """Returns the Neo4j to use, starting a container or a local process where needed."""
    if os.environ.get("NEO4J_URI"):
        return Neo4jTarget(
            uri=os.environ["NEO4J_URI"],
            user=os.environ.get("NEO4J_USER", DEFAULT_USER),
            password=os.environ.get("NEO4J_PASSWORD", DEFAULT_PASSWORD),
            database=_database(),
            origin="env",
        )
    if os.environ.get("NEO4J_RUNTIME") == "docker":
        return _container()
    local = LocalNeo4j()
    if start_local:
        local.start()
    return Neo4jTarget(uri=local.uri, user=local.user, password=local.password, database=_database(), origin="local")


def _container() -> Neo4jTarget:
    reason = docker_unavailable_reason()
    if reason is not None:
        raise LaunchError(f"NEO4J_RUNTIME=docker, but {reason}")
    from testcontainers.neo4j import Neo4jContainer

    password = os.environ.get("NEO4J_PASSWORD", DEFAULT_PASSWORD)
    container = Neo4jContainer(image=os.environ.get("NEO4J_DOCKER_IMAGE", DOCKER_IMAGE), password=password)
    container.start()
    return Neo4jTarget(
        uri=container.get_connection_url(),
        user=DEFAULT_USER,
        password=password,
        database=_database(),
        origin="docker",
        release=container.stop,
    )
