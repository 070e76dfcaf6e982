"""SegmentService: rule-based audiences and their change feed. Translates messages and
status codes; server/identity/segments does the work, on the work pools (server/api/work.py).
Watchers are fed by the process's one change-log reader (server/identity/segments/change_feed.py)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import NoReturn

from identity.v1 import common_pb2, segment_service_pb2 as pb, segment_service_pb2_grpc as pb_grpc

from server.api.convert import to_timestamp
from server.api.segment_convert import rule_from_proto, rule_to_proto
from server.api.status import Context, streaming, unary
from server.api.work import WorkPools
from server.errors import InvalidArgument
from server.identity.segments.catalog import StoredSegment
from server.identity.segments.change_feed import ChangeFeed
from server.identity.segments.membership import ENTER, Membership, MembershipChange, SegmentMemberView
from server.identity.segments.rule_tree import SegmentDefinition

DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 10_000
CHANGE_KIND = {ENTER: pb.CHANGE_KIND_ENTER}


class SegmentServicer(pb_grpc.SegmentServiceServicer):
    def __init__(self, membership: Membership, feed: ChangeFeed, pools: WorkPools) -> None:
        self.membership = membership
        self.feed = feed
        self.pools = pools

    @unary
    async def UpsertSegment(self, request: pb.UpsertSegmentRequest, context: Context) -> pb.Segment:
        definition = SegmentDefinition(name=request.name.strip(), description=request.description,
                                       rule=rule_from_proto(request.rule, "rule") if request.HasField("rule") else _no_rule())
        return segment(await self.pools.admin.run(self.membership.upsert, definition))

    @unary
    async def GetSegment(self, request: pb.GetSegmentRequest, context: Context) -> pb.Segment:
        return segment(await self.pools.read.run(self.membership.get, request.name))

    @streaming
    async def ListSegmentMembers(
        self, request: pb.ListSegmentMembersRequest, context: Context
    ) -> AsyncIterator[pb.SegmentMember]:
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size {request.page_size} is not between 0 and {MAX_PAGE_SIZE}")
        page_size = request.page_size or DEFAULT_PAGE_SIZE
        members = self.pools.read.iterate(
            lambda: self.membership.members(request.name, tuple(request.identifier_types), page_size), chunk=page_size)
        async for member in members:
            yield segment_member(member)

    @streaming
    async def WatchSegment(self, request: pb.WatchSegmentRequest, context: Context) -> AsyncIterator[pb.SegmentChange]:
        async for change in self.feed.follow(request.name, request.after_position):
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


@functools.lru_cache(maxsize=4096)
def segment_change(change: MembershipChange) -> pb.SegmentChange:
    """One message per change, however many watchers it goes to (never mutated after)."""
    return pb.SegmentChange(position=change.position, segment=change.segment, profile_id=change.profile_id,
                            kind=CHANGE_KIND.get(change.kind, pb.CHANGE_KIND_EXIT), at=to_timestamp(change.at),
                            cause=change.cause)
