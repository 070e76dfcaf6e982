"""The collector's rules, from `config/collector.yaml`: how tracking-spec messages become events,
and the limits of the HTTP edge. Validated once at start: a misspelt key or an identifier type
the identity rules do not declare stops the server with the entry named."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.errors import ConfigurationError
from server.yaml_config import FrozenMapping, load_mapping

DEFAULT_COLLECTOR_FILE = Path(__file__).resolve().parents[2] / "config" / "collector.yaml"
CALL_TYPES = ("identify", "track", "page", "screen", "group", "alias")
CHANNELS = ("online", "offline")
PERSONAL = ("ip", "userAgent")
_KEYS = {"default_source", "default_channel", "channels", "identifiers", "alias_previous_id", "types", "traits",
         "context_properties", "personal", "max_message_bytes", "max_request_bytes", "max_batch_messages",
         "max_concurrent_requests", "allowed_origins"}


@dataclass(frozen=True)
class TrackingRules:
    """How a message of the tracking spec maps onto an event (server/identity/tracking.py)."""

    default_source: str = "web"
    default_channel: str = "online"
    channels: Mapping[str, str] = field(default_factory=FrozenMapping)
    identifiers: Mapping[str, str] = field(default_factory=FrozenMapping)  # dotted path -> identifier type
    alias_previous_id: str = "anonymous_id"
    types: Mapping[str, str] = field(default_factory=FrozenMapping)  # call type -> touchpoint type template
    traits: Mapping[str, str] = field(default_factory=FrozenMapping)  # dotted trait path -> person trait
    context_properties: tuple[str, ...] = ()
    personal: frozenset[str] = frozenset()

    def channel_of(self, source: str) -> str:
        return self.channels.get(source, self.default_channel)


@dataclass(frozen=True)
class CollectorLimits:
    """The HTTP edge's limits (server/api/collector_http.py)."""

    max_message_bytes: int = 32768
    max_request_bytes: int = 512000
    max_batch_messages: int = 2500
    max_concurrent_requests: int = 64
    allowed_origins: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class CollectorConfig:
    tracking: TrackingRules
    limits: CollectorLimits


def load_collector_config(path: Path, identifier_types: frozenset[str]) -> CollectorConfig:
    data = load_mapping(path, "collector")
    where = f"collector file {path}"
    unknown = set(data) - _KEYS
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)}")
    identifiers = _strings(data.get("identifiers", {}), f"{where}: identifiers")
    alias_type = str(data.get("alias_previous_id", "anonymous_id"))
    for path_, type_name in [*identifiers.items(), ("alias_previous_id", alias_type)]:
        if type_name not in identifier_types:
            raise ConfigurationError(f"{where}: {path_} maps to identifier type {type_name!r}, which the identity "
                                     f"rules do not declare ({', '.join(sorted(identifier_types))})")
    types = {**{call: call for call in CALL_TYPES}, **_strings(data.get("types", {}), f"{where}: types")}
    if set(types) - set(CALL_TYPES):
        raise ConfigurationError(f"{where}: types: unknown call types {sorted(set(types) - set(CALL_TYPES))}")
    channels = _strings(data.get("channels", {}), f"{where}: channels")
    default_channel = str(data.get("default_channel", "online"))
    for name, channel in [*channels.items(), ("default_channel", default_channel)]:
        if channel not in CHANNELS:
            raise ConfigurationError(f"{where}: {name}: channel must be online or offline, not {channel!r}")
    personal = _list(data.get("personal", []), f"{where}: personal")
    if set(personal) - set(PERSONAL):
        raise ConfigurationError(f"{where}: personal may list {', '.join(PERSONAL)}, not {sorted(set(personal) - set(PERSONAL))}")
    tracking = TrackingRules(
        default_source=str(data.get("default_source", "web")), default_channel=default_channel,
        channels=FrozenMapping(channels), identifiers=FrozenMapping(identifiers), alias_previous_id=alias_type,
        types=FrozenMapping(types), traits=FrozenMapping(_strings(data.get("traits", {}), f"{where}: traits")),
        context_properties=tuple(_list(data.get("context_properties", []), f"{where}: context_properties")),
        personal=frozenset(personal))
    limits = CollectorLimits(**{name: _positive(data, name, where) for name in (
        "max_message_bytes", "max_request_bytes", "max_batch_messages", "max_concurrent_requests") if name in data},
        allowed_origins=tuple(_list(data.get("allowed_origins", ["*"]), f"{where}: allowed_origins")))
    return CollectorConfig(tracking, limits)


def _strings(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigurationError(f"{where} must map names to names")
    return dict(value)


def _list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{where} must be a list of names")
    return list(value)


def _positive(data: Mapping[str, Any], name: str, where: str) -> int:
    value = data[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{where}: {name} must be a positive whole number")
    return value
