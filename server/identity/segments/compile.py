"""Compiles a segment rule tree into one Cypher boolean expression over a profile `p`.

This is the one place that turns rules into Cypher. The predicate is assembled only from the
constant fragments below and parameter names the compiler generates ($r0, $r1, ...): every key,
value, type, source, property and segment name a user wrote travels as a parameter, so no rule
can change the shape of a query. The predicate is an expression, never clauses (EXISTS, COUNT
and COLLECT subqueries), so a named query in cypher/ embeds it
where it holds RULE_PLACEHOLDER.

What the embedding query must provide: the profile bound as `p`; `$now`, the evaluation time
in epoch milliseconds (windows and seconds_since_last read it, and only the caller knows the
clock); no parameter of its own named r<digits>; no variable of its own named rule_*.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

from server.identity.golden import TRAIT_PREFIX
from server.identity.golden import PROPERTY_PREFIX  # numeric event properties, as ingest stores them
from server.identity.consent import GRANTED, STATE_PREFIX
from server.identity.segments.rule_tree import (
    AllOf,
    ConsentIs,
    AnyOf,
    HasIdentifierType,
    InSegment,
    IsAnonymous,
    Not,
    Rule,
    TouchpointAggregate,
    TraitEquals,
    TraitExists,
    TraitIn,
    TraitPrefix,
    TraitRange,
    duration_text,
)

RULE_PLACEHOLDER = "/*RULE*/"
MILLISECOND = timedelta(milliseconds=1)

# A leaf is false, never null, when the value it reads is missing, so that NOT behaves.
LEAF = "coalesce((%(test)s), false)"

TRAIT_EQUALS = "p[%(key)s] = %(value)s"
TRAIT_IN = "p[%(key)s] IN %(values)s"
TRAIT_PREFIX_TEST = "p[%(key)s] STARTS WITH %(prefix)s"
TRAIT_PRESENT = "p[%(key)s] IS NOT NULL"
TRAIT_ABSENT = "p[%(key)s] IS NULL"
TEXT_AT_LEAST = "p[%(key)s] >= %(bound)s"
TEXT_AT_MOST = "p[%(key)s] <= %(bound)s"
NUMBER_AT_LEAST = "toFloatOrNull(p[%(key)s]) >= %(bound)s"
NUMBER_AT_MOST = "toFloatOrNull(p[%(key)s]) <= %(bound)s"

HAS_IDENTIFIER_TYPE = "EXISTS { (p)<-[:BELONGS_TO]-(rule_i:Identifier) WHERE rule_i.type = %(type)s }"
ANONYMOUS = "NOT EXISTS { (p)<-[:BELONGS_TO]-(rule_i:Identifier) WHERE rule_i.type IN %(types)s }"
IN_SEGMENT = "EXISTS { (p)-[:IN_SEGMENT]->(rule_s:Segment) WHERE rule_s.name = %(name)s }"
# The profile keeps its state per category (server/identity/consent.py); never stated: the default.
CONSENT_GRANTED = "coalesce(p[%(key)s], %(default)s) = %(granted)s"
CONSENT_NOT_GRANTED = "coalesce(p[%(key)s], %(default)s) <> %(granted)s"

# A touchpoint belongs to the profile of its primary identifier (as in journeys).
TOUCHPOINTS = "(p)<-[:BELONGS_TO]-(:Identifier)<-[:CARRIED {primary: true}]-(rule_t:Touchpoint)"
OF_TYPES = "rule_t.type IN %(values)s"
ON_CHANNELS = "rule_t.channel IN %(values)s"
FROM_SOURCES = "rule_t.source IN %(values)s"
WITHIN_WINDOW = "rule_t.occurred_at >= datetime({epochMillis: $now - %(millis)s})"
COUNT = "COUNT { %(touchpoints)s } %(op)s %(value)s"
# Aggregating subqueries: in Neo4j 5 these run about five times faster than a reduce() over a
# pattern comprehension. sum() over no touchpoint is 0; max() over none is null, so the
# seconds_since_last leaf is false.
SUM = ("COLLECT { MATCH %(touchpoints)s RETURN sum(coalesce(toFloatOrNull(rule_t[%(property)s]), 0.0)) "
       "AS rule_total }[0] %(op)s %(value)s")
SECONDS_SINCE_LAST = ("($now - COLLECT { MATCH %(touchpoints)s RETURN max(rule_t.occurred_at.epochMillis) "
                      "AS rule_last }[0]) / 1000.0 %(op)s %(value)s")
AGGREGATES = {"count": COUNT, "sum": SUM, "seconds_since_last": SECONDS_SINCE_LAST}
OPERATORS = {">=": ">=", ">": ">", "<=": "<=", "<": "<", "=": "="}


@dataclass(frozen=True)
class CompiledRule:
    """A Cypher boolean expression over `p` (which also reads `$now`) and the values it names."""

    predicate: str
    parameters: Mapping[str, object]


class _Parameters:
    """Hands out $r0, $r1, ... for user values, in the order the compiler meets them."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def __call__(self, value: object) -> str:
        name = f"r{len(self.values)}"
        self.values[name] = value
        return "$" + name


