"""Translation between protobuf messages and domain values, in both directions."""

from __future__ import annotations

from datetime import UTC

from identity.v1 import common_pb2, identity_service_pb2 as pb

from server.identity.model import Ack, AckStatus, EventInput

CHANNEL_NAMES = {
    common_pb2.CHANNEL_UNSPECIFIED: "",
    common_pb2.CHANNEL_ONLINE: "online",
    common_pb2.CHANNEL_OFFLINE: "offline",
}
ACK_STATUS = {
    AckStatus.ACCEPTED: pb.ACK_STATUS_ACCEPTED,
    AckStatus.DUPLICATE: pb.ACK_STATUS_DUPLICATE,
    AckStatus.REJECTED: pb.ACK_STATUS_REJECTED,
}


def event_input(event: pb.Event) -> EventInput:
    """The client's event as the domain sees it; validation is the domain's job."""
    occurred_at = event.occurred_at.ToDatetime(tzinfo=UTC) if event.HasField("occurred_at") else None
    return EventInput(
        event_id=event.event_id,
        occurred_at=occurred_at,
        source=event.source,
        channel=CHANNEL_NAMES.get(event.channel, str(event.channel)),
        type=event.type,
        identifiers=tuple((i.type, i.value) for i in event.identifiers),
        traits=dict(event.traits),
        properties=dict(event.properties),
    )


def ingest_ack(ack: Ack) -> pb.IngestAck:
    return pb.IngestAck(event_id=ack.event_id, status=ACK_STATUS[ack.status], profile_id=ack.profile_id,
                        reason=ack.reason)

