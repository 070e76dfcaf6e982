"""Deterministic stitching and merge protection through the real service and Neo4j."""

from __future__ import annotations

import grpc
import pytest
from identity.v1 import identity_service_pb2 as pb
from neo4j import Driver
from support import by_id, by_identifier, event, identifiers_of, ingest, lookup, profile_of



def test_an_anonymous_visitor_merges_into_the_known_person_on_login(identity, uid: str) -> None:
    anon = ingest(identity, [event(f"{uid}-1", f"cookie:c-{uid}"), event(f"{uid}-2", f"cookie:c-{uid}", minute=1)])
    known = ingest(identity, [event(f"{uid}-3", f"user_id:u-{uid}", f"email:{uid}@example.com", minute=2)])
    login = ingest(identity, [event(f"{uid}-4", f"cookie:c-{uid}", f"user_id:u-{uid}", minute=3, type="identify")])
    assert anon[0].profile_id == anon[1].profile_id != known[0].profile_id
    profile = profile_of(identity, f"cookie:c-{uid}")
    assert identifiers_of(profile) == {f"cookie:c-{uid}", f"user_id:u-{uid}", f"email:{uid}@example.com"}
    assert profile.profile_id == login[0].profile_id
    assert profile.touchpoints_by_channel["online"] == 4


def test_a_lookup_by_a_merged_profile_id_resolves_to_the_survivor(identity, uid: str) -> None:
    (first,) = ingest(identity, [event(f"{uid}-1", f"cookie:a-{uid}")])
    (second,) = ingest(identity, [event(f"{uid}-2", f"cookie:b-{uid}", f"email:{uid}@example.com")])
    ingest(identity, [event(f"{uid}-3", f"cookie:a-{uid}", f"email:{uid}@example.com")])
    survivor = profile_of(identity, f"cookie:a-{uid}").profile_id
    absorbed = ({first.profile_id, second.profile_id} - {survivor}).pop()
    (result,) = lookup(identity, by_id(absorbed))
    assert result.profile.profile_id == survivor
    assert absorbed in result.profile.merged_profile_ids


def test_a_shared_tablet_does_not_fuse_two_logged_in_people(identity, driver: Driver, uid: str) -> None:
    ingest(identity, [
        event(f"{uid}-1", f"device_id:tab-{uid}", f"user_id:mum-{uid}"),
        event(f"{uid}-2", f"device_id:tab-{uid}", f"user_id:dad-{uid}", minute=1),
        event(f"{uid}-3", f"user_id:dad-{uid}", f"email:dad-{uid}@example.com", minute=2),
    ])
    mum, dad = profile_of(identity, f"user_id:mum-{uid}"), profile_of(identity, f"user_id:dad-{uid}")
    assert mum.profile_id != dad.profile_id
    assert f"device_id:tab-{uid}" in identifiers_of(mum), "the first holder keeps the contested device"
    graph = identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=by_identifier(f"user_id:dad-{uid}")), timeout=10)
    rejected = [e for e in graph.edges if e.kind == pb.LINK_KIND_REJECTED]
    assert len(rejected) == 1 and "2 user_id values (limit 1)" in rejected[0].evidence.reason
    assert rejected[0].evidence.event_ids == [f"{uid}-2"]


def test_junk_values_from_the_till_never_link_strangers(identity, driver: Driver, uid: str) -> None:
    acks = ingest(identity, [
        event(f"{uid}-1", f"loyalty_id:L1-{uid}", "email:test@test.com", source="pos"),
        event(f"{uid}-2", f"loyalty_id:L2-{uid}", "email:TEST@test.com ", source="pos", minute=1),
        event(f"{uid}-3", f"loyalty_id:L3-{uid}", "phone:0000000000", source="pos", minute=2),
        event(f"{uid}-4", f"loyalty_id:L4-{uid}", "phone:0000000000", source="pos", minute=3),
    ])
    assert [a.status for a in acks] == [pb.ACK_STATUS_ACCEPTED] * 4, [a.reason for a in acks]
    assert len({a.profile_id for a in acks}) == 4
    (junk,) = lookup(identity, by_identifier("email:test@test.com"))
    assert junk.WhichOneof("result") == "not_found"
    # kept and flagged, but as a property of each touchpoint, not an edge to one hot node
    records = driver.execute_query(
        "MATCH (t:Touchpoint) WHERE t.event_id STARTS WITH $uid "
        "RETURN t.event_id AS event_id, t.junk AS junk, COUNT { (t)-[:CARRIED]->(:Identifier {flag: 'blocklisted'}) } "
        "AS junk_edges ORDER BY event_id", uid=f"{uid}-").records
    assert [(r["junk"], r["junk_edges"]) for r in records] == [
        (["email:test@test.com"], 0), (["email:test@test.com"], 0), (["phone:0000000000"], 0), (["phone:0000000000"], 0)]
    (flagged,) = driver.execute_query("MATCH (i:Identifier {type: 'email', value: 'test@test.com'}) RETURN i.flag AS flag").records
    assert flagged["flag"] == "blocklisted"


