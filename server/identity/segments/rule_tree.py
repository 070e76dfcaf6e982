"""The segment rule tree: and / or / not over conditions on traits, identifiers, touchpoints,
other segments and consent.

It mirrors `identity.v1.Rule` in domain terms. A definition is validated once, when it is
stored, with a message that names the bad node by its proto-JSON path. Its dict form has the
shape of protobuf's JSON mapping of Rule, so rule files people write and the JSON stored in
Neo4j are one format; it is implemented here because the domain must not import generated code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from server.errors import InvalidArgument

Channel = Literal["online", "offline"]
Aggregate = Literal["count", "sum", "seconds_since_last"]
Comparison = Literal[">=", ">", "<=", "<", "="]

MAX_NAME = 100
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
MAX_KEY = 200
MAX_DEPTH = 32
MAX_NODES = 200
# The largest google.protobuf.Duration (10,000 years), so every valid window converts.
MAX_WINDOW = timedelta(seconds=315_576_000_000)

# Domain values and their names in protobuf's JSON mapping.
CHANNEL_NAMES: Mapping[str, str] = {"online": "CHANNEL_ONLINE", "offline": "CHANNEL_OFFLINE"}
AGGREGATE_NAMES: Mapping[str, str] = {
    "count": "AGGREGATE_COUNT",
    "sum": "AGGREGATE_SUM",
    "seconds_since_last": "AGGREGATE_SECONDS_SINCE_LAST",
}
COMPARISON_NAMES: Mapping[str, str] = {
    ">=": "COMPARISON_GTE",
    ">": "COMPARISON_GT",
    "<=": "COMPARISON_LTE",
    "<": "COMPARISON_LT",
    "=": "COMPARISON_EQ",
}


@dataclass(frozen=True)
class AllOf:
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class AnyOf:
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    rule: Rule


@dataclass(frozen=True)
class TraitEquals:
    key: str
    value: str


@dataclass(frozen=True)
class TraitIn:
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class TraitPrefix:
    key: str
    prefix: str


@dataclass(frozen=True)
class TraitRange:
    """Inclusive bounds, None for an open end; strings compare as text (ISO dates sort right)."""

    key: str
    min: str | None = None
    max: str | None = None
    numeric: bool = False


@dataclass(frozen=True)
class TraitExists:
    key: str
    exists: bool = True


@dataclass(frozen=True)
class HasIdentifierType:
    type: str


@dataclass(frozen=True)
class IsAnonymous:
    """No identifier of a known-person (strong) type; which types those are is configuration."""


@dataclass(frozen=True, kw_only=True)
class TouchpointAggregate:
    """An aggregate over the profile's touchpoints, e.g. count of purchases in 30 days >= 2.

    Empty filters match everything; `window` None means all time; `property` is the numeric
    event property that `sum` adds up.
    """

    types: tuple[str, ...] = ()
    channels: tuple[Channel, ...] = ()
    sources: tuple[str, ...] = ()
    window: timedelta | None = None
    aggregate: Aggregate
    property: str | None = None
    comparison: Comparison
    value: float


@dataclass(frozen=True)
class InSegment:
    name: str


@dataclass(frozen=True)
class ConsentIs:
    """The profile's consent for a configured category is granted (granted=False: it is not:
    denied, in conflict, or never stated with a default of denied)."""

    category: str
    granted: bool = True


Rule = (
    AllOf | AnyOf | Not | TraitEquals | TraitIn | TraitPrefix | TraitRange | TraitExists
    | HasIdentifierType | IsAnonymous | TouchpointAggregate | InSegment | ConsentIs
)
TRAIT_RULES = (TraitEquals, TraitIn, TraitPrefix, TraitRange, TraitExists)


@dataclass(frozen=True)
class SegmentDefinition:
    name: str
    description: str
    rule: Rule


# ---------------------------------------------------------------------------------------------
# Validation


def validate(definition: SegmentDefinition, known_identifier_types: Collection[str],
             consent_categories: Collection[str] = ()) -> None:
    """Raises InvalidArgument naming the first bad node by its path (`rule.all.rules[1].not...`)."""
    _check_name(definition.name, "name")
    for count, (path, depth, node) in enumerate(walk(definition.rule), start=1):
        if depth > MAX_DEPTH:
            raise InvalidArgument(f"{path}: the rule tree is deeper than {MAX_DEPTH} levels")
        if count > MAX_NODES:
            raise InvalidArgument(f"rule has more than {MAX_NODES} nodes")
        _check_node(node, path, definition.name, known_identifier_types)
        if isinstance(node, ConsentIs) and node.category not in consent_categories:
            raise InvalidArgument(f"{path}.consent.category {node.category!r} is not a configured consent category; "
                                  f"expected one of {', '.join(sorted(consent_categories)) or '(none configured)'}")


def walk(rule: Rule, path: str = "rule") -> Iterator[tuple[str, int, object]]:
    """Every node in document order as (path, depth, node); iterative, so any depth is safe."""
    stack: list[tuple[str, int, object]] = [(path, 1, rule)]
    while stack:
        path, depth, node = stack.pop()
        yield path, depth, node
        stack.extend(reversed([(p, depth + 1, child) for p, child in _children(node, path)]))


def _children(node: object, path: str) -> list[tuple[str, object]]:
    if isinstance(node, AllOf | AnyOf):
        field = "all" if isinstance(node, AllOf) else "any"
        return [(f"{path}.{field}.rules[{n}]", child) for n, child in enumerate(node.rules)]
    if isinstance(node, Not):
        return [(f"{path}.not", node.rule)]
    return []


def _check_name(name: str, where: str) -> None:
    if not name:
        raise InvalidArgument(f"{where} is empty")
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"{where} is longer than {MAX_NAME} characters")
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidArgument(f"{where} {name!r} may only hold letters, digits, '_', '.' and '-'")


def _check_node(node: object, path: str, segment: str, known_types: Collection[str]) -> None:
    if isinstance(node, AllOf | AnyOf):
        if not node.rules:
            raise InvalidArgument(f"{path}.{'all' if isinstance(node, AllOf) else 'any'} has no rules")
    elif isinstance(node, TRAIT_RULES):
        _check_trait(node, f"{path}.trait")
    elif isinstance(node, HasIdentifierType):
        if node.type not in known_types:
            raise InvalidArgument(f"{path}.identifier.has_type {node.type!r} is not a known identifier type; "
                                  f"expected one of {', '.join(sorted(known_types))}")
    elif isinstance(node, TouchpointAggregate):
        _check_touchpoints(node, f"{path}.touchpoints")
    elif isinstance(node, InSegment):
        _check_name(node.name, f"{path}.in_segment")
        if node.name == segment:
            raise InvalidArgument(f"{path}.in_segment names the segment itself")
    elif not isinstance(node, Not | IsAnonymous | ConsentIs):
        raise InvalidArgument(f"{path} is not set: expected one of all, any, not, trait, identifier, "
                              "touchpoints, in_segment, consent")


def _check_trait(node: TraitEquals | TraitIn | TraitPrefix | TraitRange | TraitExists, where: str) -> None:
    if not node.key:
        raise InvalidArgument(f"{where}.key is empty")
    if len(node.key) > MAX_KEY:
        raise InvalidArgument(f"{where}.key is longer than {MAX_KEY} characters")
    if isinstance(node, TraitIn) and not node.values:
        raise InvalidArgument(f"{where}.in has no values")
    if isinstance(node, TraitRange):
        _check_range(node, f"{where}.range")


def _check_range(node: TraitRange, where: str) -> None:
    if node.min is None and node.max is None:
        raise InvalidArgument(f"{where} has neither min nor max")
    for name, bound in (("min", node.min), ("max", node.max)):
        if bound == "":
            raise InvalidArgument(f"{where}.{name} is empty; leave it unset for an open bound")
        if node.numeric and bound is not None and _number(bound) is None:
            raise InvalidArgument(f"{where}.{name} {bound!r} is not a number")
    if node.min is not None and node.max is not None:
        # numeric bounds were checked to be numbers above
        if float(node.min) > float(node.max) if node.numeric else node.min > node.max:
            raise InvalidArgument(f"{where}: min {node.min!r} exceeds max {node.max!r}, so nothing can match")


def _number(text: str) -> float | None:
    """The finite number a numeric range bound spells, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_touchpoints(node: TouchpointAggregate, where: str) -> None:
    if node.aggregate not in AGGREGATE_NAMES:
        raise InvalidArgument(f"{where}.aggregate is unspecified; "
                              f"expected one of {', '.join(AGGREGATE_NAMES.values())}")
    if node.comparison not in COMPARISON_NAMES:
        raise InvalidArgument(f"{where}.comparison is unspecified; "
                              f"expected one of {', '.join(COMPARISON_NAMES.values())}")
    _check_filter(node, f"{where}.filter")
    if node.aggregate == "sum" and not node.property:
        raise InvalidArgument(f"{where}: AGGREGATE_SUM needs a property")
    if node.aggregate != "sum" and node.property is not None:
        raise InvalidArgument(f"{where}.property only applies to AGGREGATE_SUM")
    if node.window is not None and node.window <= timedelta(0):
        raise InvalidArgument(f"{where}.window must be positive")
    if node.window is not None and node.window > MAX_WINDOW:
        raise InvalidArgument(f"{where}.window is longer than 10,000 years")
    if not math.isfinite(node.value):
        raise InvalidArgument(f"{where}.value must be a finite number")


