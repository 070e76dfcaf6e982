"""Consent through the real service: statements on events and records, each profile's state
(latest by event time, conflict on a merge, recomputed on a split, defaults), segment rules
on it, GetIdentityGraph, and forgetting.

Every identifier carries the test's uid, and segments are named `t-<uid>-...`, so tests share
one Neo4j without seeing each other's profiles.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import requests
from identity.v1 import identity_service_pb2 as pb, segment_service_pb2 as seg
from neo4j import Driver
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient
from support import T0, by_identifier, event, eventually, identifier, ingest, profile_of, remove_segments, stamp

from activation import DeliveryRunner, DestinationStatus, DestinationsError, parse_destinations
from activation.consent_gate import lookup_consent, segment_rules
from activation.profile_identifiers import lookup_identifiers
from client.api import IdentityClient

GRANTED, DENIED, CONFLICT = pb.CONSENT_STATUS_GRANTED, pb.CONSENT_STATUS_DENIED, pb.CONSENT_STATUS_CONFLICT


@pytest.fixture(autouse=True)
def segments_removed(driver: Driver, uid: str) -> Iterator[None]:
    yield
    remove_segments(driver, f"t-{uid}-")


def stated(event_id: str, *identifiers: str, minute: int, source: str = "web", run: str = "",
           **consent: bool) -> pb.Event:
    message = event(event_id, *identifiers, minute=minute, source=source, type="consent_updated",
                    **({"run": run} if run else {}))
    message.consent.update(consent)
    return message


def consent_of(identity, text: str) -> dict[str, pb.ConsentState]:
    return {c.category: c for c in profile_of(identity, text).consent}


def status_of(identity, text: str, category: str = "advertising") -> int:
    """The category's state once stated (a default is no statement: UNSPECIFIED here)."""
    state = consent_of(identity, text).get(category)
    return state.status if state and state.source != "default" else pb.CONSENT_STATUS_UNSPECIFIED


def wait_for(identity, text: str, status: int, category: str = "advertising") -> None:
    eventually(lambda: status_of(identity, text, category) == status, f"{text} {category} {pb.ConsentStatus.Name(status)}")


def test_a_statement_is_the_profiles_state_with_its_time_and_source_and_the_rest_take_defaults(identity, uid) -> None:
    acks = ingest(identity, [stated(f"{uid}-1", f"cookie:{uid}", minute=5, source="web", ads=True)])
    assert acks[0].status == pb.ACK_STATUS_ACCEPTED and not acks[0].warnings  # `ads` is an alias

    wait_for(identity, f"cookie:{uid}", GRANTED)
    consent = consent_of(identity, f"cookie:{uid}")
    assert consent["advertising"].stated_at.ToDatetime().replace(tzinfo=T0.tzinfo) == T0 + timedelta(minutes=5)
    assert consent["advertising"].source == "web"
    # never stated: each configured category's default, without a time
    assert consent["email"].status == DENIED and consent["email"].source == "default"
    assert not consent["email"].HasField("stated_at")
    assert consent["necessary"].status == GRANTED  # configured default: granted


def test_the_latest_statement_by_event_time_wins_not_the_latest_to_arrive(identity, uid) -> None:
    ingest(identity, [stated(f"{uid}-new", f"email:{uid}@example.com", minute=30, advertising=False)])
    wait_for(identity, f"email:{uid}@example.com", DENIED)
    # an older grant arriving late (an offline export) changes nothing
    ingest(identity, [stated(f"{uid}-old", f"email:{uid}@example.com", minute=10, source="crm", advertising=True)])
    ingest(identity, [stated(f"{uid}-later", f"email:{uid}@example.com", minute=40, email=True)])
    wait_for(identity, f"email:{uid}@example.com", GRANTED, "email")  # the later events were evaluated
    consent = consent_of(identity, f"email:{uid}@example.com")
    assert consent["advertising"].status == DENIED
    assert consent["advertising"].stated_at.ToDatetime().minute == T0.minute + 30


