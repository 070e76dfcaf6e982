"""requires_consent (activation/consent_gate.py) with fake sources: what a segment's rule
requires, the start check, and ENTERs withheld per batch."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from identity.v1 import segment_service_pb2 as seg

from activation import DeliveryError, DeliveryRunner, parse_destinations
from activation.consent_gate import missing_from_segment, required_by_rule, withheld
from client.messages import SegmentChange

SEGMENT = "ads"


def consent(category: str, granted: bool = True) -> seg.Rule:
    return seg.Rule(consent=seg.ConsentCondition(category=category, granted=granted))


def all_of(*rules: seg.Rule) -> seg.Rule:
    return seg.Rule(all=seg.RuleList(rules=rules))


def trait(key: str) -> seg.Rule:
    return seg.Rule(trait=seg.TraitCondition(key=key, exists=True))


def change(position: int, profile_id: str, kind: str) -> SegmentChange:
    return SegmentChange(position=position, segment=SEGMENT, profile_id=profile_id, cause="ingest",
                         kind=seg.CHANGE_KIND_ENTER if kind == "enter" else seg.CHANGE_KIND_EXIT)


@pytest.mark.parametrize("rule, required", [
    (consent("advertising"), {"advertising"}),
    (consent("advertising", granted=False), set()),
    (all_of(trait("run"), consent("advertising"), all_of(consent("email"))), {"advertising", "email"}),
    (seg.Rule(any=seg.RuleList(rules=[consent("advertising"), trait("x")])), set()),  # not for every member
    (seg.Rule(**{"not": consent("advertising", granted=False)}), set()),  # read literally: never through not
])
def test_what_a_rule_requires_for_every_member(rule: seg.Rule, required: set[str]) -> None:
    assert required_by_rule(rule) == required


def test_a_segment_without_the_condition_is_named_with_what_to_add() -> None:
    assert missing_from_segment("vip", all_of(trait("tier"), consent("advertising")), ["advertising"]) is None
    problem = missing_from_segment("vip", trait("tier"), ["advertising", "email"])
    assert problem is not None and problem.startswith("requires consent advertising, email, but segment vip does not")
    assert "{consent: {category: email, granted: true}}" in problem


def test_enters_of_profiles_not_granting_every_required_category_are_withheld_exits_never() -> None:
    changes = [change(1, "a", "enter"), change(2, "b", "enter"), change(3, "c", "exit"), change(4, "d", "enter")]
    granted = {"a": frozenset({"advertising", "email"}), "b": frozenset({"email"}), "c": frozenset()}
    assert [c.position for c in withheld(changes, granted, ["advertising"])] == [2, 4]  # d: not found, grants none


def source(changes: list[SegmentChange]):
    def watch(segment: str, after_position: int) -> Iterator[SegmentChange]:
        yield from (c for c in changes if c.position > after_position)
    return watch


def config(tmp_path: Path) -> object:
    return parse_destinations({"state_dir": str(tmp_path / "state"), "destinations": [
        {"name": "meta", "segment": SEGMENT, "requires_consent": ["advertising"],
         "file": {"path": str(tmp_path / "meta.jsonl"), "batch_size": 2}}]})


def test_a_runner_with_consent_destinations_needs_a_way_to_check_it(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="meta require consent, and no way to check it was given"):
        DeliveryRunner(config(tmp_path), source([]))


def test_withheld_enters_move_the_position_on_and_count(tmp_path: Path) -> None:
    changes = [change(1, "a", "enter"), change(2, "b", "enter"), change(5, "b", "exit"), change(6, "c", "enter")]
    asked: list[Sequence[str]] = []

    def granted(profile_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        asked.append(list(profile_ids))
        return {"a": frozenset({"advertising"}), "b": frozenset(), "c": frozenset()}

    (status,) = DeliveryRunner(config(tmp_path), source(changes), idle_seconds=0.5, consent=granted,
                               rules=lambda name: all_of(consent("advertising"))).run()
    lines = [json.loads(line) for line in (tmp_path / "meta.jsonl").read_text().splitlines()]
    assert [(r["position"], r["kind"], r["profile_id"]) for r in lines] == [(1, "enter", "a"), (5, "exit", "b")]
    assert (status.error, status.position, status.delivered, status.withheld) == (None, 6, 2, 2)
    assert (tmp_path / "state" / "meta.position").read_text().strip() == "6"  # a batch of withheld ENTERs too
    assert asked and all(ids for ids in asked)


def test_a_destination_whose_segment_does_not_require_its_consent_stops_before_delivering(tmp_path: Path) -> None:
    (status,) = DeliveryRunner(config(tmp_path), source([change(1, "a", "enter")]), idle_seconds=0.5,
                               consent=lambda ids: {}, rules=lambda name: trait("tier")).run()
    assert status.error and status.error.startswith("requires consent advertising, but segment ads does not")
    assert not (tmp_path / "meta.jsonl").exists()


def test_a_segment_that_cannot_be_read_stops_the_destination_with_the_reason(tmp_path: Path) -> None:
    class Missing(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.NOT_FOUND

        def details(self) -> str:
            return "segment ads does not exist"

    def rules(name: str) -> seg.Rule:
        raise Missing()

    (status,) = DeliveryRunner(config(tmp_path), source([]), idle_seconds=0.5, consent=lambda ids: {}, rules=rules).run()
    assert status.error and status.error.startswith("cannot read segment ads to check its consent")
    assert "does not exist" in status.error


class Unavailable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "the server restarts"


def test_a_segment_check_that_meets_an_unavailable_server_is_tried_again(tmp_path: Path) -> None:
    tries: list[str] = []

    def rules(name: str) -> seg.Rule:
        tries.append(name)
        if len(tries) == 1:
            raise Unavailable()
        return consent("advertising")

    (status,) = DeliveryRunner(config(tmp_path), source([change(1, "a", "enter")]), idle_seconds=0.5,
                               reconnect_seconds=0.01, consent=lambda ids: {"a": frozenset({"advertising"})},
                               rules=rules).run()
    assert (status.error, status.delivered, len(tries)) == (None, 1, 2)


def test_a_batch_with_withheld_changes_keeps_the_key_of_the_whole_batch(tmp_path: Path) -> None:
    from activation.sinks import Outcome

    keys: list[str] = []

    class Recorder:
        def resume_position(self, saved: int) -> int:
            return saved

        def deliver(self, batch, stopping) -> Outcome:  # type: ignore[no-untyped-def]
            keys.append(batch.idempotency_key)
            return Outcome.DELIVERED

    changes = [change(3, "a", "enter"), change(4, "b", "enter"), change(8, "b", "exit")]
    DeliveryRunner(config(tmp_path), source(changes), idle_seconds=0.5, sinks=lambda d: Recorder(),
                   consent=lambda ids: {"b": frozenset({"advertising"})},
                   rules=lambda name: consent("advertising")).run()
    assert keys == ["meta:ads:3-4", "meta:ads:8-8"]  # batch_size 2: a's ENTER withheld from the first


def test_a_lookup_the_server_refuses_stops_the_destination_rather_than_retry_forever(tmp_path: Path) -> None:
    class Denied(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.PERMISSION_DENIED

        def details(self) -> str:
            return "the token may not read profiles"

    def granted(ids: Sequence[str]) -> dict[str, frozenset[str]]:
        raise Denied()

    (status,) = DeliveryRunner(config(tmp_path), source([change(1, "a", "enter")]), idle_seconds=0.5,
                               consent=granted, rules=lambda name: consent("advertising")).run()
    assert status.error and status.error.startswith("looking up the batch's consent failed")
    assert "may not read profiles" in status.error and status.position == 0