def _check_filter(node: TouchpointAggregate, where: str) -> None:
    for n, channel in enumerate(node.channels):
        if channel not in CHANNEL_NAMES:
            raise InvalidArgument(f"{where}.channels[{n}] is unspecified; expected CHANNEL_ONLINE or CHANNEL_OFFLINE")
    for field, values in (("types", node.types), ("sources", node.sources)):
        for n, value in enumerate(values):
            if not value:
                raise InvalidArgument(f"{where}.{field}[{n}] is empty")


def dependencies(rule: Rule) -> frozenset[str]:
    """The segments this rule's membership depends on, so they are evaluated first."""
    return frozenset(node.name for _, _, node in walk(rule) if isinstance(node, InSegment))


def is_time_dependent(rule: Rule) -> bool:
    """Whether membership can change with the clock alone, so the segment needs a schedule."""
    return any(
        isinstance(node, TouchpointAggregate) and (node.window is not None or node.aggregate == "seconds_since_last")
        for _, _, node in walk(rule)
    )


# ---------------------------------------------------------------------------------------------
# Dict form: protobuf's JSON mapping of Rule (MessageToDict, preserving_proto_field_name=True)


def to_dict(rule: Rule) -> dict[str, Any]:
    """The JSON-able form of a validated rule; proto3 defaults are left out, as protobuf does."""
    match rule:
        case AllOf(rules):
            return {"all": _rule_list(rules)}
        case AnyOf(rules):
            return {"any": _rule_list(rules)}
        case Not(inner):
            return {"not": to_dict(inner)}
        case TraitEquals(key, value):
            return {"trait": _trait(key, equals=value)}
        case TraitIn(key, values):
            return {"trait": _trait(key, **{"in": {"values": list(values)} if values else {}})}
        case TraitPrefix(key, prefix):
            return {"trait": _trait(key, prefix=prefix)}
        case TraitRange(key, low, high, numeric):
            bounds = {"min": low, "max": high, "numeric": numeric}
            return {"trait": _trait(key, range={k: v for k, v in bounds.items() if v})}
        case TraitExists(key, exists):
            return {"trait": _trait(key, exists=exists)}
        case HasIdentifierType(type_):
            return {"identifier": {"has_type": type_}}
        case IsAnonymous():
            return {"identifier": {"anonymous": True}}
        case TouchpointAggregate():
            return {"touchpoints": _touchpoints_dict(rule)}
        case InSegment(name):
            return {"in_segment": name}
        case ConsentIs(category, granted):
            return {"consent": {"category": category, "granted": granted}}
    raise TypeError(f"not a rule node: {rule!r}")