def test_a_device_seen_with_many_people_is_flagged_and_the_profile_it_fused_splits(identity, uid: str) -> None:
    kiosk = f"device_id:kiosk-{uid}"
    ingest(identity, [event(f"{uid}-{n}", kiosk, f"email:p{n}-{uid}@example.com", minute=n) for n in range(2)])
    assert profile_of(identity, f"email:p0-{uid}@example.com").profile_id == \
        profile_of(identity, f"email:p1-{uid}@example.com").profile_id, "two people alone do not flag a device"
    ingest(identity, [event(f"{uid}-2", kiosk, f"email:p2-{uid}@example.com", minute=2)])
    profiles = {profile_of(identity, f"email:p{n}-{uid}@example.com").profile_id for n in range(3)}
    assert len(profiles) == 3, "once flagged shared, the kiosk's links stop counting and the fused profile splits"
    graph = identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=by_identifier(kiosk)), timeout=10)
    (node,) = [n for n in graph.nodes if n.identifier.value == f"kiosk-{uid}"]
    assert any(flag.startswith("shared") for flag in node.flags)


def test_the_golden_record_takes_crm_over_web_and_recent_over_old(identity, uid: str) -> None:
    ingest(identity, [
        event(f"{uid}-1", f"crm_id:C-{uid}", f"email:{uid}@example.com", source="crm", first_name="William",
              date_of_birth="1980-02-03"),
        event(f"{uid}-2", f"email:{uid}@example.com", source="web", minute=5, first_name="Bill", city="Springfield"),
        event(f"{uid}-3", f"email:{uid}@example.com", source="web", minute=9, city="Shelbyville"),
    ])
    traits = {t.key: (t.value, t.source) for t in profile_of(identity, f"crm_id:C-{uid}").traits}
    assert traits == {"first_name": ("William", "crm"), "date_of_birth": ("1980-02-03", "crm"),
                      "city": ("Shelbyville", "web")}


def test_the_golden_record_survives_later_batches_without_traits_and_merges(identity, driver: Driver,
                                                                             uid: str) -> None:
    """A batch whose events carry no new winning trait leaves the stored golden record (JSON and
    trait copies) as it is; a merge and a newer value still change it."""
    ingest(identity, [event(f"{uid}-1", f"email:{uid}@example.com", source="crm", first_name="Ann")])
    ingest(identity, [event(f"{uid}-2", f"email:{uid}@example.com", minute=2)])  # no traits
    ingest(identity, [event(f"{uid}-3", f"cookie:c-{uid}", minute=3, city="Leeds")])
    ingest(identity, [event(f"{uid}-4", f"cookie:c-{uid}", f"email:{uid}@example.com", minute=4)])  # merge
    traits = {t.key: t.value for t in profile_of(identity, f"email:{uid}@example.com").traits}
    assert traits == {"first_name": "Ann", "city": "Leeds"}
    ingest(identity, [event(f"{uid}-5", f"cookie:c-{uid}", minute=5, city="York")])
    profile = profile_of(identity, f"cookie:c-{uid}")
    assert {t.key: t.value for t in profile.traits} == {"first_name": "Ann", "city": "York"}
    (stored,) = driver.execute_query("MATCH (p:Profile {profile_id: $id}) RETURN p.`trait.first_name` AS first_name, "
                                     "p.`trait.city` AS city", id=profile.profile_id).records
    assert (stored["first_name"], stored["city"]) == ("Ann", "York"), "segment rules compare these copies"


def test_identity_graph_shows_links_with_their_evidence(identity, uid: str) -> None:
    ingest(identity, [event(f"{uid}-{n}", f"cookie:c-{uid}", f"email:{uid}@example.com", minute=n) for n in range(3)])
    graph = identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=by_identifier(f"cookie:c-{uid}")), timeout=10)
    (link,) = [e for e in graph.edges if e.kind == pb.LINK_KIND_DETERMINISTIC]
    assert link.evidence.times_seen == 3 and list(link.evidence.event_ids) == [f"{uid}-0", f"{uid}-1", f"{uid}-2"]
    assert link.evidence.first_seen.ToSeconds() < link.evidence.last_seen.ToSeconds()
    assert {n.node_id for n in graph.nodes} >= {f"cookie:c-{uid}", f"email:{uid}@example.com"}


def test_lookup_misses_stay_in_the_stream(identity, uid: str) -> None:
    ingest(identity, [event(f"{uid}-1", f"cookie:c-{uid}")])
    results = lookup(identity, by_identifier(f"cookie:nobody-{uid}"), by_identifier("email:not-an-address"),
                     by_id(""), by_identifier(f"cookie:c-{uid}"))
    kinds = [r.WhichOneof("result") for r in results]
    assert kinds == ["not_found", "not_found", "not_found", "profile"]
    assert "no profile holds" in results[0].not_found.reason
    assert "not an e-mail address" in results[1].not_found.reason
    assert [r.request_id for r in results] == ["0", "1", "2", "3"]


def test_identity_graph_of_an_unknown_identifier_is_not_found(identity, uid: str) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=by_identifier(f"cookie:nobody-{uid}")), timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND and f"cookie:nobody-{uid}" in raised.value.details()


def test_identity_graph_without_a_ref_is_invalid(identity) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        identity.GetIdentityGraph(pb.GetIdentityGraphRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "ref is empty" in raised.value.details()