def disagreeing_profiles_merged(identity, uid: str) -> tuple[str, str]:
    """A cookie that granted advertising (minute 1) and an e-mail that denied it (minute 2),
    each a profile of its own and evaluated, then a login that shows them one person."""
    cookie, email = f"cookie:{uid}", f"email:{uid}@example.com"
    ingest(identity, [stated(f"{uid}-a", cookie, minute=1, advertising=True),
                      stated(f"{uid}-b", email, minute=2, advertising=False)])
    wait_for(identity, cookie, GRANTED)
    wait_for(identity, email, DENIED)
    ingest(identity, [event(f"{uid}-login", cookie, email, minute=3, type="login")])
    return cookie, email


def test_a_merge_of_profiles_that_disagree_is_a_conflict_until_a_newer_statement(identity, segments, uid) -> None:
    cookie, email = f"cookie:{uid}", f"email:{uid}@example.com"
    ingest(identity, [stated(f"{uid}-a", cookie, minute=1, advertising=True),
                      stated(f"{uid}-b", email, minute=2, advertising=False)])
    wait_for(identity, cookie, GRANTED)
    wait_for(identity, email, DENIED)
    segments.UpsertSegment(seg.UpsertSegmentRequest(name=f"t-{uid}-ads", rule=consent_rule("advertising")), timeout=60)

    ingest(identity, [event(f"{uid}-login", cookie, email, minute=3, type="login")])  # one person after all
    wait_for(identity, cookie, CONFLICT)
    state = consent_of(identity, email)["advertising"]
    assert state.source == "merge" and state.stated_at.ToDatetime().minute == T0.minute + 2
    assert f"t-{uid}-ads" not in profile_of(identity, cookie).segments  # conflict is not granted

    # a statement older than the conflict's newest does not settle it; a newer one does
    ingest(identity, [stated(f"{uid}-late", cookie, minute=1, advertising=True)])
    ingest(identity, [stated(f"{uid}-c", cookie, minute=4, advertising=True)])
    wait_for(identity, cookie, GRANTED)
    eventually(lambda: f"t-{uid}-ads" in profile_of(identity, cookie).segments, "the profile entered the segment")


def test_profiles_that_agree_merge_without_conflict(identity, uid) -> None:
    cookie, phone = f"cookie:{uid}", "phone:+1415555" + str(int(uid, 16) % 10_000).zfill(4)
    ingest(identity, [stated(f"{uid}-a", cookie, minute=1, email=True),
                      stated(f"{uid}-b", phone, minute=2, email=True)])
    wait_for(identity, cookie, GRANTED, "email")
    wait_for(identity, phone, GRANTED, "email")
    ingest(identity, [event(f"{uid}-link", cookie, phone, minute=3)])
    eventually(lambda: profile_of(identity, cookie).profile_id == profile_of(identity, phone).profile_id, "merged")
    # granted, as of the later of the two statements
    eventually(lambda: consent_of(identity, cookie)["email"].stated_at.ToDatetime().minute == T0.minute + 2,
               "the merged state as of minute 2")
    assert consent_of(identity, cookie)["email"].status == GRANTED


def test_a_split_recomputes_each_part_from_its_own_statements(identity, uid) -> None:
    cookie, email = disagreeing_profiles_merged(identity, uid)
    wait_for(identity, cookie, CONFLICT)

    identity.UnlinkIdentifier(pb.UnlinkIdentifierRequest(identifier=identifier(cookie), linked_to=identifier(email),
                                                          reason="shared computer"), timeout=60)
    wait_for(identity, cookie, GRANTED)
    wait_for(identity, email, DENIED)
    assert profile_of(identity, cookie).profile_id != profile_of(identity, email).profile_id


def test_a_record_states_consent_as_of_its_recorded_time(identity, uid) -> None:
    record = pb.SourceRecord(record_id=f"{uid}-r", source="crm", identifiers=[identifier(f"crm_id:{uid}")],
                             recorded_at=stamp(T0 + timedelta(days=1)), consent={"email": True, "sms": False})
    (*_, summary) = identity.ImportRecords(iter([record]), timeout=120)
    assert summary.summary.records == 1 and not summary.summary.rejected
    wait_for(identity, f"crm_id:{uid}", GRANTED, "email")
    consent = consent_of(identity, f"crm_id:{uid}")
    assert consent["sms"].status == DENIED and consent["sms"].source == "crm"