def compile_rule(rule: Rule, strong_types: Collection[str],
                 consent_defaults: Mapping[str, str] = MappingProxyType({})) -> CompiledRule:
    """Compiles a validated rule; strong_types are the known-person identifier types IsAnonymous
    excludes, consent_defaults each configured category's state when never stated."""
    parameters = _Parameters()
    predicate = _compile(rule, parameters, _Context(sorted(strong_types), consent_defaults))
    return CompiledRule(predicate, MappingProxyType(parameters.values))


@dataclass(frozen=True)
class _Context:
    strong_types: list[str]
    consent_defaults: Mapping[str, str]


def render(template: str, compiled: CompiledRule) -> str:
    """The query template with its one RULE_PLACEHOLDER replaced by the predicate."""
    found = template.count(RULE_PLACEHOLDER)
    if found != 1:
        raise ValueError(f"a query template must hold {RULE_PLACEHOLDER} exactly once; this one has it {found} times")
    return template.replace(RULE_PLACEHOLDER, compiled.predicate)


def _compile(rule: Rule, param: _Parameters, context: _Context) -> str:
    if isinstance(rule, AllOf | AnyOf):
        parts = [_compile(r, param, context) for r in rule.rules]
        joiner, empty = (" AND ", "true") if isinstance(rule, AllOf) else (" OR ", "false")
        return "(" + joiner.join(parts) + ")" if parts else empty
    if isinstance(rule, Not):
        return "(NOT " + _compile(rule.rule, param, context) + ")"
    return LEAF % {"test": _leaf(rule, param, context)}


def _leaf(rule: Rule, param: _Parameters, context: _Context) -> str:
    match rule:
        case TraitEquals(key, value):
            return TRAIT_EQUALS % {"key": _trait_key(key, param), "value": param(value)}
        case TraitIn(key, values):
            return TRAIT_IN % {"key": _trait_key(key, param), "values": param(list(values))}
        case TraitPrefix(key, prefix):
            return TRAIT_PREFIX_TEST % {"key": _trait_key(key, param), "prefix": param(prefix)}
        case TraitRange():
            return _range(rule, param)
        case TraitExists(key, exists):
            return (TRAIT_PRESENT if exists else TRAIT_ABSENT) % {"key": _trait_key(key, param)}
        case HasIdentifierType(type_):
            return HAS_IDENTIFIER_TYPE % {"type": param(type_)}
        case IsAnonymous():
            return ANONYMOUS % {"types": param(context.strong_types)}
        case TouchpointAggregate():
            return _touchpoints(rule, param)
        case InSegment(name):
            return IN_SEGMENT % {"name": param(name)}
        case ConsentIs(category, granted):
            template = CONSENT_GRANTED if granted else CONSENT_NOT_GRANTED
            return template % {"key": param(STATE_PREFIX + category),
                               "default": param(context.consent_defaults.get(category, "denied")),
                               "granted": param(GRANTED)}
    raise TypeError(f"not a rule node: {rule!r}")


def _trait_key(key: str, param: _Parameters) -> str:
    return param(TRAIT_PREFIX + key)


def _range(rule: TraitRange, param: _Parameters) -> str:
    key = _trait_key(rule.key, param)
    at_least, at_most = (NUMBER_AT_LEAST, NUMBER_AT_MOST) if rule.numeric else (TEXT_AT_LEAST, TEXT_AT_MOST)
    tests = [template % {"key": key, "bound": param(float(bound) if rule.numeric else bound)}
             for template, bound in ((at_least, rule.min), (at_most, rule.max)) if bound is not None]
    return " AND ".join(tests) if tests else "true"


