"""Python client of the identity resolution service, and the `identity` command.

    from client import IdentityClient

    with IdentityClient() as identity:           # IDENTITY_ADDRESS, else 127.0.0.1:50051
        for ack in identity.ingest(events):
            ...
        profile = identity.lookup_one("email:ann@example.com")

    # TLS and a bearer token; each defaults to IDENTITY_CA, IDENTITY_CERT, IDENTITY_KEY, IDENTITY_TOKEN
    IdentityClient("identity.internal:50051", ca="ca.pem", cert="client.pem", key="client.key", token=token)
"""

from client.api import (
    ADDRESS_VARIABLE,
    CA_VARIABLE,
    CERT_VARIABLE,
    DEFAULT_ADDRESS,
    KEY_VARIABLE,
    TOKEN_VARIABLE,
    BearerAuth,
    IdentityClient,
    Ref,
    Segments,
    tls_credentials,
)
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
    "BearerAuth",
    "CA_VARIABLE",
    "CERT_VARIABLE",
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
    "KEY_VARIABLE",
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
    "TOKEN_VARIABLE",
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
    "tls_credentials",
]
