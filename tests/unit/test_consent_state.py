"""Consent as a pure domain: reading statements, a profile's state, merges, splits, config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.errors import ConfigurationError, InvalidArgument
from server.identity.consent import (
    CONFLICT,
    DENIED,
    GRANTED,
    ConsentState,
    ConsentStatement,
    advanced,
    from_properties,
    latest,
    merged,
    parse_consent_rules,
    read_statements,
    recomputed,
    to_properties,
    with_defaults,
)
from server.identity.segments.compile import compile_rule
from server.identity.segments.rule_tree import ConsentIs, SegmentDefinition, from_dict, to_dict, validate
from server.identity.values import ValueWarning

T0 = datetime(2026, 11, 1, tzinfo=UTC)
RULES = parse_consent_rules({"categories": {
    "advertising": {"aliases": ["ads", "C0004"]},
    "necessary": {"default": "granted"},
}}, "test")


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def said(minute: int, granted: bool, category: str = "advertising", source: str = "web") -> ConsentStatement:
    return ConsentStatement(at(minute), category, granted, source)


def state(value: str, minute: int | None, source: str = "web", category: str = "advertising") -> ConsentState:
    return ConsentState(category, value, None if minute is None else at(minute), source)


def test_statements_are_read_by_category_name_or_alias_in_any_case() -> None:
    warnings: list[ValueWarning] = []
    assert read_statements({"ADS": True, "Necessary": False}, RULES, warnings) == (
        {"advertising": True, "necessary": False}, {})
    assert warnings == []


def test_a_category_named_twice_in_one_event_is_denied_if_either_denies() -> None:
    assert read_statements({"ads": True, "c0004": False}, RULES, []) == ({"advertising": False}, {})


def test_an_unknown_category_is_kept_and_warned_of_and_a_non_boolean_is_an_invalid_value() -> None:
    warnings: list[ValueWarning] = []
    assert read_statements({"pigeons": True, "advertising": "yes", "email": 1, "bad name!": False}, RULES, warnings) == (
        {}, {"pigeons": True})
    assert [(w.field, w.reason.split(":")[0]) for w in warnings] == [
        ("consent.pigeons", "unknown consent category"),
        ("consent.advertising", "invalid value"),
        ("consent.email", "invalid value"),
        ("consent.bad name!", "invalid value"),
    ]


def test_the_latest_statement_by_event_time_wins_and_denied_wins_a_tie() -> None:
    assert latest([said(5, True), said(3, False)])["advertising"] == state(GRANTED, 5)
    assert latest([said(3, False), said(5, True)])["advertising"] == state(GRANTED, 5)
    assert latest([said(5, True), said(5, False, source="app")])["advertising"] == state(DENIED, 5, "app")


def test_profiles_that_disagree_merge_into_a_conflict_as_of_the_later_time() -> None:
    result = merged([{"advertising": state(GRANTED, 1)}, {"advertising": state(DENIED, 4, "crm")}])
    assert result["advertising"] == state(CONFLICT, 4, "merge")


def test_profiles_that_agree_merge_into_that_state_as_of_the_later_statement() -> None:
    result = merged([{"advertising": state(GRANTED, 6, "app")}, {"advertising": state(GRANTED, 4)}])
    assert result["advertising"] == state(GRANTED, 6, "app")


def test_a_category_one_side_never_stated_is_no_disagreement() -> None:
    assert merged([{"advertising": state(DENIED, 2)}, {}]) == {"advertising": state(DENIED, 2)}


def test_a_conflict_merged_with_anything_stays_a_conflict() -> None:
    result = merged([{"advertising": state(CONFLICT, 2, "merge")}, {"advertising": state(GRANTED, 9)}])
    assert result["advertising"] == state(CONFLICT, 9, "merge")


def test_only_a_statement_newer_than_a_conflict_settles_it() -> None:
    conflict = {"advertising": state(CONFLICT, 4, "merge")}
    assert advanced(conflict, [said(4, True), said(2, True)]) == conflict
    assert advanced(conflict, [said(5, True)])["advertising"] == state(GRANTED, 5)


def test_a_denial_at_the_same_time_as_a_held_grant_wins_but_does_not_settle_a_conflict() -> None:
    assert advanced({"advertising": state(GRANTED, 5)}, [said(5, False, source="crm")]) == {
        "advertising": state(DENIED, 5, "crm")}
    assert advanced({"advertising": state(DENIED, 5)}, [said(5, True)]) == {"advertising": state(DENIED, 5)}
    conflict = {"advertising": state(CONFLICT, 5, "merge")}
    assert advanced(conflict, [said(5, False)]) == conflict


def test_a_late_arriving_older_statement_changes_nothing() -> None:
    held = {"advertising": state(DENIED, 8)}
    assert advanced(held, [said(8, False), said(3, True)]) == held


def test_a_split_recomputes_from_its_own_statements_only() -> None:
    held, absorbed = {"advertising": state(CONFLICT, 4, "merge")}, [{"advertising": state(DENIED, 4)}]
    assert recomputed(held, absorbed, [said(1, True)], split=True) == {"advertising": state(GRANTED, 1)}
    assert recomputed(held, absorbed, [said(1, True)], split=False) == held


def test_defaults_fill_the_categories_never_stated() -> None:
    shown = with_defaults({"pigeons": state(GRANTED, 1, category="pigeons")}, RULES)
    assert [(s.category, s.state, s.source) for s in shown] == [
        ("advertising", DENIED, "default"), ("necessary", GRANTED, "default"), ("pigeons", GRANTED, "web")]


def test_states_round_trip_through_profile_properties_and_stale_keys_are_removed() -> None:
    states = {"advertising": state(CONFLICT, 3, "merge")}
    properties = to_properties(states, {"consent.email": "granted", "consent_at.email": at(1), "trait.x": "1"})
    assert properties["consent.email"] is None and "trait.x" not in properties
    assert from_properties({k: v for k, v in properties.items() if v is not None}) == states


@pytest.mark.parametrize("section, problem", [
    ({"categories": {"ads": {"default": "maybe"}}}, "default is 'maybe'"),
    ({"categories": {"a": {"aliases": ["x"]}, "b": {"aliases": ["X"]}}}, "'X' already names category 'a'"),
    ({"categories": {"bad name": {}}}, "a category name is"),
    ({"categories": ["advertising"]}, "must map category names"),
])
def test_a_wrong_consent_section_names_its_entry(section: object, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        parse_consent_rules(section, "identity.yaml")


def test_a_consent_rule_reads_the_profiles_state_with_its_default_as_parameters() -> None:
    rule = from_dict({"consent": {"category": "necessary", "granted": True}})
    assert rule == ConsentIs("necessary", True) and to_dict(rule) == {"consent": {"category": "necessary", "granted": True}}
    compiled = compile_rule(rule, [], {"necessary": GRANTED})
    assert "necessary" not in compiled.predicate
    assert dict(compiled.parameters) == {"r0": "consent.necessary", "r1": GRANTED, "r2": GRANTED}
    assert "<>" in compile_rule(ConsentIs("necessary", False), [], {}).predicate


def test_a_consent_rule_must_name_a_configured_category() -> None:
    definition = SegmentDefinition("s", "", ConsentIs("pigeons"))
    with pytest.raises(InvalidArgument, match="rule.consent.category 'pigeons' is not a configured consent category; "
                                              "expected one of advertising, necessary"):
        validate(definition, set(), RULES.categories)


def test_a_consent_rule_must_say_granted_true_or_false() -> None:
    with pytest.raises(InvalidArgument, match=r"rule.consent.granted is unset: true selects the people who granted"):
        from_dict({"consent": {"category": "advertising"}})
    assert to_dict(ConsentIs("advertising", False)) == {"consent": {"category": "advertising", "granted": False}}


def test_the_proto_form_must_set_granted_too() -> None:
    from identity.v1 import segment_service_pb2 as seg

    from server.api.segment_convert import rule_from_proto, rule_to_proto

    with pytest.raises(InvalidArgument, match=r"rule.consent.granted is unset"):
        rule_from_proto(seg.Rule(consent=seg.ConsentCondition(category="advertising")))
    rule = ConsentIs("advertising", False)
    assert rule_from_proto(rule_to_proto(rule)) == rule
