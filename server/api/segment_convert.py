"""Translation between segment rule messages and the domain rule tree, in both directions.

Only the transport can leave a oneof unset or an enum unspecified, so those are refused here,
with the path of the node; everything else is the domain's `validate`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from identity.v1 import common_pb2, segment_service_pb2 as pb

from server.errors import InvalidArgument
from server.identity.segments.rule_tree import (
    MAX_DEPTH,
    Aggregate,
    AllOf,
    AnyOf,
    Channel,
    Comparison,
    ConsentIs,
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
)

CHANNELS: dict[common_pb2.Channel, Channel] = {
    common_pb2.CHANNEL_ONLINE: "online",
    common_pb2.CHANNEL_OFFLINE: "offline",
}
AGGREGATES: dict[pb.Aggregate, Aggregate] = {
    pb.AGGREGATE_COUNT: "count",
    pb.AGGREGATE_SUM: "sum",
    pb.AGGREGATE_SECONDS_SINCE_LAST: "seconds_since_last",
}
COMPARISONS: dict[pb.Comparison, Comparison] = {
    pb.COMPARISON_GTE: ">=",
    pb.COMPARISON_GT: ">",
    pb.COMPARISON_LTE: "<=",
    pb.COMPARISON_LT: "<",
    pb.COMPARISON_EQ: "=",
}
CHANNEL_OF = {name: number for number, name in CHANNELS.items()}
AGGREGATE_OF = {name: number for number, name in AGGREGATES.items()}
COMPARISON_OF = {name: number for number, name in COMPARISONS.items()}


def rule_from_proto(rule_pb: pb.Rule, path: str = "rule") -> Rule:
    """The domain rule of a message; raises InvalidArgument naming an unset node or enum."""
    return _rule(rule_pb, path, 1)


def _rule(message: pb.Rule, path: str, depth: int) -> Rule:
    if depth > MAX_DEPTH:
        raise InvalidArgument(f"{path}: the rule tree is deeper than {MAX_DEPTH} levels")
    kind = message.WhichOneof("node")
    where = f"{path}.{kind}"
    if kind in ("all", "any"):
        rules = tuple(_rule(r, f"{where}.rules[{n}]", depth + 1) for n, r in enumerate(getattr(message, kind).rules))
        return AllOf(rules) if kind == "all" else AnyOf(rules)
    if kind == "not":
        return Not(_rule(getattr(message, "not"), where, depth + 1))
    if kind == "trait":
        return _trait(message.trait, where)
    if kind == "identifier":
        return _identifier(message.identifier, where)
    if kind == "touchpoints":
        return _touchpoints(message.touchpoints, where)
    if kind == "in_segment":
        return InSegment(message.in_segment)
    if kind == "consent":
        if not message.consent.HasField("granted"):
            raise InvalidArgument(f"{where}.granted is unset: true selects the people who granted the category, "
                                  "false those who did not")
        return ConsentIs(message.consent.category, message.consent.granted)
    raise InvalidArgument(f"{path} is empty: set one of all, any, not, trait, identifier, touchpoints, in_segment, "
                          "consent")


def _trait(condition: pb.TraitCondition, where: str) -> Rule:
    test, key = condition.WhichOneof("test"), condition.key
    if test == "equals":
        return TraitEquals(key, condition.equals)
    if test == "in":
        return TraitIn(key, tuple(getattr(condition, "in").values))
    if test == "prefix":
        return TraitPrefix(key, condition.prefix)
    if test == "range":
        bounds = condition.range
        return TraitRange(key, bounds.min or None, bounds.max or None, bounds.numeric)
    if test == "exists":
        return TraitExists(key, condition.exists)
    raise InvalidArgument(f"{where} has no test: set one of equals, in, prefix, range, exists")


def _identifier(condition: pb.IdentifierCondition, where: str) -> Rule:
    test = condition.WhichOneof("test")
    if test == "has_type":
        return HasIdentifierType(condition.has_type)
    if test == "anonymous" and condition.anonymous:
        return IsAnonymous()
    if test == "anonymous":
        raise InvalidArgument(f"{where}.anonymous must be true; "
                              "wrap it in not for profiles with a known-person identifier")
    raise InvalidArgument(f"{where} has no test: set one of has_type, anonymous")


def _touchpoints(condition: pb.TouchpointCondition, where: str) -> Rule:
    aggregate = AGGREGATES.get(condition.aggregate)
    if aggregate is None:
        raise InvalidArgument(f"{where}.aggregate is unspecified; expected one of "
                              f"{', '.join(pb.Aggregate.Name(a) for a in AGGREGATES)}")
    comparison = COMPARISONS.get(condition.comparison)
    if comparison is None:
        raise InvalidArgument(f"{where}.comparison is unspecified; expected one of "
                              f"{', '.join(pb.Comparison.Name(c) for c in COMPARISONS)}")
    return TouchpointAggregate(
        types=tuple(condition.filter.types),
        channels=tuple(_channel(c, f"{where}.filter.channels[{n}]") for n, c in enumerate(condition.filter.channels)),
        sources=tuple(condition.filter.sources),
        window=_window(condition, f"{where}.window"),
        aggregate=aggregate,
        property=condition.property or None,
        comparison=comparison,
        value=condition.value,
    )


def _channel(number: common_pb2.Channel, where: str) -> Channel:
    if number not in CHANNELS:
        raise InvalidArgument(f"{where} is unspecified; expected CHANNEL_ONLINE or CHANNEL_OFFLINE")
    return CHANNELS[number]


def _window(condition: pb.TouchpointCondition, where: str) -> timedelta | None:
    if not condition.HasField("window"):
        return None
    if condition.window.nanos % 1000:
        raise InvalidArgument(f"{where} is finer than a microsecond")
    try:
        return condition.window.ToTimedelta()
    except (OverflowError, ValueError):
        raise InvalidArgument(f"{where} is out of range") from None


def rule_to_proto(rule: Rule) -> pb.Rule:
    """The message of a validated domain rule."""
    match rule:
        case AllOf(rules):
            return pb.Rule(all=pb.RuleList(rules=[rule_to_proto(r) for r in rules]))
        case AnyOf(rules):
            return pb.Rule(any=pb.RuleList(rules=[rule_to_proto(r) for r in rules]))
        case Not(inner):
            return pb.Rule(**_keyword("not", rule_to_proto(inner)))
        case TraitEquals(key, value):
            return pb.Rule(trait=pb.TraitCondition(key=key, equals=value))
        case TraitIn(key, values):
            return pb.Rule(trait=pb.TraitCondition(key=key, **_keyword("in", pb.StringList(values=values))))
        case TraitPrefix(key, prefix):
            return pb.Rule(trait=pb.TraitCondition(key=key, prefix=prefix))
        case TraitRange(key, low, high, numeric):
            return pb.Rule(trait=pb.TraitCondition(key=key, range=pb.Range(min=low or "", max=high or "", numeric=numeric)))
        case TraitExists(key, exists):
            return pb.Rule(trait=pb.TraitCondition(key=key, exists=exists))
        case HasIdentifierType(type_):
            return pb.Rule(identifier=pb.IdentifierCondition(has_type=type_))
        case IsAnonymous():
            return pb.Rule(identifier=pb.IdentifierCondition(anonymous=True))
        case TouchpointAggregate():
            return pb.Rule(touchpoints=_touchpoint_condition(rule))
        case InSegment(name):
            return pb.Rule(in_segment=name)
        case ConsentIs(category, granted):
            return pb.Rule(consent=pb.ConsentCondition(category=category, granted=granted))
    raise TypeError(f"not a rule node: {rule!r}")


def _keyword(name: str, value: object) -> dict[str, Any]:
    """A field named by a Python keyword (`not`, `in`): passed by **, which the stubs cannot type."""
    return {name: value}


def _touchpoint_condition(rule: TouchpointAggregate) -> pb.TouchpointCondition:
    condition = pb.TouchpointCondition(
        aggregate=AGGREGATE_OF[rule.aggregate],
        property=rule.property or "",
        comparison=COMPARISON_OF[rule.comparison],
        value=rule.value,
    )
    if rule.types or rule.channels or rule.sources:  # unset when empty, like the domain's dict form
        condition.filter.CopyFrom(pb.TouchpointFilter(types=rule.types, channels=[CHANNEL_OF[c] for c in rule.channels],
                                                      sources=rule.sources))
    if rule.window is not None:
        window = Duration()
        window.FromTimedelta(rule.window)
        condition.window.CopyFrom(window)
    return condition