def test_an_unknown_category_is_kept_on_the_touchpoint_with_a_warning(identity, driver: Driver, uid) -> None:
    (ack,) = ingest(identity, [stated(f"{uid}-1", f"cookie:{uid}", minute=1, carrier_pigeons=True, email=True)])
    assert ack.status == pb.ACK_STATUS_ACCEPTED
    assert [(w.field, "unknown consent category" in w.reason) for w in ack.warnings] == [("consent.carrier_pigeons", True)]
    wait_for(identity, f"cookie:{uid}", GRANTED, "email")
    assert "carrier_pigeons" not in consent_of(identity, f"cookie:{uid}")  # no default, so no state
    records, _, _ = driver.execute_query("MATCH (t:Touchpoint {event_id: $id}) RETURN t.consent_unknown AS kept",
                                         id=f"{uid}-1")
    assert records[0]["kept"] == ["carrier_pigeons: granted"]


def test_a_merge_right_after_the_statements_is_a_conflict_however_far_behind_the_worker_is(identity, uid) -> None:
    """Each side's state is brought up to date in the merge's own transaction."""
    cookie, email = f"cookie:{uid}", f"email:{uid}@example.com"
    ingest(identity, [stated(f"{uid}-a", cookie, minute=1, advertising=True)])
    ingest(identity, [stated(f"{uid}-b", email, minute=2, advertising=False)])
    ingest(identity, [event(f"{uid}-login", cookie, email, minute=3, type="login")])
    wait_for(identity, cookie, CONFLICT)


def test_the_identity_graph_shows_the_consent(identity, uid) -> None:
    ingest(identity, [stated(f"{uid}-1", f"cookie:{uid}", minute=1, analytics=True)])
    wait_for(identity, f"cookie:{uid}", GRANTED, "analytics")
    graph = identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=by_identifier(f"cookie:{uid}")), timeout=60)
    shown = {c.category: c.status for c in graph.consent}
    assert shown["analytics"] == GRANTED and shown["advertising"] == DENIED


def test_forgetting_a_person_leaves_no_consent_record(identity, driver: Driver, uid) -> None:
    cookie, email = disagreeing_profiles_merged(identity, uid)
    merged = profile_of(identity, cookie)
    ids = [merged.profile_id, *merged.merged_profile_ids]
    assert len(ids) == 2

    identity.ForgetProfile(pb.ForgetProfileRequest(ref=by_identifier(email)), timeout=60)
    records, _, _ = driver.execute_query(
        "MATCH (p:Profile) WHERE p.profile_id IN $ids "
        "RETURN p.profile_id AS id, [k IN keys(p) WHERE k STARTS WITH 'consent'] AS keys", ids=ids)
    assert {r["id"] for r in records} == set(ids) and all(r["keys"] == [] for r in records)
    statements, _, _ = driver.execute_query(
        "MATCH (t:Touchpoint) WHERE t.event_id STARTS WITH $uid RETURN count(t) AS n", uid=uid)
    assert statements[0]["n"] == 0
    # and the worker, evaluating the forgotten profile, writes none back
    remaining, _, _ = driver.execute_query(
        "MATCH (p:Profile) WHERE p.profile_id IN $ids AND any(k IN keys(p) WHERE k STARTS WITH 'consent') "
        "RETURN count(p) AS n", ids=ids)
    assert remaining[0]["n"] == 0


def consent_rule(category: str, granted: bool = True) -> seg.Rule:
    return seg.Rule(consent=seg.ConsentCondition(category=category, granted=granted))


def test_a_segment_rule_on_consent_follows_grants_and_withdrawals(identity, segments, uid) -> None:
    run = seg.Rule(trait=seg.TraitCondition(key="run", equals=uid))
    for name, granted in (("granted", True), ("not-granted", False)):
        segments.UpsertSegment(seg.UpsertSegmentRequest(
            name=f"t-{uid}-{name}", rule=seg.Rule(all=seg.RuleList(rules=[run, consent_rule("email", granted)]))),
            timeout=60)
    cookie = f"cookie:{uid}"
    ingest(identity, [event(f"{uid}-0", cookie, minute=0, run=uid)])
    eventually(lambda: set(profile_of(identity, cookie).segments) == {f"t-{uid}-not-granted"}, "default: not granted")
    ingest(identity, [stated(f"{uid}-1", cookie, minute=1, email=True)])
    eventually(lambda: set(profile_of(identity, cookie).segments) == {f"t-{uid}-granted"}, "granted")
    ingest(identity, [stated(f"{uid}-2", cookie, minute=2, email=False)])
    eventually(lambda: set(profile_of(identity, cookie).segments) == {f"t-{uid}-not-granted"}, "withdrawn")