def _rule_list(rules: tuple[Rule, ...]) -> dict[str, Any]:
    return {"rules": [to_dict(r) for r in rules]} if rules else {}


def _trait(key: str, **test: Any) -> dict[str, Any]:
    return {"key": key, **test} if key else dict(test)


def _touchpoints_dict(rule: TouchpointAggregate) -> dict[str, Any]:
    lists = {"types": list(rule.types), "channels": [CHANNEL_NAMES[c] for c in rule.channels],
             "sources": list(rule.sources)}
    fields: dict[str, Any] = {}
    if any(lists.values()):
        fields["filter"] = {k: v for k, v in lists.items() if v}
    if rule.window is not None:
        fields["window"] = duration_text(rule.window)
    fields["aggregate"] = AGGREGATE_NAMES[rule.aggregate]
    if rule.property:
        fields["property"] = rule.property
    fields["comparison"] = COMPARISON_NAMES[rule.comparison]
    if rule.value != 0:
        fields["value"] = _json_double(rule.value)
    return fields


def _json_double(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(value)


def duration_text(window: timedelta) -> str:
    """A Duration in protobuf's JSON spelling: '2592000s', '1.500s', '-0.001500s'."""
    micros = window // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    if fraction == 0:
        return f"{sign}{seconds}s"
    if fraction % 1000 == 0:
        return f"{sign}{seconds}.{fraction // 1000:03d}s"
    return f"{sign}{seconds}.{fraction:06d}s"


NODES = ("all", "any", "not", "trait", "identifier", "touchpoints", "in_segment", "consent")
TRAIT_TESTS = ("equals", "in", "prefix", "range", "exists")
DURATION = re.compile(r"(-?)(\d+)(?:\.(\d{1,9}))?s")
SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def from_dict(data: object, path: str = "rule") -> Rule:
    """Reads the dict form; raises InvalidArgument with the path of a malformed node."""
    return _rule(data, path, 1)


def _rule(data: object, path: str, depth: int) -> Rule:
    if depth > MAX_DEPTH:
        raise InvalidArgument(f"{path}: the rule tree is deeper than {MAX_DEPTH} levels")
    fields = _object(data, path, NODES)
    kind = _one_of(fields, path, NODES)
    value, where = fields[kind], f"{path}.{kind}"
    if kind in ("all", "any"):
        rules = _rule_items(value, where, depth)
        return AllOf(rules) if kind == "all" else AnyOf(rules)
    if kind == "not":
        return Not(_rule(value, where, depth + 1))
    if kind == "trait":
        return _trait_rule(value, where)
    if kind == "identifier":
        return _identifier_rule(value, where)
    if kind == "touchpoints":
        return _touchpoints_rule(value, where)
    if kind == "consent":
        fields = _object(value, where, ("category", "granted"))
        if "granted" not in fields:
            raise InvalidArgument(f"{where}.granted is unset: true selects the people who granted the category, "
                                  "false those who did not")
        return ConsentIs(_string(fields.get("category", ""), f"{where}.category"), _bool(fields["granted"], f"{where}.granted"))
    return InSegment(_string(value, where))


def _rule_items(data: object, where: str, depth: int) -> tuple[Rule, ...]:
    items = _list(_object(data, where, ("rules",)).get("rules", []), f"{where}.rules")
    return tuple(_rule(item, f"{where}.rules[{n}]", depth + 1) for n, item in enumerate(items))


def _trait_rule(data: object, where: str) -> Rule:
    fields = _object(data, where, ("key", *TRAIT_TESTS))
    key = _string(fields.get("key", ""), f"{where}.key")
    test = _one_of(fields, where, TRAIT_TESTS, what="test")
    value, at = fields[test], f"{where}.{test}"
    if test == "equals":
        return TraitEquals(key, _string(value, at))
    if test == "in":
        return TraitIn(key, _strings(_object(value, at, ("values",)).get("values", []), f"{at}.values"))
    if test == "prefix":
        return TraitPrefix(key, _string(value, at))
    if test == "range":
        bounds = _object(value, at, ("min", "max", "numeric"))
        return TraitRange(key, _string(bounds.get("min", ""), f"{at}.min") or None,
                          _string(bounds.get("max", ""), f"{at}.max") or None,
                          _bool(bounds.get("numeric", False), f"{at}.numeric"))
    return TraitExists(key, _bool(value, at))


def _identifier_rule(data: object, where: str) -> Rule:
    fields = _object(data, where, ("has_type", "anonymous"))
    if _one_of(fields, where, ("has_type", "anonymous"), what="test") == "has_type":
        return HasIdentifierType(_string(fields["has_type"], f"{where}.has_type"))
    if not _bool(fields["anonymous"], f"{where}.anonymous"):
        raise InvalidArgument(f"{where}.anonymous must be true; "
                              "wrap it in not for profiles with a known-person identifier")
    return IsAnonymous()


def _touchpoints_rule(data: object, where: str) -> Rule:
    fields = _object(data, where, ("filter", "window", "aggregate", "property", "comparison", "value"))
    filters = _object(fields.get("filter", {}), f"{where}.filter", ("types", "channels", "sources"))
    channels = _strings(filters.get("channels", []), f"{where}.filter.channels")
    window = fields.get("window")
    return TouchpointAggregate(
        types=_strings(filters.get("types", []), f"{where}.filter.types"),
        channels=tuple(_enum(c, f"{where}.filter.channels[{n}]", CHANNEL_NAMES) for n, c in enumerate(channels)),
        sources=_strings(filters.get("sources", []), f"{where}.filter.sources"),
        window=None if window is None else _duration(window, f"{where}.window"),
        aggregate=_enum(fields.get("aggregate", "AGGREGATE_UNSPECIFIED"), f"{where}.aggregate", AGGREGATE_NAMES),
        property=_string(fields.get("property", ""), f"{where}.property") or None,
        comparison=_enum(fields.get("comparison", "COMPARISON_UNSPECIFIED"), f"{where}.comparison", COMPARISON_NAMES),
        value=_double(fields.get("value", 0.0), f"{where}.value"),
    )


def _object(data: object, where: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"{where} must be an object with some of {', '.join(allowed)}")
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise InvalidArgument(f"{where} has unknown field {', '.join(unknown)}; expected some of {', '.join(allowed)}")
    return data


def _one_of(fields: Mapping[str, Any], where: str, names: tuple[str, ...], what: str = "node") -> str:
    present = [name for name in names if name in fields]
    if not present:
        raise InvalidArgument(f"{where} has no {what}: set one of {', '.join(names)}")
    if len(present) > 1:
        raise InvalidArgument(f"{where} sets {' and '.join(present)}; set only one")
    return present[0]


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where} must be a string")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{where} must be true or false")
    return value


