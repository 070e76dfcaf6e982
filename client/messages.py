"""The API's messages built from what people type: "type:value" identifiers, refs, channels, times.

Everything here is pure (no channel, no network), so a bad input fails before anything is
sent, with a message that says what was expected.
"""

from __future__ import annotations

from typing import cast

import math
import re
from datetime import datetime
from decimal import Decimal

from google.protobuf.timestamp_pb2 import Timestamp
from identity.v1 import common_pb2, identity_service_pb2, segment_service_pb2

Identifier = common_pb2.Identifier
ProfileRef = common_pb2.ProfileRef
Touchpoint = common_pb2.Touchpoint
Event = identity_service_pb2.Event
IngestAck = identity_service_pb2.IngestAck
SourceRecord = identity_service_pb2.SourceRecord
ImportProgress = identity_service_pb2.ImportProgress
LookupResult = identity_service_pb2.LookupResult
Profile = identity_service_pb2.Profile
IdentityGraph = identity_service_pb2.IdentityGraph
JourneyStep = identity_service_pb2.JourneyStep
ForgetProfileResponse = identity_service_pb2.ForgetProfileResponse
UnlinkIdentifierResponse = identity_service_pb2.UnlinkIdentifierResponse
Segment = segment_service_pb2.Segment
Rule = segment_service_pb2.Rule
SegmentMember = segment_service_pb2.SegmentMember
SegmentChange = segment_service_pb2.SegmentChange
RejectionFilter = identity_service_pb2.RejectionFilter
RejectedItem = identity_service_pb2.RejectedItem
ReplayProgress = identity_service_pb2.ReplayProgress
ReplaySummary = identity_service_pb2.ReplaySummary

RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<fraction>\d{1,9}))?(?P<offset>[Zz]|[+-]\d{2}:\d{2})"
)
# The range of google.protobuf.Timestamp: 0001-01-01 to 9999-12-31.
EARLIEST_SECOND = -62135596800
LATEST_SECOND = 253402300799
NANOS = 10**9


class InputError(ValueError):
    """Input a person or a file got wrong, as opposed to a bug; the CLI shows its message alone."""


def identifier(type: str, value: str) -> Identifier:
    """An Identifier; an empty type or value is refused here, where the caller can still see why."""
    if not type.strip():
        raise InputError(f"identifier type is empty (value {value!r})")
    if not value.strip():
        raise InputError(f"identifier {type!r} has an empty value")
    return Identifier(type=type, value=value)


def parse_identifier(text: str) -> Identifier:
    """An identifier written "type:value"; only the first colon splits, so values may hold colons."""
    kind, colon, value = text.partition(":")
    if not colon:
        raise InputError(f"{text!r} is not an identifier: write it as type:value, e.g. email:ann@example.com")
    if not kind.strip() or not value.strip():
        raise InputError(f"{text!r} is not an identifier: both type and value must be non-empty (type:value)")
    return Identifier(type=kind, value=value)


def profile_ref(profile_id: str) -> ProfileRef:
    """A ref by profile id, stated outright for ids that come from elsewhere."""
    if not profile_id.strip():
        raise InputError("profile id is empty")
    return ProfileRef(profile_id=profile_id)


def ref(target: ProfileRef | Identifier | str) -> ProfileRef:
    """A ProfileRef from a ref, an Identifier, "type:value" or a profile id (a string without a colon)."""
    if isinstance(target, ProfileRef):
        return target
    if isinstance(target, Identifier):
        return ProfileRef(identifier=target)
    if isinstance(target, str):
        return ProfileRef(identifier=parse_identifier(target)) if ":" in target else profile_ref(target)
    raise TypeError(f"a profile ref is a ProfileRef, an Identifier or a str, not {type(target).__name__}")


def describe(target: ProfileRef) -> str:
    """A ref as a person would write it, for messages."""
    if target.WhichOneof("key") == "identifier":
        return f"{target.identifier.type}:{target.identifier.value}"
    return target.profile_id


