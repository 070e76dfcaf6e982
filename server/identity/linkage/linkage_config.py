"""Linkage rules loaded from `config/linkage.yaml`: compared fields, blocking passes, thresholds.

Configuration is data, validated once at start: a misspelt field or blocking pass stops the
server with a message naming the entry, instead of silently linking on fewer fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard


from server.errors import ConfigurationError
from server.yaml_config import load_mapping
from server.identity.linkage.attributes import ATTRIBUTE_NAMES, BLOCKING_PASSES

DEFAULT_LINKAGE_FILE = Path(__file__).resolve().parents[3] / "config" / "linkage.yaml"

# Comparators and whether they band a string similarity (and so need `bands`).
COMPARATORS = {"name": True, "string": True, "exact": False, "date": False, "postcode": False, "number": False}
MAX_BANDS = 3


@dataclass(frozen=True)
class FieldRule:
    """How one attribute of two records is compared.

    `bands` are ascending similarity thresholds (Jaro-Winkler) between "different" and
    "exact"; `swap_with` names the field whose value a data-entry error may have swapped
    with this one (given name and surname), so the pair is also compared crosswise.
    """

    name: str
    comparator: str
    bands: tuple[float, ...] = ()
    swap_with: str | None = None
    # A field whose exact agreement already implies this one's (a postcode implies its town):
    # then this field's agreement adds no evidence, only its disagreement does.
    implied_by: str | None = None


@dataclass(frozen=True)
class FitSettings:
    """How a model is fitted and what a fit must pass before it may be used (estimation.py)."""

    sample_records: int = 5000  # records whose candidate pairs feed m, and random pairs feed u
    random_pairs: int = 10_000  # random pairs of those records for u's fuzzy levels
    m_prior_pairs: float = 20.0  # pseudo-pairs of a prior belief that matches agree
    max_iterations: int = 200
    min_labelled_pairs: int = 20  # known matches needed before they check the fit
    min_labelled_agreement: float = 0.5  # share of known matches the fit must score as evidence for a match
    max_matches_per_record: float = 3.0  # a prior implying more matching pairs per record is implausible
    # The prior's evidence (estimation.prior_from_rules): pairs that agree exactly on every field
    # of one of these rules are counted as matches, and divided by the rules' recall (the share
    # of known matches they catch; `prior_rules_recall` while too few known matches say).
    prior_rules: tuple[tuple[str, ...], ...] = (("given_name", "surname", "date_of_birth"),
                                                ("given_name", "surname", "street_number", "address_1", "postcode"))
    prior_rules_recall: float = 0.5


@dataclass(frozen=True)
class DecisionGuards:
    """Vetoes on automatic links, whatever the score: Fellegi-Sunter assumes fields agree
    independently, and a household (one surname, one address) or a namesake breaks that."""

    names_and_dob_disagree: bool = True
    household: bool = True
    namesake: bool = True


@dataclass(frozen=True)
class LinkageRules:
    fields: tuple[FieldRule, ...]
    blocking: tuple[str, ...]
    max_block_size: int
    upper: float
    lower: float
    min_fields: int
    fitting: FitSettings = FitSettings()
    guards: DecisionGuards = DecisionGuards()

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.fields)

    @property
    def implied(self) -> tuple[tuple[str, str], ...]:
        """(field, the field whose exact agreement implies it) pairs."""
        return tuple((rule.name, rule.implied_by) for rule in self.fields if rule.implied_by)


def load_linkage_rules(path: Path | None = None) -> LinkageRules:
    """Reads and validates the linkage file; raises ConfigurationError naming the bad entry."""
    path = path or DEFAULT_LINKAGE_FILE
    return parse_linkage_rules(load_mapping(path, "linkage rules"), source=str(path))


def parse_linkage_rules(data: Mapping[str, Any], source: str = "linkage rules") -> LinkageRules:
    """Validates an already-parsed mapping; `source` names it in error messages."""
    fields = _fields(data.get("fields"), source)
    upper = _probability(data, "upper", source)
    lower = _probability(data, "lower", source)
    if lower > upper:
        raise ConfigurationError(f"{source}: lower ({lower}) must not exceed upper ({upper})")
    min_fields = _whole(data, "min_fields", source)
    if min_fields > len(fields):
        raise ConfigurationError(f"{source}: min_fields ({min_fields}) exceeds the {len(fields)} compared fields")
    return LinkageRules(
        fields=fields,
        blocking=_blocking(data.get("blocking"), source),
        max_block_size=_whole(data, "max_block_size", source, minimum=2),
        upper=upper,
        lower=lower,
        min_fields=min_fields,
        fitting=_fitting(data.get("fitting", {}), source, tuple(rule.name for rule in fields)),
        guards=_guards(data.get("guards", {}), source),
    )


def _fitting(raw: Any, source: str, compared: tuple[str, ...]) -> FitSettings:
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{source}: fitting must be a mapping of settings")
    defaults = FitSettings()
    unknown = sorted(set(raw) - set(defaults.__dataclass_fields__))
    if unknown:
        raise ConfigurationError(f"{source}: fitting.{unknown[0]} is not a setting; expected some of "
                                 f"{', '.join(defaults.__dataclass_fields__)}")
    where = f"{source}: fitting"
    merged = {**{k: getattr(defaults, k) for k in defaults.__dataclass_fields__}, **raw}
    for key in ("sample_records", "random_pairs", "max_iterations", "min_labelled_pairs"):
        _whole(merged, key, where, minimum=1 if key != "min_labelled_pairs" else 0)
    for key in ("m_prior_pairs", "max_matches_per_record"):
        if not _is_number(merged[key]) or float(merged[key]) <= 0:
            raise ConfigurationError(f"{where}: {key} must be a positive number")
    agreement = merged["min_labelled_agreement"]
    if not _is_number(agreement) or not 0.0 <= float(agreement) <= 1.0:
        raise ConfigurationError(f"{where}: min_labelled_agreement must be a share between 0 and 1")
    recall = merged["prior_rules_recall"]
    if not _is_number(recall) or not 0.0 < float(recall) <= 1.0:
        raise ConfigurationError(f"{where}: prior_rules_recall must be a share above 0 and at most 1")
    merged["prior_rules"] = _prior_rules(merged["prior_rules"], where, compared)
    return FitSettings(**merged)


def _prior_rules(raw: Any, where: str, compared: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Deterministic rules for the prior: each a non-empty list of compared fields."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigurationError(f"{where}: prior_rules must list at least one rule (a list of compared fields)")
    rules = []
    for n, rule in enumerate(raw):
        if not isinstance(rule, (list, tuple)) or not rule or not all(isinstance(f, str) for f in rule):
            raise ConfigurationError(f"{where}: prior_rules[{n}] must be a non-empty list of field names")
        unknown = [f for f in rule if f not in compared]
        if unknown:
            raise ConfigurationError(f"{where}: prior_rules[{n}] names {', '.join(unknown)}, not a compared field; "
                                     f"expected some of {', '.join(compared)}")
        rules.append(tuple(rule))
    return tuple(rules)


def _guards(raw: Any, source: str) -> DecisionGuards:
    names = DecisionGuards.__dataclass_fields__
    if not isinstance(raw, dict) or any(k not in names or not isinstance(v, bool) for k, v in raw.items()):
        raise ConfigurationError(f"{source}: guards must map some of {', '.join(names)} to true or false")
    return DecisionGuards(**raw)


def _fields(raw: Any, source: str) -> tuple[FieldRule, ...]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigurationError(f"{source}: fields must map attribute names to their comparators")
    fields = tuple(_field(name, spec, source) for name, spec in raw.items())
    by_name = {rule.name: rule for rule in fields}
    for rule in fields:
        _check_swap(rule, by_name, source)
        if rule.implied_by is not None and rule.implied_by not in by_name:
            raise ConfigurationError(f"{source}: fields.{rule.name}.implied_by names {rule.implied_by!r}, "
                                     f"which is not a compared field")
    return fields


def _field(name: str, spec: Any, source: str) -> FieldRule:
    where = f"{source}: fields.{name}"
    if name not in ATTRIBUTE_NAMES:
        raise ConfigurationError(f"{where} is not a person attribute; expected one of {', '.join(ATTRIBUTE_NAMES)}")
    if not isinstance(spec, dict):
        raise ConfigurationError(f"{where} must be a mapping with a comparator")
    comparator = spec.get("comparator")
    if comparator not in COMPARATORS:
        raise ConfigurationError(f"{where}.comparator is {comparator!r}; expected one of {', '.join(COMPARATORS)}")
    swap = spec.get("swap_with")
    if swap is not None and not isinstance(swap, str):
        raise ConfigurationError(f"{where}.swap_with must name another field")
    implied = spec.get("implied_by")
    if implied is not None and (not isinstance(implied, str) or implied == name):
        raise ConfigurationError(f"{where}.implied_by must name another field")
    return FieldRule(name=name, comparator=comparator, bands=_bands(spec, comparator, where), swap_with=swap,
                     implied_by=implied)


def _bands(spec: Mapping[str, Any], comparator: str, where: str) -> tuple[float, ...]:
    raw: Any = spec.get("bands")  # YAML: any shape until checked below
    if not COMPARATORS[comparator]:
        if raw:
            raise ConfigurationError(f"{where}.bands does not apply to the {comparator} comparator")
        return ()
    valid = isinstance(raw, list) and 1 <= len(raw) <= MAX_BANDS
    bands = tuple(float(b) for b in raw) if valid and all(_is_number(b) for b in raw) else ()
    if not bands or list(bands) != sorted(set(bands)) or not all(0.0 < b < 1.0 for b in bands):
        raise ConfigurationError(
            f"{where}.bands must list 1 to {MAX_BANDS} ascending similarities strictly between 0 and 1"
        )
    return bands


def _check_swap(rule: FieldRule, by_name: Mapping[str, FieldRule], source: str) -> None:
    if rule.swap_with is None:
        return
    other = by_name.get(rule.swap_with)
    if other is None or other.swap_with != rule.name or other.comparator != rule.comparator:
        raise ConfigurationError(
            f"{source}: fields.{rule.name}.swap_with must name a compared field with the same comparator "
            f"that names {rule.name!r} back"
        )


def _blocking(raw: Any, source: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or len(set(raw)) != len(raw):
        raise ConfigurationError(f"{source}: blocking must list blocking passes without repeats")
    unknown = [str(name) for name in raw if name not in BLOCKING_PASSES]
    if unknown:
        raise ConfigurationError(
            f"{source}: blocking names unknown passes {', '.join(unknown)}; "
            f"expected some of {', '.join(BLOCKING_PASSES)}"
        )
    return tuple(raw)


def _probability(data: Mapping[str, Any], key: str, source: str) -> float:
    value = data.get(key)
    if not _is_number(value) or not 0.0 < float(value) < 1.0:
        raise ConfigurationError(f"{source}: {key} must be a probability strictly between 0 and 1")
    return float(value)


def _whole(data: Mapping[str, Any], key: str, source: str, minimum: int = 1) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigurationError(f"{source}: {key} must be a whole number of at least {minimum}")
    return value


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
