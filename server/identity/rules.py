"""Identity rules loaded from `config/identity.yaml`: identifier types and their normalisation.

Configuration is data, validated once at start: a wrong entry stops the server with a
message that names it, rather than surfacing as odd behaviour under load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import phonenumbers
import yaml

from server.errors import ConfigurationError

DEFAULT_RULES_FILE = Path(__file__).resolve().parents[2] / "config" / "identity.yaml"
NORMALISATION_RULES = ("email", "phone", "id")


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

    def type_named(self, name: str) -> IdentifierType | None:
        return self.identifier_types.get(name)


def load_rules(path: Path = DEFAULT_RULES_FILE) -> IdentityRules:
    """Reads and validates the rules file; raises ConfigurationError naming the bad entry."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"identity rules file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"identity rules file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"identity rules file {path} must hold a mapping")
    return parse_rules(data, source=str(path))


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
    return IdentityRules(MappingProxyType(types), region, max_length)


def _identifier_type(name: str, spec: Any, source: str) -> IdentifierType:
    if not isinstance(spec, dict):
        raise ConfigurationError(f"{source}: identifier_types.{name} must be a mapping")
    rule = spec.get("rule")
    if rule not in NORMALISATION_RULES:
        raise ConfigurationError(
            f"{source}: identifier_types.{name}.rule is {rule!r}; expected one of {', '.join(NORMALISATION_RULES)}"
        )
    return IdentifierType(name=name, rule=rule, strong=bool(spec.get("strong", False)))
