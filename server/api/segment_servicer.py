"""SegmentService: rule-based audiences and their change feed (issue 5)."""

from __future__ import annotations

from identity.v1 import segment_service_pb2_grpc as pb_grpc

from server.api.status import not_yet

SEGMENTS = "segments and activation (issue 5)"


class SegmentServicer(pb_grpc.SegmentServiceServicer):
    def UpsertSegment(self, request, context):  # type: ignore[no-untyped-def]
        not_yet(context, "UpsertSegment", SEGMENTS)

    def GetSegment(self, request, context):  # type: ignore[no-untyped-def]
        not_yet(context, "GetSegment", SEGMENTS)

    def ListSegmentMembers(self, request, context):  # type: ignore[no-untyped-def]
        not_yet(context, "ListSegmentMembers", SEGMENTS)

    def WatchSegment(self, request, context):  # type: ignore[no-untyped-def]
        not_yet(context, "WatchSegment", SEGMENTS)
