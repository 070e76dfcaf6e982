"""The foundation: a real Neo4j, the schema, health, reflection and an ingest round trip.
(Bad events: tests/integration/test_bad_input.py.)"""

from __future__ import annotations

import logging

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from identity.v1 import common_pb2, identity_service_pb2 as pb, identity_service_pb2_grpc
from neo4j import Driver

from server.api.app import SERVICE_NAMES
from server.graph import Graph, Neo4jSettings


def event(event_id: str, *identifiers: tuple[str, str], type: str = "page_view", **traits: str) -> pb.Event:
    stamp = Timestamp()
    stamp.FromJsonString("2026-11-01T10:00:00Z")
    return pb.Event(
        event_id=event_id,
        occurred_at=stamp,
        source="web",
        channel=common_pb2.CHANNEL_ONLINE,
        type=type,
        identifiers=[common_pb2.Identifier(type=t, value=v) for t, v in identifiers],
        traits=traits,
        properties={"path": "/pricing"},
    )


def test_server_reports_serving_for_every_service(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", *SERVICE_NAMES):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service


def test_reflection_lists_the_services(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30)
    listed = {service.name for answer in answers for service in answer.list_services_response.service}
    assert {"identity.v1.IdentityService", "identity.v1.SegmentService", "grpc.health.v1.Health"} <= listed


def test_reflection_describes_the_ingest_method(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="identity.v1.IdentityService")
    answer = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=30)))
    assert answer.file_descriptor_response.file_descriptor_proto, "reflection returned no descriptor"
    assert b"Ingest" in b"".join(answer.file_descriptor_response.file_descriptor_proto)


def test_schema_constraints_exist_in_neo4j(graph: Graph, driver: Driver) -> None:
    records, _, _ = driver.execute_query("SHOW CONSTRAINTS YIELD name, labelsOrTypes, properties")
    constraints = {(r["labelsOrTypes"][0], tuple(r["properties"])) for r in records}
    assert ("Touchpoint", ("event_id",)) in constraints
    assert ("Identifier", ("type", "value")) in constraints
    assert ("Profile", ("profile_id",)) in constraints


def test_schema_can_be_applied_twice(graph: Graph) -> None:
    assert graph.apply_schema() == graph.apply_schema() > 0


def test_ingest_round_trip_writes_identifier_and_touchpoint_nodes(channel: grpc.Channel, driver: Driver, uid: str) -> None:
    stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
    sent = event(f"{uid}-1", ("cookie", f"ck-{uid}"), ("email", f" Ann.{uid}@Example.COM "), type="identify")
    (ack,) = list(stub.Ingest(iter([sent]), timeout=60))
    assert (ack.event_id, ack.status, ack.reason) == (f"{uid}-1", pb.ACK_STATUS_ACCEPTED, "")
    records, _, _ = driver.execute_query(
        "MATCH (t:Touchpoint {event_id: $id})-[:CARRIED]->(i:Identifier) "
        "RETURN t.type AS type, t.source AS source, t.channel AS channel, i.type AS itype, i.value AS value "
        "ORDER BY itype",
        id=f"{uid}-1",
    )
    assert [(r["itype"], r["value"]) for r in records] == [("cookie", f"ck-{uid}"), ("email", f"ann.{uid}@example.com")]
    assert {(r["type"], r["source"], r["channel"]) for r in records} == {("identify", "web", "online")}


def test_redelivered_event_acks_duplicate_and_writes_nothing_new(channel: grpc.Channel, driver: Driver, uid: str) -> None:
    stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
    first = event(f"{uid}-1", ("cookie", f"ck-{uid}"))
    again = event(f"{uid}-1", ("cookie", f"other-{uid}"))
    statuses = [ack.status for ack in stub.Ingest(iter([first, again]), timeout=60)]
    statuses += [ack.status for ack in stub.Ingest(iter([first]), timeout=60)]
    assert statuses == [pb.ACK_STATUS_ACCEPTED, pb.ACK_STATUS_DUPLICATE, pb.ACK_STATUS_DUPLICATE]
    records, _, _ = driver.execute_query(
        "MATCH (t:Touchpoint {event_id: $id})-[:CARRIED]->(i) RETURN collect(i.value) AS values", id=f"{uid}-1"
    )
    assert records[0]["values"] == [f"ck-{uid}"]


def test_routing_uri_reaches_the_same_database(neo4j_settings: Neo4jSettings) -> None:
    if not neo4j_settings.uri.startswith("bolt://"):
        pytest.skip(f"the run's Neo4j already uses {neo4j_settings.uri}")
    routed = Neo4jSettings(neo4j_settings.uri.replace("bolt://", "neo4j://"), neo4j_settings.user,
                           neo4j_settings.password, neo4j_settings.database)
    with Graph(routed) as graph:
        graph.verify()
        assert graph.apply_schema() > 0


def test_every_named_query_compiles(graph: Graph, driver: Driver) -> None:
    """EXPLAIN plans each query without running it: a typo in any cypher/ file fails here."""
    from server.graph import RULE_PLACEHOLDER, split_statements

    logging.getLogger("neo4j.notifications").setLevel(logging.ERROR)  # EXPLAIN warns of unset parameters
    for name, text in graph.queries.items():
        statements = split_statements(text) if name == "schema" else [text.replace(RULE_PLACEHOLDER, "true")]
        for statement in statements:
            if statement.lstrip().upper().startswith("CREATE CONSTRAINT") or " INDEX " in statement.upper():
                continue  # schema commands cannot be EXPLAINed; test_schema_* covers them
            driver.execute_query("EXPLAIN " + statement)