def _list(value: object, where: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise InvalidArgument(f"{where} must be a list")
    return value


def _strings(value: object, where: str) -> tuple[str, ...]:
    return tuple(_string(item, f"{where}[{n}]") for n, item in enumerate(_list(value, where)))


def _enum(value: object, where: str, names: Mapping[str, str]) -> Any:
    """The domain value whose proto enum name is `value`; the *_UNSPECIFIED name is refused."""
    for domain, name in names.items():
        if value == name:
            return domain
    unspecified = isinstance(value, str) and value.endswith("_UNSPECIFIED")
    raise InvalidArgument(f"{where} is {'unspecified' if unspecified else repr(value)}; "
                          f"expected one of {', '.join(names.values())}")


def _double(value: object, where: str) -> float:
    if isinstance(value, str) and value in SPECIAL_DOUBLES:
        return SPECIAL_DOUBLES[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{where} must be a number")
    try:
        return float(value)
    except OverflowError:
        raise InvalidArgument(f"{where} is too large") from None


def _duration(value: object, where: str) -> timedelta:
    """Parses protobuf's JSON Duration ('2592000s', '1.5s'); timedelta holds microseconds, so
    finer digits are refused rather than silently dropped."""
    match = DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidArgument(f"{where} must be a duration in seconds such as '2592000s'")
    sign, seconds, fraction = match.groups()
    nanos = int((fraction or "").ljust(9, "0"))
    if nanos % 1000:
        raise InvalidArgument(f"{where} is finer than a microsecond")
    if int(seconds) > MAX_WINDOW.total_seconds():
        raise InvalidArgument(f"{where} is longer than 10,000 years")
    window = timedelta(seconds=int(seconds), microseconds=nanos // 1000)
    return -window if sign else window
