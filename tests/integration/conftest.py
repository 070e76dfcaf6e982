"""Fixtures for tests against the real Neo4j and a real gRPC server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
from identity.v1 import identity_service_pb2_grpc, segment_service_pb2_grpc
from neo4j import Driver, GraphDatabase

from localkafka import LaunchError, kafka_target
from localneo4j import Neo4jTarget
from server.api.app import RunningServer, create_server
from server.config import Settings, parse_settings
from server.graph import Graph, Neo4jSettings


@pytest.fixture(scope="session")
def neo4j_settings(neo4j_target: Neo4jTarget) -> Neo4jSettings:
    return Neo4jSettings(neo4j_target.uri, neo4j_target.user, neo4j_target.password, neo4j_target.database)


@pytest.fixture(scope="session")
def settings(neo4j_settings: Neo4jSettings) -> Settings:
    # time-window segments re-evaluated every 2 s, so that tests see members age out
    return replace(parse_settings(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--collect-listen",
                                   "127.0.0.1:0", "--segment-schedule", "2"],
                                  env={}), neo4j=neo4j_settings)


@pytest.fixture(scope="session")
def graph(neo4j_settings: Neo4jSettings) -> Iterator[Graph]:
    with Graph(neo4j_settings) as graph:
        graph.verify()
        graph.apply_schema()
        yield graph


@pytest.fixture(scope="session")
def driver(neo4j_settings: Neo4jSettings) -> Iterator[Driver]:
    """A plain driver for checking what the service wrote, independently of its graph layer."""
    with GraphDatabase.driver(neo4j_settings.uri, auth=(neo4j_settings.user, neo4j_settings.password)) as driver:
        yield driver


@pytest.fixture(scope="session")
def grpc_server(settings: Settings, graph: Graph) -> Iterator[RunningServer]:
    running = create_server(settings, graph)
    yield running
    running.stop(grace=5)


@pytest.fixture(scope="session")
def channel(grpc_server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield channel


@pytest.fixture(scope="session")
def identity(channel: grpc.Channel) -> identity_service_pb2_grpc.IdentityServiceStub:
    return identity_service_pb2_grpc.IdentityServiceStub(channel)


@pytest.fixture(scope="session")
def segments(channel: grpc.Channel) -> segment_service_pb2_grpc.SegmentServiceStub:
    return segment_service_pb2_grpc.SegmentServiceStub(channel)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """KAFKA_BOOTSTRAP's cluster or the local broker; stopped at the end only if this session started it."""
    try:
        target = kafka_target()
    except LaunchError as exc:
        pytest.fail(f"no Kafka for the tests: {exc}", pytrace=False)
    yield target.bootstrap
    target.release()
