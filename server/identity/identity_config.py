"""Identity rules loaded from `config/identity.yaml`: identifier types and their normalisation.

Configuration is data, validated once at start: a wrong entry stops the server with a
message that names it, rather than surfacing as odd behaviour under load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers

from server.errors import ConfigurationError
from server.identity.consent import DEFAULT_CONSENT_RULES, ConsentRules, parse_consent_rules
from server.identity.values import GRAPH_LABELS, identifier_type_label
from server.yaml_config import FrozenMapping, load_mapping

DEFAULT_RULES_FILE = Path(__file__).resolve().parents[2] / "config" / "identity.yaml"
NORMALISATION_RULES = ("email", "phone", "id")
# What ingest does with an identifier of a type it does not know: keep the value on the
# touchpoint as invalid (it links nothing; a replay after the type is declared links it),
# or reject the whole event into quarantine.
UNKNOWN_TYPE_POLICIES = ("keep", "reject")


@dataclass(frozen=True)
class IdentifierType:
    """How one identifier type is normalised, and whether it names a known person."""

    name: str
    rule: str
    strong: bool


@dataclass(frozen=True)
class IdentityRules:
    identifier_types: Mapping[str, IdentifierType]
    default_region: str
    max_value_length: int
    priority: tuple[str, ...] = ()
    per_profile_limits: Mapping[str, int] = field(default_factory=dict)
    shared_after: int = 2
    blocklist: Mapping[str, frozenset[str]] = field(default_factory=dict)
    max_identifiers_per_event: int = 16
    source_priority: tuple[str, ...] = ()
    # Names sources use for configured types (anonymousId -> anonymous_id), lower-cased.
    aliases: Mapping[str, str] = field(default_factory=dict)
    unknown_types: str = "keep"
    max_properties: int = 100
    max_traits: int = 100
    max_event_bytes: int = 65536
    consent: ConsentRules = DEFAULT_CONSENT_RULES

    def type_named(self, name: str) -> IdentifierType | None:
        """The configured type a source's name stands for: the name itself, or an alias, in
        any case (`Email`, `anonymousId`)."""
        kind = self.identifier_types.get(name)
        if kind is not None:
            return kind
        folded = name.lower()
        return self.identifier_types.get(self.aliases.get(folded, folded))

    def rank(self, type_name: str) -> int:
        """Lower is more important; types missing from `priority` come last, in name order."""
        try:
            return self.priority.index(type_name)
        except ValueError:
            return len(self.priority)

    def is_strong(self, type_name: str) -> bool:
        kind = self.identifier_types.get(type_name)
        return bool(kind and kind.strong)

    def strong_types(self) -> frozenset[str]:
        """Types that name one known person: a profile without any is still anonymous."""
        return frozenset(name for name, kind in self.identifier_types.items() if kind.strong)

    def is_blocklisted(self, type_name: str, raw_value: str) -> bool:
        return raw_value.strip().lower() in self.blocklist.get(type_name, frozenset())

    def source_rank(self, source: str) -> int:
        """Lower is more trusted for the golden record."""
        try:
            return self.source_priority.index(source)
        except ValueError:
            return len(self.source_priority)


def load_rules(path: Path = DEFAULT_RULES_FILE) -> IdentityRules:
    """Reads and validates the rules file; raises ConfigurationError naming the bad entry."""
    return parse_rules(load_mapping(path, "identity rules"), source=str(path))


def parse_rules(data: Mapping[str, Any], source: str = "identity rules") -> IdentityRules:
    region = str(data.get("default_region", "US")).upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigurationError(f"{source}: default_region {region!r} is not a region libphonenumber knows")
    raw_types = data.get("identifier_types")
    if not isinstance(raw_types, dict) or not raw_types:
        raise ConfigurationError(f"{source}: identifier_types must map type names to their rules")
    types = {name: _identifier_type(name, spec, source) for name, spec in raw_types.items()}
    max_length = data.get("max_value_length", 512)
    if not isinstance(max_length, int) or max_length < 1:
        raise ConfigurationError(f"{source}: max_value_length must be a positive whole number")
    return IdentityRules(
        identifier_types=FrozenMapping(types),
        default_region=region,
        max_value_length=max_length,
        priority=_priority(data, types, source),
        per_profile_limits=FrozenMapping(_limits(data, types, source)),
        shared_after=_positive(data, "shared_after", 2, source),
        blocklist=FrozenMapping(_blocklist(data, types, source)),
        max_identifiers_per_event=_positive(data, "max_identifiers_per_event", 16, source),
        source_priority=tuple(str(s) for s in data.get("source_priority", []) or []),
        aliases=FrozenMapping(_aliases(data, types, source)),
        unknown_types=_unknown_types(data, source),
        max_properties=_positive(data, "max_properties", 100, source),
        max_traits=_positive(data, "max_traits", 100, source),
        max_event_bytes=_positive(data, "max_event_bytes", 65536, source),
        consent=parse_consent_rules(data.get("consent"), source),
    )


def _aliases(data: Mapping[str, Any], types: Mapping[str, IdentifierType], source: str) -> dict[str, str]:
    """Alias -> type, keyed lower-case (sources disagree on case: anonymousId, anonymousID)."""
    listed = data.get("aliases") or {}
    if not isinstance(listed, dict):
        raise ConfigurationError(f"{source}: aliases must map names sources use to identifier types")
    folded_types = {name.lower() for name in types}
    aliases: dict[str, str] = {}
    for alias, target in listed.items():
        folded = str(alias).strip().lower()
        if target not in types:
            raise ConfigurationError(f"{source}: aliases.{alias} names unknown identifier type {target!r}")
        if folded in folded_types:
            raise ConfigurationError(f"{source}: aliases.{alias} is itself an identifier type")
        if folded in aliases and aliases[folded] != target:
            raise ConfigurationError(f"{source}: aliases.{alias} is declared twice (names are compared case-blind)")
        aliases[folded] = target
    return aliases


def _unknown_types(data: Mapping[str, Any], source: str) -> str:
    policy = data.get("unknown_identifier_types", "keep")
    if policy not in UNKNOWN_TYPE_POLICIES:
        raise ConfigurationError(f"{source}: unknown_identifier_types is {policy!r}; "
                                 f"expected one of {', '.join(UNKNOWN_TYPE_POLICIES)}")
    return str(policy)


def _positive(data: Mapping[str, Any], key: str, default: int, source: str) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{source}: {key} must be a positive whole number")
    return value


def _known_types(names: Any, types: Mapping[str, IdentifierType], key: str, source: str) -> list[str]:
    unknown = sorted(set(names) - set(types))
    if unknown:
        raise ConfigurationError(f"{source}: {key} names unknown identifier types: {', '.join(map(str, unknown))}")
    return list(names)


def _priority(data: Mapping[str, Any], types: Mapping[str, IdentifierType], source: str) -> tuple[str, ...]:
    listed = data.get("priority") or []
    if not isinstance(listed, list) or len(set(listed)) != len(listed):
        raise ConfigurationError(f"{source}: priority must be a list of identifier types without repeats")
    _known_types(listed, types, "priority", source)
    return tuple(listed) + tuple(sorted(set(types) - set(listed)))


def _limits(data: Mapping[str, Any], types: Mapping[str, IdentifierType], source: str) -> dict[str, int]:
    limits = data.get("per_profile_limits") or {}
    if not isinstance(limits, dict):
        raise ConfigurationError(f"{source}: per_profile_limits must map identifier types to numbers")
    _known_types(limits, types, "per_profile_limits", source)
    for name, limit in limits.items():
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigurationError(f"{source}: per_profile_limits.{name} must be a positive whole number")
    return dict(limits)


def _blocklist(data: Mapping[str, Any], types: Mapping[str, IdentifierType], source: str) -> dict[str, frozenset[str]]:
    listed = data.get("blocklist") or {}
    if not isinstance(listed, dict):
        raise ConfigurationError(f"{source}: blocklist must map identifier types to lists of values")
    _known_types(listed, types, "blocklist", source)
    return {name: frozenset(str(v).strip().lower() for v in values or []) for name, values in listed.items()}


def _identifier_type(name: str, spec: Any, source: str) -> IdentifierType:
    if not isinstance(spec, dict):
        raise ConfigurationError(f"{source}: identifier_types.{name} must be a mapping")
    rule = spec.get("rule")
    if rule not in NORMALISATION_RULES:
        raise ConfigurationError(
            f"{source}: identifier_types.{name}.rule is {rule!r}; expected one of {', '.join(NORMALISATION_RULES)}"
        )
    label = identifier_type_label(name)
    if not label or label in GRAPH_LABELS:
        raise ConfigurationError(f"{source}: identifier_types.{name}: its label would be {label or 'empty'!r}; "
                                 f"a type needs a letter or digit, and none of the graph's own labels "
                                 f"({', '.join(sorted(GRAPH_LABELS))})")
    return IdentifierType(name=name, rule=rule, strong=bool(spec.get("strong", False)))
