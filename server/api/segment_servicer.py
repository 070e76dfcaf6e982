"""SegmentService: rule-based audiences and their change feed. Translates messages and
status codes; server/identity/segments does the work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

import grpc
from identity.v1 import common_pb2, segment_service_pb2 as pb, segment_service_pb2_grpc as pb_grpc

from server.api.convert import to_timestamp
from server.api.segment_convert import rule_from_proto, rule_to_proto
from server.api.status import streaming, unary
from server.errors import InvalidArgument
from server.identity.segments.catalog import StoredSegment
from server.identity.segments.membership import ENTER, Membership, MembershipChange, SegmentMemberView
from server.identity.segments.rule_tree import SegmentDefinition

DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 10_000
CHANGE_KIND = {ENTER: pb.CHANGE_KIND_ENTER}


class SegmentServicer(pb_grpc.SegmentServiceServicer):
    def __init__(self, membership: Membership) -> None:
        self.membership = membership

    @unary
    def UpsertSegment(self, request: pb.UpsertSegmentRequest, context: grpc.ServicerContext) -> pb.Segment:
        definition = SegmentDefinition(name=request.name.strip(), description=request.description,
                                       rule=rule_from_proto(request.rule, "rule") if request.HasField("rule") else _no_rule())
        return segment(self.membership.upsert(definition))

    @unary
    def GetSegment(self, request: pb.GetSegmentRequest, context: grpc.ServicerContext) -> pb.Segment:
        return segment(self.membership.get(request.name))

    @streaming
    def ListSegmentMembers(
        self, request: pb.ListSegmentMembersRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.SegmentMember]:
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size {request.page_size} is not between 0 and {MAX_PAGE_SIZE}")
        for member in self.membership.members(request.name, tuple(request.identifier_types),
                                                 request.page_size or DEFAULT_PAGE_SIZE):
            yield segment_member(member)

    @streaming
    def WatchSegment(self, request: pb.WatchSegmentRequest, context: grpc.ServicerContext) -> Iterator[pb.SegmentChange]:
        for change in self.membership.follow(request.name, request.after_position, context.is_active):
            yield segment_change(change)


def _no_rule() -> NoReturn:
    raise InvalidArgument("rule is missing")


def segment(stored: StoredSegment) -> pb.Segment:
    return pb.Segment(name=stored.name, version=stored.version, description=stored.description,
                      rule=rule_to_proto(stored.rule), updated_at=to_timestamp(stored.updated_at),
                      member_count=stored.member_count)


def segment_member(member: SegmentMemberView) -> pb.SegmentMember:
    return pb.SegmentMember(
        profile_id=member.profile_id,
        identifiers=[common_pb2.Identifier(type=i.type, value=i.value) for i in member.identifiers],
        since=to_timestamp(member.since),
    )


def segment_change(change: MembershipChange) -> pb.SegmentChange:
    return pb.SegmentChange(position=change.position, segment=change.segment, profile_id=change.profile_id,
                            kind=CHANGE_KIND.get(change.kind, pb.CHANGE_KIND_EXIT), at=to_timestamp(change.at),
                            cause=change.cause)
