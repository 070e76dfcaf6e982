"""Segment changes as the tracking spec's messages: what messaging tools and data pipelines fed
by a CDP receive (Segment's and RudderStack's `identify` and `track`).

An ENTER is a `track` named "Audience Entered" and an EXIT "Audience Exited", with
`properties {audience_key: <key>, <key>: true|false}`; the `identify` beside it sets the trait
`<key>: true|false`, so a tool that keeps only traits knows the membership too. A message's
`messageId` is stable per change (segment and position) and per call type, so a redelivery
after a crash carries the same id and a receiver that deduplicates drops it.

Only the identifiers the destination allows leave (data minimisation): e-mail and phone also
as the reserved traits `email` and `phone`, each one in `context.externalIds`. The user is
`userId` when a `user_id` is allowed and known, else `anonymousId` is the profile id (our own
pseudonymous id, which always goes: without it no tool can tell two profiles apart).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from activation.sinks import Batch
from client.messages import SegmentChange
from identity.v1 import segment_service_pb2 as seg

EVENTS = {seg.CHANGE_KIND_ENTER: "Audience Entered", seg.CHANGE_KIND_EXIT: "Audience Exited"}
LIBRARY = {"name": "identity-delivery", "version": "1"}
TRAIT_TYPES = ("email", "phone")  # identifier types the spec reserves a trait for


def audience_key_of(segment: str) -> str:
    """A segment's name as a trait and property key: lower case, words joined by underscores."""
    return re.sub(r"[^a-z0-9]+", "_", segment.lower()).strip("_") or "audience"


@dataclass(frozen=True)
class AudienceChange:
    """One change with what may leave about its profile."""

    change: SegmentChange
    identifiers: tuple[tuple[str, str], ...]  # (type, value), allowed types only

    @property
    def entered(self) -> bool:
        return self.change.kind == seg.CHANGE_KIND_ENTER

    def message_id(self, call: str) -> str:
        return f"audience-{self.change.segment}-{self.change.position}-{call}"


def audience_changes(batch: Batch) -> list[AudienceChange]:
    return [AudienceChange(c, batch.identifiers.get(c.profile_id, ())) for c in batch.changes]


def track(change: AudienceChange, audience_key: str) -> dict[str, Any]:
    """The `track` of a change: "Audience Entered" or "Audience Exited"."""
    return {
        "type": "track",
        "event": EVENTS.get(change.change.kind, "Audience Changed"),
        "messageId": change.message_id("track"),
        **_user(change),
        **_timestamp(change.change),
        "properties": {"audience_key": audience_key, audience_key: change.entered},
        "context": _context(change),
    }


def identify(change: AudienceChange, audience_key: str) -> dict[str, Any]:
    """The `identify` of a change: the membership as a trait, with the allowed identifiers."""
    traits: dict[str, Any] = {audience_key: change.entered}
    traits.update(_identifier_traits(change.identifiers))
    return {"type": "identify", "messageId": change.message_id("identify"), **_user(change),
            **_timestamp(change.change), "traits": traits, "context": _context(change)}


def _user(change: AudienceChange) -> dict[str, str]:
    user_ids = [value for kind, value in change.identifiers if kind == "user_id"]
    if user_ids:
        return {"userId": user_ids[0], "anonymousId": change.change.profile_id}
    return {"anonymousId": change.change.profile_id}


def _timestamp(change: SegmentChange) -> dict[str, str]:
    return {"timestamp": change.at.ToJsonString()} if change.HasField("at") else {}


def _context(change: AudienceChange) -> dict[str, Any]:
    external = [{"id": change.change.profile_id, "type": "profile_id", "collection": "users", "encoding": "none"}]
    external += [{"id": value, "type": kind, "collection": "users", "encoding": "none"}
                 for kind, value in change.identifiers]
    context: dict[str, Any] = {"library": LIBRARY, "externalIds": external}
    if traits := _identifier_traits(change.identifiers):
        context["traits"] = traits
    return context


def _identifier_traits(identifiers: Sequence[tuple[str, str]]) -> Mapping[str, str]:
    traits: dict[str, str] = {}
    for kind, value in identifiers:
        if kind in TRAIT_TYPES:
            traits.setdefault(kind, value)
    return traits