def parse_channel(name: str | int | None) -> common_pb2.Channel:
    """A Channel from "online"/"offline", an enum name like "CHANNEL_ONLINE", or its number."""
    if name is None:
        return common_pb2.CHANNEL_UNSPECIFIED
    if isinstance(name, int) and not isinstance(name, bool) and name in common_pb2.Channel.values():
        return cast(common_pb2.Channel, name)  # a number the enum holds
    if isinstance(name, str):
        key = name.strip().upper()
        if not key:
            return common_pb2.CHANNEL_UNSPECIFIED
        for candidate in (key, f"CHANNEL_{key}"):
            if candidate in common_pb2.Channel.keys():
                return cast(common_pb2.Channel, common_pb2.Channel.Value(candidate))  # the stubs say int
    raise InputError(f"channel {name!r} is not one of: online, offline")


def parse_rejected_kind(name: str | int | None) -> identity_service_pb2.RejectedKind:
    """A RejectedKind from "event"/"record", an enum name like "REJECTED_KIND_EVENT", or its number."""
    if name is None:
        return identity_service_pb2.REJECTED_KIND_UNSPECIFIED
    if isinstance(name, int) and not isinstance(name, bool) and name in identity_service_pb2.RejectedKind.values():
        return cast(identity_service_pb2.RejectedKind, name)  # a number the enum holds
    if isinstance(name, str):
        key = name.strip().upper()
        if not key:
            return identity_service_pb2.REJECTED_KIND_UNSPECIFIED
        for candidate in (key, f"REJECTED_KIND_{key}"):
            if candidate in identity_service_pb2.RejectedKind.keys():
                return cast(identity_service_pb2.RejectedKind, identity_service_pb2.RejectedKind.Value(candidate))  # the stubs say int
    raise InputError(f"kind {name!r} is not one of: event, record")


def parse_timestamp(value: str | int | float | datetime | Timestamp) -> Timestamp:
    """A Timestamp from RFC 3339 text, epoch seconds, or an aware datetime; never a guessed time zone."""
    if isinstance(value, Timestamp):
        return value
    if isinstance(value, datetime):
        return _from_datetime(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _from_epoch(value)
    if isinstance(value, str):
        return _from_rfc3339(value)
    raise InputError(f"{value!r} is not a timestamp: use RFC 3339 text or epoch seconds")


def _from_rfc3339(text: str) -> Timestamp:
    match = RFC3339.fullmatch(text.strip())
    if match is None:
        raise InputError(f"{text!r} is not an RFC 3339 timestamp with a UTC offset, e.g. 2026-11-28T10:00:00Z")
    offset = "+00:00" if match["offset"] in "Zz" else match["offset"]
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{match['time']}{offset}")
    except ValueError as exc:
        raise InputError(f"{text!r} is not a valid time: {exc}") from None
    nanos = int((match["fraction"] or "0").ljust(9, "0"))
    return _checked(int(moment.timestamp()), nanos, text)


def _from_epoch(seconds: int | float) -> Timestamp:
    if not math.isfinite(seconds):
        raise InputError(f"{seconds!r} is not a number of epoch seconds")
    total = int(Decimal(repr(seconds)) * NANOS)
    return _checked(total // NANOS, total % NANOS, seconds)


def _from_datetime(moment: datetime) -> Timestamp:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(f"{moment.isoformat()} has no time zone; give an aware datetime (e.g. tzinfo=UTC)")
    whole = moment.replace(microsecond=0)
    return _checked(int(whole.timestamp()), moment.microsecond * 1000, moment.isoformat())


def _checked(seconds: int, nanos: int, original: object) -> Timestamp:
    if not EARLIEST_SECOND <= seconds <= LATEST_SECOND:
        raise InputError(f"{original!r} is outside the years 0001 to 9999")
    return Timestamp(seconds=seconds, nanos=nanos)
