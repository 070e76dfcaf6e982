"""Segment rules: validation names the bad node, the stored and wire forms round-trip, and the
compiled Cypher carries every user value as a parameter."""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta

import pytest
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from identity.v1 import common_pb2, segment_service_pb2 as pb

from server.api.segment_convert import rule_from_proto, rule_to_proto
from server.errors import InvalidArgument
from server.identity.segments.compile import RULE_PLACEHOLDER, CompiledRule, compile_rule, describe, render
from server.identity.segments.rule_tree import (
    AllOf,
    AnyOf,
    HasIdentifierType,
    InSegment,
    IsAnonymous,
    Not,
    Rule,
    SegmentDefinition,
    TouchpointAggregate,
    TraitEquals,
    TraitExists,
    TraitIn,
    TraitPrefix,
    TraitRange,
    dependencies,
    duration_text,
    from_dict,
    is_time_dependent,
    to_dict,
    validate,
)

KNOWN_TYPES = ("email", "phone", "cookie")
STRONG_TYPES = ("phone", "email")
THIRTY_DAYS = timedelta(days=30)


def purchases(**changes: object) -> TouchpointAggregate:
    fields: dict[str, object] = {"types": ("purchase",), "window": THIRTY_DAYS, "aggregate": "count",
                                 "comparison": ">=", "value": 2.0}
    return TouchpointAggregate(**{**fields, **changes})


def segment(rule: Rule, name: str = "active_us") -> SegmentDefinition:
    return SegmentDefinition(name=name, description="", rule=rule)


EXAMPLE = AllOf((TraitEquals("country", "US"), purchases(), Not(InSegment("vip"))))

RICH = AllOf((
    TraitEquals("country", "US"),
    TraitIn("tier", ("gold", "platinum")),
    TraitPrefix("email", "ops@"),
    TraitRange("age", "18", "65", numeric=True),
    TraitRange("signup_date", min="2024-01-01"),
    TraitExists("phone", exists=False),
    AnyOf((
        HasIdentifierType("email"),
        Not(IsAnonymous()),
        InSegment("vip"),
    )),
    purchases(),
    TouchpointAggregate(types=("purchase", "refund"), channels=("online", "offline"), sources=("web", "pos"),
                        window=timedelta(seconds=90061, microseconds=500000), aggregate="sum", property="amount",
                        comparison=">", value=99.5),
    Not(TouchpointAggregate(aggregate="seconds_since_last", comparison="<=", value=86400.0)),
    TouchpointAggregate(aggregate="count", comparison="=", value=0.0),
))


# --- validation ---------------------------------------------------------------------------------

def nested_not(depth: int) -> Rule:
    rule: Rule = TraitExists("country")
    for _ in range(depth - 1):
        rule = Not(rule)
    return rule


