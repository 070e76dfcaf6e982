"""Messages of Segment's tracking spec (identify, track, page, screen, group, alias) as events.

A pure translation, driven by `config/collector.yaml` (TrackingRules): the HTTP collector
parses and authenticates, this decides what a message means, and the Ingestor validates and
stores the result like any gRPC event, so a message has the same fate whichever way it came.

Two kinds of fault, on purpose:
- a message the spec cannot read (not an object, no or an unknown call type) is a
  MessageFault: the request is refused whole, nothing of it is stored;
- a message that reads but cannot be kept as a touchpoint (neither userId nor anonymousId,
  a timestamp that is no time) becomes an event carrying its problem, which the Ingestor
  rejects into quarantine with the reason, while the other messages of the batch are stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from server.identity.quarantine import BAD_TIMESTAMP, NO_USER_OR_ANONYMOUS_ID
from server.identity.tracking_config import CALL_TYPES, TrackingRules
from server.identity.values import EventInput
# Keys of a message that are not kept as properties: identifiers, times, the call's own fields.
_ENVELOPE = {"type", "messageId", "timestamp", "originalTimestamp", "sentAt", "receivedAt", "userId",
             "anonymousId", "context", "integrations", "writeKey", "version", "channel", "_metadata"}


class MessageFault(ValueError):
    """A message the tracking spec cannot read; the request is refused whole (400)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Delivery:
    """What the transport knows of a request: who sent it, when it arrived, and the batch's
    own `sentAt` and `context` (which every message of a batch inherits)."""

    source: str
    received_at: datetime
    sent_at: Any = None
    context: Mapping[str, Any] = field(default_factory=dict)


def call_type(message: Any, path_call: str | None) -> str:
    """The call type: the endpoint's (/v1/track), else the message's `type` (in a batch)."""
    if not isinstance(message, dict):
        raise MessageFault("not_an_object", "a message must be a JSON object")
    call = path_call or message.get("type")
    if not isinstance(call, str) or not call:
        raise MessageFault("no_type", "a message of a batch needs a `type` (identify, track, page, screen, "
                                      "group or alias)")
    if call not in CALL_TYPES:
        raise MessageFault("unknown_type", f"unknown call type {call[:50]!r}: expected one of {', '.join(CALL_TYPES)}")
    if call == "track" and not _text(message.get("event")):
        raise MessageFault("no_event", "a track call needs its `event` name")
    return call


def to_event(message: Mapping[str, Any], call: str, delivery: Delivery, rules: TrackingRules) -> EventInput:
    """The event a message means (call from call_type)."""
    event_id = _text(message.get("messageId")) or derived_id(message, delivery.source)
    message = {**message, "context": {**delivery.context, **_mapping(message.get("context"))}}
    identifiers = _identifiers(message, call, rules)
    occurred_at, problem = occurred(message, delivery)
    code = BAD_TIMESTAMP if problem else ""
    if not problem and not (_text(message.get("userId")) or _text(message.get("anonymousId"))):
        problem, code = "the message has neither userId nor anonymousId (the tracking spec needs one)", NO_USER_OR_ANONYMOUS_ID
    return EventInput(
        event_id=event_id,
        occurred_at=occurred_at,
        source=delivery.source,
        channel=rules.channel_of(delivery.source),
        type=_touchpoint_type(message, call, rules),
        identifiers=identifiers,
        traits=_traits(message, call, rules),
        properties=_properties(message, call, rules),
        problem=problem,
        problem_code=code,
        received_at=delivery.received_at,
        consent=consent_of(message),
    )


def consent_of(message: Mapping[str, Any]) -> dict[str, object]:
    """The consent statements a message carries, as sent (ingest warns of what is not a
    true/false choice): Segment's `context.consent.categoryPreferences` ({category: bool})
    and RudderStack's `context.consentManagement` (allowedConsentIds, deniedConsentIds).
    A category stated both ways is denied."""
    context = _mapping(message.get("context"))
    found: dict[str, object] = {}

    def state(name: str, value: object) -> None:
        held = found.get(name)
        if isinstance(held, bool) and isinstance(value, bool):
            found[name] = held and value
        elif held is None or isinstance(value, bool):  # an invalid value states nothing
            found[name] = value

    preferences = _mapping(context.get("consent")).get("categoryPreferences")
    if isinstance(preferences, dict):
        for category, choice in preferences.items():
            state(str(category), choice)
    elif preferences is not None:
        state("categoryPreferences", preferences)  # not an object: an invalid value, warned of
    management = _mapping(context.get("consentManagement"))
    for key, granted in (("allowedConsentIds", True), ("deniedConsentIds", False)):
        ids = management.get(key)
        for n, consent_id in enumerate(ids if isinstance(ids, list) else [] if ids is None else [ids]):
            if isinstance(consent_id, str | int) and not isinstance(consent_id, bool) and str(consent_id).strip():
                state(str(consent_id).strip(), granted)
            else:
                state(f"{key}[{n}]", consent_id)  # not an id: an invalid value, warned of
    return found


