"""Where the service and the tests find Neo4j, and the launcher for a local one.

Three ways, in this order, the same for the server, `make run` and the tests:
1. `NEO4J_URI` (with `NEO4J_USER`, `NEO4J_PASSWORD`, `NEO4J_DATABASE`): an existing server
   or cluster; `neo4j://` routing URIs work.
2. `NEO4J_RUNTIME=docker` and a reachable Docker engine: testcontainers' Neo4j container.
3. Otherwise a Neo4j Community process assembled from Maven Central (see `launcher.py`).
"""

from localneo4j.launcher import DEFAULT_PASSWORD, DEFAULT_USER, LaunchError, LocalNeo4j
from localneo4j.target import Neo4jTarget, docker_unavailable_reason, provision

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "LaunchError",
    "LocalNeo4j",
    "Neo4jTarget",
    "docker_unavailable_reason",
    "provision",
]
