"""Python client of the identity resolution service, and the `identity` command.

    from client import IdentityClient

    with IdentityClient() as identity:           # IDENTITY_ADDRESS, else 127.0.0.1:50051
        for ack in identity.ingest(events):
            ...
        profile = identity.lookup_one("email:ann@example.com")
"""

from client.api import ADDRESS_VARIABLE, DEFAULT_ADDRESS, IdentityClient, Ref, Segments
from client.jsonl import JsonLinesError, event_from_json, read_jsonl, record_from_json
from client.messages import (
    Event,
    ForgetProfileResponse,
    IdentityGraph,
    Identifier,
    ImportProgress,
    IngestAck,
    InputError,
    JourneyStep,
    LookupResult,
    Profile,
    ProfileRef,
    Rule,
    Segment,
    SegmentChange,
    SegmentMember,
    SourceRecord,
    Touchpoint,
    UnlinkIdentifierResponse,
    identifier,
    parse_channel,
    parse_identifier,
    parse_timestamp,
    profile_ref,
    ref,
)

__all__ = [
    "ADDRESS_VARIABLE",
    "DEFAULT_ADDRESS",
    "Event",
    "ForgetProfileResponse",
    "IdentityClient",
    "IdentityGraph",
    "Identifier",
    "ImportProgress",
    "IngestAck",
    "InputError",
    "JourneyStep",
    "JsonLinesError",
    "LookupResult",
    "Profile",
    "ProfileRef",
    "Ref",
    "Rule",
    "Segment",
    "SegmentChange",
    "SegmentMember",
    "Segments",
    "SourceRecord",
    "Touchpoint",
    "UnlinkIdentifierResponse",
    "event_from_json",
    "identifier",
    "parse_channel",
    "parse_identifier",
    "parse_timestamp",
    "profile_ref",
    "read_jsonl",
    "record_from_json",
    "ref",
]
