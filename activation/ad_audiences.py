"""Segment changes as ad-platform audience operations: hashed identifiers, each platform's rules.

Ad platforms match their users against hashed e-mails and phones (and unhashed mobile
advertising ids); an ENTER adds the person to the audience and an EXIT removes them. The two
platforms agree on e-mail and differ on phones:

- google_customer_match (Google Ads Customer Match): e-mail trimmed, lower-cased, SHA-256 hex;
  phone in E.164 *with* the "+" (e.g. +12125650000), SHA-256 hex; mobile advertising id as is.
  Records mirror the Ads API's OfflineUserDataJobOperation: {"operation": "create"|"remove",
  "userIdentifiers": [{"hashedEmail"}, {"hashedPhoneNumber"}, {"mobileId"}]}.
- meta_custom_audience (Meta Custom Audiences): e-mail as above; phone as digits only, country
  code first, *no* "+" (e.g. 16505551212), SHA-256 hex; advertising id as is. Records mirror
  the Marketing API's users edge: {"operation": "add"|"remove", "schema": [...], "data": [[...]]}.

Phones are stored in E.164 already (server/identity/normalize.py); one that is not is skipped
rather than hashed wrongly, because a wrongly hashed value silently matches nobody. A change
whose profile has no identifier the platform can match is left out; its position still moves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import phonenumbers

from activation.sinks import Batch
from client.messages import SegmentChange
from identity.v1 import segment_service_pb2 as seg

GOOGLE = "google_customer_match"
META = "meta_custom_audience"
AUDIENCE_FORMATS = (GOOGLE, META)
# The identifier types each platform matches on; a destination may allow only these.
MATCHED_TYPES = ("email", "phone", "advertising_id")
META_SCHEMA = ("EMAIL_SHA256", "PHONE_SHA256", "MADID")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalized_email(value: str) -> str:
    return value.strip().lower()


def e164(value: str) -> str | None:
    """The phone in E.164 with its "+", or None when it is not a number with a country code."""
    try:
        number = phonenumbers.parse(value.strip(), None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def google_phone(value: str) -> str | None:
    """Google: E.164 with the "+", hashed."""
    number = e164(value)
    return sha256_hex(number) if number else None


def meta_phone(value: str) -> str | None:
    """Meta: digits only, country code first, no "+" and no leading zeros, hashed."""
    number = e164(value)
    return sha256_hex(number.lstrip("+")) if number else None


def audience_records(batch: Batch, platform: str) -> list[dict[str, Any]]:
    """One operation per change whose profile has something the platform matches on."""
    build = _google if platform == GOOGLE else _meta
    records = []
    for change in batch.changes:
        record = build(change, batch.identifiers.get(change.profile_id, ()))
        if record is not None:
            records.append({"position": int(change.position), **record})
    return records


def _google(change: SegmentChange, identifiers: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
    found: list[dict[str, str]] = []
    for kind, value in identifiers:
        if kind == "email":
            found.append({"hashedEmail": sha256_hex(normalized_email(value))})
        elif kind == "phone" and (hashed := google_phone(value)):
            found.append({"hashedPhoneNumber": hashed})
        elif kind == "advertising_id":
            found.append({"mobileId": value})
    if not found:
        return None
    return {"operation": "create" if change.kind == seg.CHANGE_KIND_ENTER else "remove", "userIdentifiers": found}


def _meta(change: SegmentChange, identifiers: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
    columns: tuple[list[str], list[str], list[str]] = ([], [], [])
    for kind, value in identifiers:
        if kind == "email":
            columns[0].append(sha256_hex(normalized_email(value)))
        elif kind == "phone" and (hashed := meta_phone(value)):
            columns[1].append(hashed)
        elif kind == "advertising_id":
            columns[2].append(value)
    rows = max(len(column) for column in columns)
    if not rows:
        return None
    data = [[column[n] if n < len(column) else "" for column in columns] for n in range(rows)]
    return {"operation": "add" if change.kind == seg.CHANGE_KIND_ENTER else "remove",
            "schema": list(META_SCHEMA), "data": data}