def _touchpoints(rule: TouchpointAggregate, param: _Parameters) -> str:
    operator = OPERATORS.get(rule.comparison)
    template = AGGREGATES.get(rule.aggregate)
    if operator is None or template is None:
        raise ValueError(f"compile a validated rule: aggregate {rule.aggregate!r}, comparison {rule.comparison!r}")
    fields = {"touchpoints": _matching(rule, param), "op": operator}
    if rule.aggregate == "sum":
        fields["property"] = param(PROPERTY_PREFIX + (rule.property or ""))
    fields["value"] = param(float(rule.value))
    return template % fields


def _matching(rule: TouchpointAggregate, param: _Parameters) -> str:
    """The touchpoint pattern of the profile, with a WHERE for the filters that are given."""
    conditions = [template % {"values": param(list(values))}
                  for template, values in ((OF_TYPES, rule.types), (ON_CHANNELS, rule.channels),
                                           (FROM_SOURCES, rule.sources)) if values]
    if rule.window is not None:
        conditions.append(WITHIN_WINDOW % {"millis": param(rule.window // MILLISECOND)})
    return TOUCHPOINTS + (" WHERE " + " AND ".join(conditions) if conditions else "")


# ---------------------------------------------------------------------------------------------
# One-line description, for logs and the CLI


def describe(rule: Rule) -> str:
    """A one-line human reading of the rule, e.g. `country = 'US' AND count(purchase in 30d) >= 2`."""
    if isinstance(rule, AllOf | AnyOf):
        joiner = " AND " if isinstance(rule, AllOf) else " OR "
        return joiner.join(_operand(r) for r in rule.rules) or ("true" if isinstance(rule, AllOf) else "false")
    if isinstance(rule, Not):
        return "NOT " + _operand(rule.rule)
    return _describe_leaf(rule)


def _operand(rule: Rule) -> str:
    text = describe(rule)
    return f"({text})" if isinstance(rule, AllOf | AnyOf) and len(rule.rules) > 1 else text


def _describe_leaf(rule: Rule) -> str:
    match rule:
        case TraitEquals(key, value):
            return f"{_name(key)} = {_quote(value)}"
        case TraitIn(key, values):
            return f"{_name(key)} in ({', '.join(_quote(v) for v in values)})"
        case TraitPrefix(key, prefix):
            return f"{_name(key)} starts with {_quote(prefix)}"
        case TraitRange(key, low, high, numeric):
            bound = _name if numeric else _quote
            if low is not None and high is not None:
                return f"{_name(key)} between {bound(low)} and {bound(high)}"
            return f"{_name(key)} >= {bound(low)}" if low is not None else f"{_name(key)} <= {bound(high or '')}"
        case TraitExists(key, exists):
            return f"{_name(key)} {'exists' if exists else 'is missing'}"
        case HasIdentifierType(type_):
            return f"has identifier {_name(type_)}"
        case IsAnonymous():
            return "anonymous"
        case TouchpointAggregate():
            return _describe_touchpoints(rule)
        case InSegment(name):
            return f"in segment {_name(name)}"
        case ConsentIs(category, granted):
            return f"consent {_name(category)} {'granted' if granted else 'not granted'}"
    return repr(rule)


def _describe_touchpoints(rule: TouchpointAggregate) -> str:
    what = "|".join(_name(t) for t in rule.types) or "touchpoints"
    if rule.channels:
        what += " " + "|".join(rule.channels)
    if rule.sources:
        what += " from " + "|".join(_name(s) for s in rule.sources)
    if rule.window is not None:
        what += " in " + _span(rule.window)
    if rule.aggregate == "sum":
        what = f"{_name(rule.property or '')} of {what}"
    number = float(rule.value)
    value = int(number) if number.is_integer() and abs(number) < 1e15 else number
    return f"{rule.aggregate}({what}) {rule.comparison} {value}"


def _span(window: timedelta) -> str:
    seconds = window.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return duration_text(window)


def _name(text: str) -> str:
    """Bare when it is a plain name, quoted otherwise, so the line stays one readable line."""
    simple = bool(text) and all(c.isascii() and (c.isalnum() or c in "_.-") for c in text)
    return text if simple else _quote(text)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return "'" + escaped + "'"
