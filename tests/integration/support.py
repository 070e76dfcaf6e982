"""Small helpers that keep the integration tests readable."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from identity.v1 import common_pb2, identity_service_pb2 as pb, identity_service_pb2_grpc
from neo4j import Driver

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def event(event_id: str, *identifiers: str, minute: int = 0, type: str = "page_view", source: str = "web",
          channel: int = common_pb2.CHANNEL_ONLINE, properties: dict[str, str] | None = None,
          **traits: str) -> pb.Event:
    """An event whose identifiers are written "type:value"."""
    return pb.Event(
        event_id=event_id,
        occurred_at=stamp(T0 + timedelta(minutes=minute)),
        source=source,
        channel=channel,
        type=type,
        identifiers=[identifier(i) for i in identifiers],
        traits=traits,
        properties=properties or {},
    )


def identifier(text: str) -> common_pb2.Identifier:
    kind, value = text.split(":", 1)
    return common_pb2.Identifier(type=kind, value=value)


def by_identifier(text: str) -> common_pb2.ProfileRef:
    return common_pb2.ProfileRef(identifier=identifier(text))


def by_id(profile_id: str) -> common_pb2.ProfileRef:
    return common_pb2.ProfileRef(profile_id=profile_id)


def ingest(stub: identity_service_pb2_grpc.IdentityServiceStub, events: Iterable[pb.Event]) -> list[pb.IngestAck]:
    return list(stub.Ingest(iter(list(events)), timeout=60))


def lookup(stub: identity_service_pb2_grpc.IdentityServiceStub, *refs: common_pb2.ProfileRef) -> list[pb.LookupResult]:
    requests = [pb.LookupRequest(request_id=str(n), ref=ref) for n, ref in enumerate(refs)]
    return list(stub.LookupProfiles(iter(requests), timeout=60))


def profile_of(stub: identity_service_pb2_grpc.IdentityServiceStub, text: str) -> pb.Profile:
    (result,) = lookup(stub, by_identifier(text))
    assert result.WhichOneof("result") == "profile", result.not_found.reason
    return result.profile


def identifiers_of(profile: pb.Profile) -> set[str]:
    return {f"{h.identifier.type}:{h.identifier.value}" for h in profile.identifiers}


def eventually(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Waits until check() holds, up to a generous deadline: tests wait for an outcome, not a time."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def remove_segments(driver: Driver, prefix: str) -> None:
    """Deletes the segments named with the prefix: the segment worker evaluates every segment
    for every changed profile, so a test leaves none behind."""
    driver.execute_query("MATCH (s:Segment) WHERE s.name STARTS WITH $prefix "
                         "OPTIONAL MATCH (s)-[:HAS_VERSION]->(v) DETACH DELETE s, v", prefix=prefix)