@pytest.mark.parametrize(("definition", "message"), [
    (segment(TraitExists("a"), name=""), "name is empty"),
    (segment(TraitExists("a"), name="x" * 101), "name is longer than 100 characters"),
    (segment(TraitExists("a"), name="vip customers"), "name 'vip customers' may only hold"),
    (segment(AllOf(())), "rule.all has no rules"),
    (segment(AllOf((TraitExists("a"), AnyOf(())))), "rule.all.rules[1].any has no rules"),
    (segment(AnyOf((TraitEquals("", "x"),))), "rule.any.rules[0].trait.key is empty"),
    (segment(TraitPrefix("k" * 201, "x")), "rule.trait.key is longer than 200 characters"),
    (segment(TraitIn("tier", ())), "rule.trait.in has no values"),
    (segment(TraitRange("age")), "rule.trait.range has neither min nor max"),
    (segment(TraitRange("age", min="ten", numeric=True)), "rule.trait.range.min 'ten' is not a number"),
    (segment(TraitRange("age", max="inf", numeric=True)), "rule.trait.range.max 'inf' is not a number"),
    (segment(TraitRange("age", min="")), "rule.trait.range.min is empty"),
    (segment(TraitRange("age", "9", "10", numeric=True)), None),
    (segment(TraitRange("age", "65", "18", numeric=True)), "rule.trait.range: min '65' exceeds max '18'"),
    (segment(Not(HasIdentifierType("fax"))),
     "rule.not.identifier.has_type 'fax' is not a known identifier type; expected one of cookie, email, phone"),
    (segment(AllOf((TraitExists("a"), None))), "rule.all.rules[1] is not set"),
    (segment(Not(None)), "rule.not is not set"),
    (segment(purchases(aggregate="avg")), "rule.touchpoints.aggregate is unspecified"),
    (segment(purchases(comparison="!=")), "rule.touchpoints.comparison is unspecified"),
    (segment(purchases(channels=("email",))), "rule.touchpoints.filter.channels[0] is unspecified"),
    (segment(purchases(types=("purchase", ""))), "rule.touchpoints.filter.types[1] is empty"),
    (segment(AllOf((TraitExists("a"), Not(purchases(aggregate="sum"))))),
     "rule.all.rules[1].not.touchpoints: AGGREGATE_SUM needs a property"),
    (segment(purchases(property="amount")), "rule.touchpoints.property only applies to AGGREGATE_SUM"),
    (segment(purchases(window=timedelta(0))), "rule.touchpoints.window must be positive"),
    (segment(purchases(window=timedelta(days=-1))), "rule.touchpoints.window must be positive"),
    (segment(purchases(value=math.nan)), "rule.touchpoints.value must be a finite number"),
    (segment(purchases(value=-math.inf)), "rule.touchpoints.value must be a finite number"),
    (segment(AnyOf((TraitExists("a"), InSegment("active_us")))), "rule.any.rules[1].in_segment names the segment itself"),
    (segment(InSegment("")), "rule.in_segment is empty"),
    (segment(nested_not(33)), "rule" + ".not" * 32 + ": the rule tree is deeper than 32 levels"),
    (segment(AnyOf(tuple(TraitExists(f"k{n}") for n in range(200)))), "rule has more than 200 nodes"),
])
def test_validation_names_the_bad_node_by_its_path(definition: SegmentDefinition, message: str | None) -> None:
    if message is None:
        validate(definition, KNOWN_TYPES)
        return
    with pytest.raises(InvalidArgument) as raised:
        validate(definition, KNOWN_TYPES)
    assert str(raised.value).startswith(message)


def test_a_rich_tree_at_the_size_and_depth_limits_is_valid() -> None:
    validate(segment(RICH), KNOWN_TYPES)
    validate(segment(nested_not(32)), KNOWN_TYPES)
    validate(segment(AnyOf(tuple(TraitExists(f"k{n}") for n in range(199)))), KNOWN_TYPES)


def test_validation_reports_the_first_error_in_document_order() -> None:
    rule = AllOf((TraitEquals("", "x"), TraitIn("tier", ())))
    with pytest.raises(InvalidArgument, match=r"^rule\.all\.rules\[0\]\.trait\.key is empty$"):
        validate(segment(rule), KNOWN_TYPES)


# --- dependencies and time ------------------------------------------------------------------------

def test_dependencies_are_the_segments_named_anywhere_in_the_tree() -> None:
    assert dependencies(RICH) == {"vip"}
    assert dependencies(AnyOf((InSegment("a"), Not(AllOf((InSegment("b"), InSegment("a"))))))) == {"a", "b"}
    assert dependencies(TraitExists("a")) == frozenset()


@pytest.mark.parametrize(("rule", "expected"), [
    (TraitEquals("country", "US"), False),
    (purchases(window=None), False),
    (Not(purchases()), True),
    (AnyOf((TraitExists("a"), TouchpointAggregate(aggregate="seconds_since_last", comparison="<", value=60.0))), True),
])
def test_a_rule_is_time_dependent_when_the_clock_alone_can_change_membership(rule: Rule, expected: bool) -> None:
    assert is_time_dependent(rule) is expected