def occurred(message: Mapping[str, Any], delivery: Delivery) -> tuple[datetime | None, str]:
    """When it happened, corrected for the device's clock as the spec says:
    receivedAt - (sentAt - originalTimestamp). A `timestamp` the source set is taken as is."""
    try:
        original = _time(message.get("originalTimestamp"), "originalTimestamp")
        sent = _time(message.get("sentAt", delivery.sent_at), "sentAt")
        stamped = _time(message.get("timestamp"), "timestamp")
    except ValueError as exc:
        return None, str(exc)
    if original is not None and sent is not None:
        return delivery.received_at - (sent - original), ""
    return stamped or original, ""


def derived_id(message: Mapping[str, Any], source: str) -> str:
    """An event id for a message without messageId: the same message sent twice gets the same id."""
    body = {k: v for k, v in message.items() if k not in ("sentAt", "writeKey")}
    canonical = json.dumps([source, body], sort_keys=True, ensure_ascii=False, default=str)
    return "tracking-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def _identifiers(message: Mapping[str, Any], call: str, rules: TrackingRules) -> tuple[tuple[str, str], ...]:
    found: dict[tuple[str, str], None] = {}
    for path, type_name in rules.identifiers.items():
        if (value := _text(_at(message, path))):
            found[(type_name, value)] = None
    if call == "alias" and (previous := _text(message.get("previousId"))):
        found[(rules.alias_previous_id, previous)] = None
    return tuple(found)


def _touchpoint_type(message: Mapping[str, Any], call: str, rules: TrackingRules) -> str:
    template = rules.types.get(call, call)
    return template.replace("{event}", _text(message.get("event"))).replace("{name}", _text(message.get("name")))


def _traits(message: Mapping[str, Any], call: str, rules: TrackingRules) -> dict[str, str]:
    """Person traits: the context's, then the message's own (identify's); group traits are a
    company's and never a person's (they go to properties)."""
    skip = {path.split(".", 1)[1] for path in rules.identifiers if path.startswith(("traits.", "context.traits."))}
    traits: dict[str, str] = {}
    sources = [_mapping(_mapping(message.get("context")).get("traits"))]
    if call != "group":
        sources.append(_mapping(message.get("traits")))
    for source in sources:
        for key, value in flatten(source):
            if key not in skip:
                traits[rules.traits.get(key, key)] = value
    return traits


def _properties(message: Mapping[str, Any], call: str, rules: TrackingRules) -> dict[str, str]:
    properties = dict(flatten(_mapping(message.get("properties"))))
    if call in ("page", "screen"):
        for key in ("name", "category"):
            if (value := _text(message.get(key))):
                properties[key] = value
    if call == "group":
        properties["group_id"] = _text(message.get("groupId"))
        properties.update((f"group.{k}", v) for k, v in flatten(_mapping(message.get("traits"))))
    context = _mapping(message.get("context"))
    for path in rules.context_properties:
        value = _at(context, path)
        if isinstance(value, dict):
            properties.update(flatten(value, path))
        elif value is not None:
            properties[path] = _value(value)
    for spec_key, kept_as in (("ip", "ip"), ("userAgent", "user_agent")):
        if spec_key in rules.personal and (value := _text(context.get(spec_key))):
            properties[kept_as] = value
    return {k: v for k, v in properties.items() if v != ""}


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Nested objects as dotted keys; lists as JSON text; null left out."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    elif value is not None and prefix:
        yield prefix, _value(value)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _at(message: Mapping[str, Any], path: str) -> Any:
    value: Any = message
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str:
    """An id-like value as text: strings trimmed, numbers as written; anything else is none."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _value(value)
    return ""


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _time(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} {_value(value)[:50]!r} is not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{name} {value[:50]!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
