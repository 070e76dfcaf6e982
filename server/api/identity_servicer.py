"""IdentityService: ingest, profiles, journeys. Translates messages; the domain does the work."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from identity.v1 import identity_service_pb2 as pb, identity_service_pb2_grpc as pb_grpc

from server.api import convert
from server.api.status import not_yet, streaming, unary
from server.batching import batched
from server.identity.ingest import Ingestor

LINKAGE = "probabilistic record linkage (issue 4)"
GRAPH = "the identity graph: stitching, profiles and journeys (issue 3)"


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    def __init__(self, ingestor: Ingestor, batch_size: int, batch_wait: float) -> None:
        self.ingestor = ingestor
        self.batch_size = batch_size
        self.batch_wait = batch_wait

    @streaming
    def Ingest(self, request_iterator: Iterator[pb.Event], context: grpc.ServicerContext) -> Iterator[pb.IngestAck]:
        for batch in batched(request_iterator, self.batch_size, self.batch_wait):
            acks = self.ingestor.ingest([convert.event_input(event) for event in batch])
            yield from (convert.ingest_ack(ack) for ack in acks)

    def ImportRecords(self, request_iterator, context):  # type: ignore[no-untyped-def]
        not_yet(context, "ImportRecords", LINKAGE)

    def LookupProfiles(self, request_iterator, context):  # type: ignore[no-untyped-def]
        not_yet(context, "LookupProfiles", GRAPH)

    @unary
    def GetIdentityGraph(self, request, context):  # type: ignore[no-untyped-def]
        not_yet(context, "GetIdentityGraph", GRAPH)

    def TraverseJourney(self, request, context):  # type: ignore[no-untyped-def]
        not_yet(context, "TraverseJourney", GRAPH)

    def ForgetProfile(self, request, context):  # type: ignore[no-untyped-def]
        not_yet(context, "ForgetProfile", GRAPH)

    def UnlinkIdentifier(self, request, context):  # type: ignore[no-untyped-def]
        not_yet(context, "UnlinkIdentifier", GRAPH)