# --- stored form (dict / JSON) ----------------------------------------------------------------------

def test_the_dict_form_round_trips_through_json_text() -> None:
    stored = json.dumps(to_dict(RICH))
    assert from_dict(json.loads(stored)) == RICH


def test_the_dict_form_is_protobufs_json_mapping_of_the_rule() -> None:
    as_protobuf = json_format.MessageToDict(rule_to_proto(RICH), preserving_proto_field_name=True)
    assert to_dict(RICH) == as_protobuf
    assert json_format.ParseDict(to_dict(RICH), pb.Rule()) == rule_to_proto(RICH)


def test_a_hand_written_rule_reads_as_the_domain_tree() -> None:
    written = {"all": {"rules": [
        {"trait": {"key": "country", "equals": "US"}},
        {"touchpoints": {"filter": {"types": ["purchase"]}, "window": "2592000s", "aggregate": "AGGREGATE_COUNT",
                         "comparison": "COMPARISON_GTE", "value": 2}},
        {"not": {"in_segment": "vip"}},
    ]}}
    assert from_dict(written) == EXAMPLE


@pytest.mark.parametrize("window", [
    timedelta(days=30), timedelta(seconds=1.5), timedelta(microseconds=1), timedelta(microseconds=-1500),
    timedelta(seconds=1, milliseconds=10), timedelta(0),
])
def test_windows_are_spelt_as_protobuf_spells_durations(window: timedelta) -> None:
    duration = Duration()
    duration.FromTimedelta(window)
    assert duration_text(window) == duration.ToJsonString()
    assert from_dict({"touchpoints": {"window": duration_text(window), "aggregate": "AGGREGATE_COUNT",
                                      "comparison": "COMPARISON_GT"}}).window == window


def test_non_finite_values_are_stored_as_protobuf_spells_them() -> None:
    rule = purchases(value=math.inf)
    assert to_dict(rule)["touchpoints"]["value"] == "Infinity"
    assert from_dict(to_dict(rule)) == rule