def test_a_segment_rule_on_an_unconfigured_category_is_refused(segments, uid) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        segments.UpsertSegment(seg.UpsertSegmentRequest(name=f"t-{uid}-x", rule=consent_rule("carrier_pigeons")),
                               timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rule.consent.category 'carrier_pigeons' is not a configured consent category" in refused.value.details()


# ---- through the HTTP collector: the stock SDKs and the tracking spec ------------------------

def collector_url(server) -> str:
    return f"http://127.0.0.1:{server.collect_port}"


def test_segments_sdk_consent_preferences_withdraw_a_grant(grpc_server, identity, uid) -> None:
    """segment-analytics-python, as a consent manager sends it: "Segment Consent Preference
    Updated" with context.consent.categoryPreferences, then a withdrawal."""
    errors: list[object] = []
    client = SegmentClient(write_key="any-key", host=collector_url(grpc_server), max_retries=2,
                           on_error=lambda e, batch: errors.append(e))
    for n, (minute, ads) in enumerate(((1, True), (2, False))):
        client.track(anonymous_id=f"{uid}-a", event="Segment Consent Preference Updated", message_id=f"{uid}-{n}",
                     timestamp=T0 + timedelta(minutes=minute),
                     context={"consent": {"categoryPreferences": {"Advertising": ads, "Analytics": True}}})
    client.flush()
    client.shutdown()
    assert not errors
    wait_for(identity, f"anonymous_id:{uid}-a", DENIED)
    consent = consent_of(identity, f"anonymous_id:{uid}-a")
    assert consent["analytics"].status == GRANTED and consent["advertising"].source == "web"


def test_rudderstacks_consent_management_ids_through_its_sdk(grpc_server, identity, uid) -> None:
    errors: list[object] = []
    client = RudderClient(write_key="any-key", host=collector_url(grpc_server), max_retries=2,
                          on_error=lambda e, batch: errors.append(e))
    client.identify(user_id=f"{uid}-u", message_id=f"{uid}-i", context={"consentManagement": {
        "provider": "oneTrust", "allowedConsentIds": ["C0001", "C0004"], "deniedConsentIds": ["C0002"]}})
    client.flush()
    client.shutdown()
    assert not errors
    wait_for(identity, f"user_id:{uid}-u", GRANTED)  # C0004 is an alias of advertising
    assert consent_of(identity, f"user_id:{uid}-u")["analytics"].status == DENIED  # C0002


def test_a_consent_value_that_is_not_true_or_false_is_an_invalid_value_with_a_warning(grpc_server, identity, uid) -> None:
    answer = requests.post(f"{collector_url(grpc_server)}/v1/page", timeout=30, json={
        "anonymousId": f"{uid}-a", "messageId": f"{uid}-p",
        "context": {"consent": {"categoryPreferences": {"advertising": "yes", "email": True}}}})
    assert answer.status_code == 200
    body = answer.json()
    assert body["accepted"] == 1
    assert [(w["field"], w["reason"].split(":")[0]) for w in body["warnings"]] == [("consent.advertising", "invalid value")]
    wait_for(identity, f"anonymous_id:{uid}-a", GRANTED, "email")
    assert consent_of(identity, f"anonymous_id:{uid}-a")["advertising"].source == "default"  # "yes" stated nothing


# ---- destinations that require consent --------------------------------------------------------

def ads_segment(segments, uid: str, name: str = "ads") -> str:
    """Members of this test's run who granted advertising."""
    run = seg.Rule(trait=seg.TraitCondition(key="run", equals=uid))
    segments.UpsertSegment(seg.UpsertSegmentRequest(name=f"t-{uid}-{name}", rule=seg.Rule(all=seg.RuleList(
        rules=[run, consent_rule("advertising")]))), timeout=60)
    return f"t-{uid}-{name}"


class Delivery:
    """A delivery runner on a thread, its destination an ad audience file requiring advertising consent."""

    def __init__(self, channel, tmp_path: Path, segment: str, **destination: object) -> None:
        client = IdentityClient(channel)
        self.path = tmp_path / "ads.jsonl"
        config = parse_destinations({"state_dir": str(tmp_path / "state"), "destinations": [{
            "name": "ads", "segment": segment, "requires_consent": ["advertising"],
            "file": {"path": str(self.path), "batch_size": 1}, **destination}]})
        self.runner = DeliveryRunner(config, client.segments.watch, identifiers=lookup_identifiers(client),
                                     consent=lookup_consent(client), rules=segment_rules(client))
        self.statuses: list[DestinationStatus] = []
        self.thread = threading.Thread(target=lambda: self.statuses.extend(self.runner.run()), daemon=True)
        self.thread.start()

    def changes(self) -> list[tuple[str, str]]:
        text = self.path.read_text() if self.path.exists() else ""
        return [(r["kind"], r["profile_id"]) for r in map(json.loads, text.splitlines())]

    def stop(self) -> list[DestinationStatus]:
        self.runner.stop()
        self.thread.join(30)
        return self.statuses


def test_a_withdrawal_reaches_the_ad_audience_as_an_exit(identity, segments, channel, tmp_path: Path, uid) -> None:
    segment = ads_segment(segments, uid)
    delivery = Delivery(channel, tmp_path, segment)
    try:
        cookie = f"cookie:{uid}"
        ingest(identity, [event(f"{uid}-0", cookie, minute=0, run=uid)])
        ingest(identity, [stated(f"{uid}-1", cookie, minute=1, advertising=True)])
        profile_id = profile_of(identity, cookie).profile_id
        eventually(lambda: delivery.changes() == [("enter", profile_id)], "the grant delivered as an ENTER")
        ingest(identity, [stated(f"{uid}-2", cookie, minute=2, advertising=False)])
        eventually(lambda: delivery.changes() == [("enter", profile_id), ("exit", profile_id)],
                   "the withdrawal delivered as an EXIT")
    finally:
        (status,) = delivery.stop()
    assert status.error is None and status.delivered == 2


def test_a_merge_into_conflict_exits_and_nothing_enters_until_a_newer_grant(identity, segments, channel,
                                                                            tmp_path: Path, uid) -> None:
    segment = ads_segment(segments, uid)
    cookie, email = f"cookie:{uid}", f"email:{uid}@example.com"
    delivery = Delivery(channel, tmp_path, segment)
    try:
        ingest(identity, [stated(f"{uid}-a", cookie, minute=1, advertising=True, run=uid),
                          stated(f"{uid}-b", email, minute=2, advertising=False, run=uid)])
        granted_id = profile_of(identity, cookie).profile_id
        eventually(lambda: delivery.changes() == [("enter", granted_id)], "the granting profile entered")
        wait_for(identity, email, DENIED)
        ingest(identity, [event(f"{uid}-login", cookie, email, minute=3, type="login")])
        wait_for(identity, cookie, CONFLICT)
        eventually(lambda: ("exit", granted_id) in delivery.changes(), "the conflict delivered as an EXIT")
        assert [kind for kind, _ in delivery.changes()] == ["enter", "exit"]  # nothing entered in conflict
        ingest(identity, [stated(f"{uid}-c", email, minute=4, advertising=True)])
        merged_id = profile_of(identity, cookie).profile_id
        eventually(lambda: delivery.changes()[-1:] == [("enter", merged_id)], "the newer grant entered")
    finally:
        (status,) = delivery.stop()
    assert status.error is None


def test_an_enter_of_a_profile_that_has_withdrawn_since_is_withheld(identity, segments, channel, tmp_path: Path,
                                                                    uid) -> None:
    """A first run from position 0 meets old ENTERs: the person is never sent while not granting."""
    segment = ads_segment(segments, uid)
    cookie = f"cookie:{uid}"
    ingest(identity, [stated(f"{uid}-1", cookie, minute=1, advertising=True, run=uid)])
    eventually(lambda: segment in profile_of(identity, cookie).segments, "entered")
    ingest(identity, [stated(f"{uid}-2", cookie, minute=2, advertising=False)])
    eventually(lambda: segment not in profile_of(identity, cookie).segments, "exited")

    delivery = Delivery(channel, tmp_path, segment)
    profile_id = profile_of(identity, cookie).profile_id
    try:
        eventually(lambda: delivery.changes() == [("exit", profile_id)], "only the EXIT delivered")
    finally:
        (status,) = delivery.stop()
    assert status.withheld == 1 and status.error is None


def test_a_destination_requiring_consent_its_segment_does_not_require_does_not_start(
        segments, channel, tmp_path: Path, uid) -> None:
    segments.UpsertSegment(seg.UpsertSegmentRequest(name=f"t-{uid}-all", rule=seg.Rule(
        trait=seg.TraitCondition(key="run", equals=uid))), timeout=60)
    delivery = Delivery(channel, tmp_path, f"t-{uid}-all")
    delivery.thread.join(30)
    (status,) = delivery.statuses
    assert status.error and "requires consent advertising, but segment" in status.error
    assert "{consent: {category: advertising, granted: true}}" in status.error
    assert not delivery.path.exists()


def test_requires_consent_must_name_configured_categories() -> None:
    with pytest.raises(DestinationsError, match=r"requires_consent 'pigeons' are not consent categories"):
        parse_destinations({"destinations": [{"name": "x", "segment": "s", "requires_consent": ["pigeons"],
                                              "file": {"path": "x.jsonl"}}]})


def test_browsers_consent_slide_shows_the_state_and_the_statements_it_comes_from(identity, driver: Driver,
                                                                                uid) -> None:
    from server.operators.browser import saved_queries

    ingest(identity, [stated(f"{uid}-1", f"cookie:{uid}", minute=1, advertising=True),
                      stated(f"{uid}-2", f"cookie:{uid}", minute=2, source="app", advertising=False)])
    wait_for(identity, f"cookie:{uid}", DENIED)
    query = next(q for q in saved_queries() if q.name == "consent").query
    records, _, _ = driver.execute_query(query, type="cookie", value=uid)
    assert [r["t"]["event_id"] for r in records] == [f"{uid}-2", f"{uid}-1"]  # newest first
    assert records[0]["t"]["consent_denied"] == ["advertising"]
    (shown,) = [c for c in records[0]["consent"] if c.startswith("advertising:")]
    assert shown.startswith("advertising: denied (2026-11-01T09:02:00Z") and shown.endswith(", app)")


# ---- the repair of a full recompute ------------------------------------------------------------

def test_profiles_a_repair_merges_get_a_conflict_and_an_orphan_its_own_consent(identity, driver: Driver, graph,
                                                                              uid) -> None:
    from server.identity.full_recompute import recompute, repair
    from server.identity.identity_config import load_rules

    cookie, email, phone_cookie = f"cookie:{uid}", f"email:{uid}@example.com", f"cookie:o-{uid}"
    ingest(identity, [stated(f"{uid}-a", cookie, minute=1, advertising=True),
                      stated(f"{uid}-b", email, minute=2, advertising=False),
                      stated(f"{uid}-c", phone_cookie, minute=3, email=True)])
    driver.execute_query(  # a link the incremental path never saw: the two profiles are one component
        "MATCH (a:Identifier {type: 'cookie', value: $a}), (b:Identifier {type: 'email', value: $b}) "
        "CREATE (a)-[:LINKED {times_seen: 1, event_ids: []}]->(b)", a=uid, b=f"{uid}@example.com")
    driver.execute_query("MATCH (:Identifier {type: 'cookie', value: $v})-[b:BELONGS_TO]->() DELETE b", v=f"o-{uid}")
    report = recompute(graph, scope=uid)
    assert sorted(m.problem for m in report.mismatches) == ["merge", "orphan"]
    repair(graph, load_rules(), report)
    wait_for(identity, cookie, CONFLICT)
    assert profile_of(identity, cookie).profile_id == profile_of(identity, email).profile_id
    wait_for(identity, phone_cookie, GRANTED, "email")  # the orphan's new profile was evaluated
