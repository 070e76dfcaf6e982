"""Shared fixtures: one Neo4j per test session, tests isolated by data (unique ids), not restarts."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from localneo4j import LaunchError, Neo4jTarget, provision

# Servers that tests start, in this process or as subprocesses, serve their operators' HTTP
# port on any free port: several run at once, and 9464 may be taken by a `make run`.
os.environ.setdefault("IDENTITY_HTTP_LISTEN", "127.0.0.1:0")


@pytest.fixture(scope="session")
def neo4j_target() -> Iterator[Neo4jTarget]:
    """The Neo4j of this run: NEO4J_URI, a testcontainer (NEO4J_RUNTIME=docker) or the local one."""
    try:
        target = provision()
    except LaunchError as exc:
        pytest.fail(f"no Neo4j for the tests: {exc}", pytrace=False)
    yield target
    target.release()


@pytest.fixture
def uid() -> str:
    """A prefix unique to one test, so that tests sharing the database never see each other's data."""
    return uuid.uuid4().hex[:12]