@pytest.mark.parametrize(("data", "message"), [
    ([], "rule must be an object"),
    ({}, "rule has no node: set one of all, any, not"),
    ({"all": {}, "any": {}}, "rule sets all and any; set only one"),
    ({"allOf": {}}, "rule has unknown field allOf"),
    ({"trait": {"key": "a", "equal": "x"}}, "rule.trait has unknown field equal"),
    ({"trait": {"key": "a"}}, "rule.trait has no test: set one of equals, in, prefix, range, exists"),
    ({"all": {"rules": [{"trait": {"key": 5, "equals": "x"}}]}}, "rule.all.rules[0].trait.key must be a string"),
    ({"all": {"rules": {"trait": {}}}}, "rule.all.rules must be a list"),
    ({"any": {"rules": [{"trait": {"key": "a", "in": {"values": ["x", 1]}}}]}},
     "rule.any.rules[0].trait.in.values[1] must be a string"),
    ({"trait": {"key": "a", "range": {"min": 18}}}, "rule.trait.range.min must be a string"),
    ({"trait": {"key": "a", "exists": "yes"}}, "rule.trait.exists must be true or false"),
    ({"identifier": {"anonymous": False}}, "rule.identifier.anonymous must be true"),
    ({"not": {"touchpoints": {"comparison": "COMPARISON_GTE"}}}, "rule.not.touchpoints.aggregate is unspecified"),
    ({"touchpoints": {"aggregate": "AGGREGATE_UNSPECIFIED", "comparison": "COMPARISON_GTE"}},
     "rule.touchpoints.aggregate is unspecified"),
    ({"touchpoints": {"aggregate": "AGGREGATE_COUNT", "comparison": "GTE"}}, "rule.touchpoints.comparison is 'GTE'"),
    ({"touchpoints": {"aggregate": "AGGREGATE_COUNT", "comparison": "COMPARISON_GT",
                      "filter": {"channels": ["CHANNEL_UNSPECIFIED"]}}},
     "rule.touchpoints.filter.channels[0] is unspecified"),
    ({"touchpoints": {"aggregate": "AGGREGATE_COUNT", "comparison": "COMPARISON_GT", "window": "30d"}},
     "rule.touchpoints.window must be a duration"),
    ({"touchpoints": {"aggregate": "AGGREGATE_COUNT", "comparison": "COMPARISON_GT", "window": "0.000000001s"}},
     "rule.touchpoints.window is finer than a microsecond"),
    ({"touchpoints": {"aggregate": "AGGREGATE_COUNT", "comparison": "COMPARISON_GT", "value": True}},
     "rule.touchpoints.value must be a number"),
    ({"in_segment": ["vip"]}, "rule.in_segment must be a string"),
])
def test_malformed_stored_rules_are_refused_with_the_path(data: object, message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        from_dict(data)
    assert str(raised.value).startswith(message)


def test_a_stored_tree_too_deep_to_walk_is_refused_before_recursing() -> None:
    data: dict[str, object] = {"in_segment": "vip"}
    for _ in range(5000):
        data = {"not": data}
    with pytest.raises(InvalidArgument, match="deeper than 32 levels"):
        from_dict(data)


# --- wire form (protobuf) ------------------------------------------------------------------------------

def test_the_proto_form_round_trips() -> None:
    assert rule_from_proto(rule_to_proto(RICH)) == RICH
    assert rule_from_proto(pb.Rule.FromString(rule_to_proto(EXAMPLE).SerializeToString())) == EXAMPLE


def test_proto_channels_and_windows_read_as_domain_values() -> None:
    message = pb.Rule(touchpoints=pb.TouchpointCondition(
        filter=pb.TouchpointFilter(channels=[common_pb2.CHANNEL_OFFLINE]), window=timedelta(hours=2),
        aggregate=pb.AGGREGATE_COUNT, comparison=pb.COMPARISON_LT, value=3))
    rule = rule_from_proto(message)
    assert rule == TouchpointAggregate(channels=("offline",), window=timedelta(hours=2), aggregate="count",
                                       comparison="<", value=3.0)


def count_of(**fields: object) -> pb.Rule:
    return pb.Rule(touchpoints=pb.TouchpointCondition(**{"aggregate": pb.AGGREGATE_COUNT,
                                                         "comparison": pb.COMPARISON_GTE, **fields}))


@pytest.mark.parametrize(("message", "message_text"), [
    (pb.Rule(), "rule is empty: set one of all, any, not"),
    (pb.Rule(all=pb.RuleList(rules=[pb.Rule(), pb.Rule()])), "rule.all.rules[0] is empty"),
    (pb.Rule(any=pb.RuleList(rules=[pb.Rule(trait=pb.TraitCondition(key="a"))])),
     "rule.any.rules[0].trait has no test"),
    (pb.Rule(identifier=pb.IdentifierCondition()), "rule.identifier has no test"),
    (pb.Rule(identifier=pb.IdentifierCondition(anonymous=False)), "rule.identifier.anonymous must be true"),
    (pb.Rule(touchpoints=pb.TouchpointCondition(comparison=pb.COMPARISON_GT)),
     "rule.touchpoints.aggregate is unspecified"),
    (pb.Rule(**{"not": pb.Rule(touchpoints=pb.TouchpointCondition(aggregate=pb.AGGREGATE_SUM))}),
     "rule.not.touchpoints.comparison is unspecified"),
    (count_of(filter=pb.TouchpointFilter(channels=[common_pb2.CHANNEL_UNSPECIFIED])),
     "rule.touchpoints.filter.channels[0] is unspecified"),
    (count_of(window=Duration(seconds=1, nanos=1)), "rule.touchpoints.window is finer than a microsecond"),
])
def test_unset_oneofs_and_unspecified_enums_are_refused_with_the_path(message: pb.Rule, message_text: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        rule_from_proto(message)
    assert str(raised.value).startswith(message_text)


# --- compilation -----------------------------------------------------------------------------------------

def test_the_example_compiles_to_a_parametrised_predicate() -> None:
    compiled = compile_rule(EXAMPLE, STRONG_TYPES)
    assert compiled.predicate == (
        "(coalesce((p[$r0] = $r1), false)"
        " AND coalesce((COUNT { (p)<-[:BELONGS_TO]-(:Identifier)<-[:CARRIED {primary: true}]-(rule_t:Touchpoint)"
        " WHERE rule_t.type IN $r2 AND rule_t.occurred_at >= datetime({epochMillis: $now - $r3}) } >= $r4), false)"
        " AND (NOT coalesce((EXISTS { (p)-[:IN_SEGMENT]->(rule_s:Segment) WHERE rule_s.name = $r5 }), false)))"
    )
    assert dict(compiled.parameters) == {"r0": "trait.country", "r1": "US", "r2": ["purchase"],
                                         "r3": 30 * 86400 * 1000, "r4": 2.0, "r5": "vip"}


HOSTILE = [
    "it's",
    "'}) DETACH DELETE n //",
    "`trait.x` OR true",
    "$r0 OR true",
    "a\nMATCH (n) DETACH DELETE n",
    "名前 🙂 ünïcödé",
    "x\" OR 1=1 /*",
]


def every_slot(text: str) -> Rule:
    """A tree that puts `text` in every place a user can write a string."""
    return AllOf((
        TraitEquals(text, text),
        TraitIn(text, (text, "plain")),
        TraitPrefix(text, text),
        TraitRange(text, min=text, max=text + "z"),
        TraitExists(text, exists=False),
        HasIdentifierType(text),
        InSegment(text),
        TouchpointAggregate(types=(text,), sources=(text,), aggregate="sum", property=text, comparison=">",
                            value=1.0),
    ))


def parameter_text(compiled: CompiledRule) -> str:
    return json.dumps(dict(compiled.parameters), ensure_ascii=False)


@pytest.mark.parametrize("text", HOSTILE)
def test_user_strings_travel_as_parameters_and_never_as_query_text(text: str) -> None:
    compiled = compile_rule(every_slot(text), STRONG_TYPES)
    assert text not in compiled.predicate
    values = [v for v in compiled.parameters.values() if isinstance(v, str)]
    values += [item for v in compiled.parameters.values() if isinstance(v, list) for item in v]
    assert {"trait." + text, "prop." + text, text, text + "z"} <= set(values)


@pytest.mark.parametrize("text", HOSTILE)
def test_the_predicate_text_does_not_depend_on_user_values(text: str) -> None:
    assert compile_rule(every_slot(text), STRONG_TYPES).predicate == compile_rule(every_slot("x"), ()).predicate


def test_the_predicate_names_only_generated_parameters_and_now() -> None:
    compiled = compile_rule(RICH, STRONG_TYPES)
    named = set(re.findall(r"\$(\w+)", compiled.predicate))
    assert set(compiled.parameters) == {f"r{n}" for n in range(len(compiled.parameters))}
    assert named == set(compiled.parameters) | {"now"}
    assert "now" not in compiled.parameters


def test_the_predicate_of_a_rich_tree_has_balanced_brackets() -> None:
    predicate = compile_rule(RICH, STRONG_TYPES).predicate
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for char in predicate:
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            assert stack.pop() == pairs[char]
    assert stack == []


def test_not_negates_a_leaf_that_is_false_rather_than_null_when_the_trait_is_missing() -> None:
    assert compile_rule(Not(TraitEquals("country", "US")), ()).predicate == "(NOT coalesce((p[$r0] = $r1), false))"


@pytest.mark.parametrize("leaf", [
    TraitEquals("a", "b"), TraitIn("a", ("b",)), TraitPrefix("a", "b"), TraitRange("a", "1", numeric=True),
    TraitExists("a"), HasIdentifierType("email"), IsAnonymous(), InSegment("vip"), purchases(),
    purchases(aggregate="sum", property="amount"), purchases(aggregate="seconds_since_last"),
])
def test_every_leaf_is_wrapped_so_that_a_missing_value_is_false(leaf: Rule) -> None:
    predicate = compile_rule(leaf, STRONG_TYPES).predicate
    assert predicate.startswith("coalesce((") and predicate.endswith("), false)")


def test_numeric_ranges_compare_numbers_and_text_ranges_compare_text() -> None:
    numeric = compile_rule(TraitRange("age", "18", "65", numeric=True), ())
    assert numeric.predicate == "coalesce((toFloatOrNull(p[$r0]) >= $r1 AND toFloatOrNull(p[$r0]) <= $r2), false)"
    assert dict(numeric.parameters) == {"r0": "trait.age", "r1": 18.0, "r2": 65.0}
    text = compile_rule(TraitRange("signup_date", max="2024-12-31"), ())
    assert text.predicate == "coalesce((p[$r0] <= $r1), false)"
    assert text.parameters["r1"] == "2024-12-31"


def test_anonymous_means_no_identifier_of_the_strong_types_given_as_a_parameter() -> None:
    compiled = compile_rule(IsAnonymous(), STRONG_TYPES)
    assert compiled.predicate.startswith("coalesce((NOT EXISTS {")
    assert dict(compiled.parameters) == {"r0": ["email", "phone"]}


def test_a_sum_reads_the_named_event_property_and_treats_missing_amounts_as_zero() -> None:
    compiled = compile_rule(purchases(aggregate="sum", property="amount", window=None, types=()), ())
    assert "sum(coalesce(toFloatOrNull(rule_t[$r0]), 0.0))" in compiled.predicate
    assert " WHERE " not in compiled.predicate  # no filters given, none applied
    assert dict(compiled.parameters) == {"r0": "prop.amount", "r1": 2.0}


def test_filters_appear_only_when_given() -> None:
    compiled = compile_rule(TouchpointAggregate(channels=("online",), aggregate="count", comparison=">", value=0.0), ())
    assert "rule_t.channel IN $r0" in compiled.predicate
    assert "rule_t.type" not in compiled.predicate and "rule_t.source" not in compiled.predicate
    assert "$now" not in compiled.predicate


def test_seconds_since_last_reads_the_clock_from_now() -> None:
    compiled = compile_rule(purchases(aggregate="seconds_since_last", window=None), ())
    assert compiled.predicate.startswith("coalesce((($now - COLLECT { MATCH ")
    assert "RETURN max(rule_t.occurred_at.epochMillis)" in compiled.predicate
    assert "/ 1000.0 >= $r1" in compiled.predicate


def test_render_puts_the_predicate_at_the_one_placeholder() -> None:
    compiled = compile_rule(TraitExists("a"), ())
    template = f"MATCH (p:Profile) WHERE {RULE_PLACEHOLDER} RETURN p.profile_id"
    assert render(template, compiled) == "MATCH (p:Profile) WHERE coalesce((p[$r0] IS NOT NULL), false) RETURN p.profile_id"


@pytest.mark.parametrize("template", ["MATCH (p:Profile) RETURN p", f"WHERE {RULE_PLACEHOLDER} OR {RULE_PLACEHOLDER}"])
def test_render_refuses_a_template_without_exactly_one_placeholder(template: str) -> None:
    with pytest.raises(ValueError, match="exactly once"):
        render(template, compile_rule(TraitExists("a"), ()))


# --- description -------------------------------------------------------------------------------------------

def test_describe_reads_as_one_line() -> None:
    assert describe(EXAMPLE) == "country = 'US' AND count(purchase in 30d) >= 2 AND NOT in segment vip"
    assert describe(AnyOf((TraitEquals("a", "x"), AllOf((TraitExists("b"), Not(IsAnonymous())))))) == (
        "a = 'x' OR (b exists AND NOT anonymous)"
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_describe_keeps_hostile_strings_on_one_line(text: str) -> None:
    assert "\n" not in describe(every_slot(text))
