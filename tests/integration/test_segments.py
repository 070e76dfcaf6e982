"""Segments through the real service: definitions, membership, the change feed, and how
ingest, merges, forgets and time windows move profiles in and out.

Every segment here is named `t-<uid>-...` and tests the trait `run` the test's own events
carry, so that tests share one Neo4j without seeing each other's profiles.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from identity.v1 import common_pb2, identity_service_pb2 as pb, segment_service_pb2 as seg, segment_service_pb2_grpc
from neo4j import Driver
from pathlib import Path
from support import by_identifier, identifier, ingest, profile_of, stamp

from server.graph import Graph
from server.identity.identity_config import load_rules
from server.identity.segments.catalog import SegmentCatalog
from server.identity.segments.membership import Membership

WAIT = 60.0  # a deadline for what must come, generous for a loaded machine


@pytest.fixture(scope="module", autouse=True)
def no_test_segments_outside_this_module(driver: Driver) -> Iterator[None]:
    """Test segments left behind would be evaluated for every profile later tests write (and
    the time-window ones every 2 s over the whole graph)."""
    def remove() -> None:
        driver.execute_query("MATCH (s:Segment) WHERE s.name STARTS WITH 't-' "
                             "OPTIONAL MATCH (s)-[:HAS_VERSION]->(v) DETACH DELETE s, v")
    remove()
    yield
    remove()


@pytest.fixture(autouse=True)
def segments_of_this_test_removed_after_it(driver: Driver, uid: str) -> Iterator[None]:
    """The worker evaluates every segment for every changed profile: keep the set small."""
    yield
    driver.execute_query("MATCH (s:Segment) WHERE s.name STARTS WITH $prefix "
                         "OPTIONAL MATCH (s)-[:HAS_VERSION]->(v) DETACH DELETE s, v", prefix=f"t-{uid}-")


@pytest.fixture(scope="session")
def segments(channel: grpc.Channel) -> segment_service_pb2_grpc.SegmentServiceStub:
    return segment_service_pb2_grpc.SegmentServiceStub(channel)


@pytest.fixture(scope="session")
def membership(graph: Graph, settings) -> Membership:
    rules = load_rules(settings.rules_file)
    return Membership(graph, SegmentCatalog(graph, rules.strong_types()), frozenset(rules.identifier_types))


# -- building rules and events -------------------------------------------------------------

def trait(key: str, **test: object) -> seg.Rule:
    return seg.Rule(trait=seg.TraitCondition(key=key, **test))


def run_is(uid: str) -> seg.Rule:
    return trait("run", equals=uid)


def all_of(*rules: seg.Rule) -> seg.Rule:
    return seg.Rule(all=seg.RuleList(rules=rules))


def any_of(*rules: seg.Rule) -> seg.Rule:
    return seg.Rule(any=seg.RuleList(rules=rules))


def negate(rule: seg.Rule) -> seg.Rule:
    return seg.Rule(**{"not": rule})


def has(kind: str) -> seg.Rule:
    return seg.Rule(identifier=seg.IdentifierCondition(has_type=kind))


def touchpoints(aggregate: int, comparison: int, value: float, types: tuple[str, ...] = (), window_s: int = 0,
                channels: tuple[int, ...] = (), prop: str = "") -> seg.Rule:
    condition = seg.TouchpointCondition(filter=seg.TouchpointFilter(types=types, channels=channels),
                                        aggregate=aggregate, comparison=comparison, value=value, property=prop)
    if window_s:
        condition.window.CopyFrom(Duration(seconds=window_s))
    return seg.Rule(touchpoints=condition)


def now_event(event_id: str, *identifiers: str, ago: timedelta = timedelta(minutes=1), type: str = "page_view",
              channel: int = common_pb2.CHANNEL_ONLINE, properties: dict[str, str] | None = None,
              **traits: str) -> pb.Event:
    return pb.Event(event_id=event_id, occurred_at=stamp(datetime.now(UTC) - ago), source="web", channel=channel,
                    type=type, identifiers=[identifier(i) for i in identifiers], traits=traits,
                    properties=properties or {})


def upsert(segments, name: str, rule: seg.Rule, description: str = "") -> seg.Segment:
    return segments.UpsertSegment(seg.UpsertSegmentRequest(name=name, rule=rule, description=description), timeout=120)


def members(segments, name: str, *types: str) -> dict[str, set[str]]:
    answer = segments.ListSegmentMembers(seg.ListSegmentMembersRequest(name=name, identifier_types=types), timeout=30)
    return {m.profile_id: {f"{i.type}:{i.value}" for i in m.identifiers} for m in answer}


def changes(segments, name: str, count: int, after: int = 0, timeout: float = WAIT) -> list[seg.SegmentChange]:
    """The first `count` changes after the position, waited for up to a generous deadline."""
    seen: list[seg.SegmentChange] = []
    call = segments.WatchSegment(seg.WatchSegmentRequest(name=name, after_position=after), timeout=timeout)
    try:
        for change in call:
            seen.append(change)
            if len(seen) == count:
                break
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
        raise AssertionError(f"{name}: {len(seen)} of {count} changes after position {after} within {timeout} s: "
                             f"{kinds(seen)}") from None
    finally:
        call.cancel()
    return seen


def eventually(check: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Waits until check() holds, up to a generous deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def marked(driver: Driver, profile_id: str) -> bool:
    """Whether the profile waits for the segment worker."""
    records, _, _ = driver.execute_query("MATCH (p:SegmentsDirty {profile_id: $id}) RETURN p", id=profile_id)
    return bool(records)


def kinds(found: list[seg.SegmentChange]) -> list[tuple[str, int, str]]:
    return [(c.profile_id, c.kind, c.cause) for c in found]


ENTER, EXIT = seg.CHANGE_KIND_ENTER, seg.CHANGE_KIND_EXIT


# -- definitions (bad ones: tests/integration/test_bad_input.py) --------------------------

def test_every_upsert_is_a_new_version_kept_in_the_graph(segments, driver: Driver, uid: str) -> None:
    first = upsert(segments, f"t-{uid}-v", run_is(uid), "first")
    second = upsert(segments, f"t-{uid}-v", all_of(run_is(uid), has("email")), "second")
    assert (first.version, second.version) == (1, 2)
    stored = segments.GetSegment(seg.GetSegmentRequest(name=f"t-{uid}-v"), timeout=10)
    assert stored.rule == all_of(run_is(uid), has("email")) and stored.description == "second"
    records, _, _ = driver.execute_query(
        "MATCH (:Segment {name: $name})-[:HAS_VERSION]->(v) RETURN v.version AS version, v.description AS d "
        "ORDER BY version", name=f"t-{uid}-v")
    assert [(r["version"], r["d"]) for r in records] == [(1, "first"), (2, "second")]


def test_hostile_strings_are_values_never_cypher(segments, identity, driver: Driver, uid: str) -> None:
    hostile = ["x' OR 1=1 //", "'}) MATCH (n) DETACH DELETE n //", "`) DETACH DELETE n //", "$r0", "*/ true /*",
               "a\nMATCH (n) DELETE n", "名前"]
    ingest(identity, [now_event(f"{uid}-1", f"email:{uid}@example.com", run=uid, **{"nick": hostile[1]})])
    nodes_before = driver.execute_query("MATCH (n) RETURN count(n) AS n").records[0]["n"]
    rule = all_of(run_is(uid), any_of(
        *(trait(h, equals=h) for h in hostile),
        *(trait(h, prefix=h) for h in hostile),
        trait("nick", **{"in": seg.StringList(values=hostile)}),
        seg.Rule(identifier=seg.IdentifierCondition(has_type="email")),
        touchpoints(seg.AGGREGATE_SUM, seg.COMPARISON_GT, 0, types=tuple(hostile), prop=hostile[2]),
    ))
    stored = upsert(segments, f"t-{uid}-hostile", rule)
    assert stored.rule == rule
    assert driver.execute_query("MATCH (n) RETURN count(n) AS n").records[0]["n"] >= nodes_before
    assert set(members(segments, f"t-{uid}-hostile")) == {profile_of(identity, f"email:{uid}@example.com").profile_id}


# -- membership ---------------------------------------------------------------------------------

def test_conditions_on_traits_identifiers_and_touchpoints(segments, identity, uid: str) -> None:
    day = timedelta(days=1)
    ingest(identity, [
        # ann: known, US, two purchases this month worth 150, browsing lately
        now_event(f"{uid}-a1", f"email:ann-{uid}@example.com", run=uid, country="US", birth_date="1990-04-01"),
        now_event(f"{uid}-a2", f"email:ann-{uid}@example.com", ago=3 * day, type="purchase", properties={"amount": "100"}),
        now_event(f"{uid}-a3", f"email:ann-{uid}@example.com", ago=10 * day, type="purchase", properties={"amount": "50"}),
        # bob: known, DE, one purchase long ago, in a store; no page view for 20 days
        now_event(f"{uid}-b1", f"email:bob-{uid}@example.com", ago=20 * day, run=uid, country="DE", birth_date="1960-01-01"),
        now_event(f"{uid}-b2", f"loyalty_id:L-{uid}", f"email:bob-{uid}@example.com", ago=90 * day, type="purchase",
                  channel=common_pb2.CHANNEL_OFFLINE, properties={"amount": "500"}),
        # cat: anonymous visitor
        now_event(f"{uid}-c1", f"cookie:cat-{uid}", run=uid, country="US"),
    ])
    ann, bob, cat = (profile_of(identity, ref).profile_id
                     for ref in (f"email:ann-{uid}@example.com", f"email:bob-{uid}@example.com", f"cookie:cat-{uid}"))
    month = 30 * 86400
    cases = {
        "us": (trait("country", equals="US"), {ann, cat}),
        "in": (trait("country", **{"in": seg.StringList(values=["DE", "FR"])}), {bob}),
        "prefix": (trait("birth_date", prefix="199"), {ann}),
        "range": (trait("birth_date", range=seg.Range(min="1950-01-01", max="1970-12-31")), {bob}),
        "exists": (negate(trait("birth_date", exists=True)), {cat}),
        "email": (has("email"), {ann, bob}),
        "anonymous": (seg.Rule(identifier=seg.IdentifierCondition(anonymous=True)), {cat}),
        "buyers": (touchpoints(seg.AGGREGATE_COUNT, seg.COMPARISON_GTE, 2, ("purchase",), month), {ann}),
        "spend": (touchpoints(seg.AGGREGATE_SUM, seg.COMPARISON_GTE, 100, ("purchase",), prop="amount"), {ann, bob}),
        "spend-month": (touchpoints(seg.AGGREGATE_SUM, seg.COMPARISON_GTE, 120, ("purchase",), month, prop="amount"), {ann}),
        "lapsed": (touchpoints(seg.AGGREGATE_SECONDS_SINCE_LAST, seg.COMPARISON_GT, 14 * 86400, ("page_view",)), {bob}),
        "offline": (touchpoints(seg.AGGREGATE_COUNT, seg.COMPARISON_GTE, 1, channels=(common_pb2.CHANNEL_OFFLINE,)), {bob}),
        "either": (any_of(trait("country", equals="DE"), seg.Rule(identifier=seg.IdentifierCondition(anonymous=True))), {bob, cat}),
    }
    for name, (rule, expected) in cases.items():
        stored = upsert(segments, f"t-{uid}-{name}", all_of(run_is(uid), rule))
        assert set(members(segments, f"t-{uid}-{name}")) == expected, name
        assert stored.member_count == len(expected), name


def test_members_carry_the_identifiers_asked_for_and_lookups_name_the_segments(segments, identity, uid: str) -> None:
    ingest(identity, [now_event(f"{uid}-1", f"email:{uid}@example.com", f"cookie:c-{uid}", f"device_id:d-{uid}",
                                run=uid)])
    upsert(segments, f"t-{uid}-all", run_is(uid))
    upsert(segments, f"t-{uid}-known", all_of(run_is(uid), seg.Rule(in_segment=f"t-{uid}-all"), has("email")))
    (profile_id,) = members(segments, f"t-{uid}-known")
    assert members(segments, f"t-{uid}-known", "email") == {profile_id: {f"email:{uid}@example.com"}}
    assert len(members(segments, f"t-{uid}-known")[profile_id]) == 3
    paged = segments.ListSegmentMembers(seg.ListSegmentMembersRequest(name=f"t-{uid}-all", page_size=1), timeout=30)
    assert [m.profile_id for m in paged] == [profile_id]
    assert list(profile_of(identity, f"cookie:c-{uid}").segments) == [f"t-{uid}-all", f"t-{uid}-known"]


def test_membership_is_visible_as_edges_in_the_graph(segments, identity, driver: Driver, uid: str) -> None:
    ingest(identity, [now_event(f"{uid}-1", f"email:{uid}@example.com", run=uid)])
    upsert(segments, f"t-{uid}-edges", run_is(uid))
    records, _, _ = driver.execute_query(
        "MATCH (i:Identifier {type: 'email', value: $email})-[:BELONGS_TO]->(p:Profile)-[m:IN_SEGMENT]->(s:Segment) "
        "RETURN s.name AS name, m.since IS NOT NULL AS since", email=f"{uid}@example.com")
    assert [(r["name"], r["since"]) for r in records] == [(f"t-{uid}-edges", True)]


# -- the change feed ---------------------------------------------------------------------------

def test_ingest_moves_profiles_in_and_the_feed_says_so_once(segments, identity, uid: str) -> None:
    name = f"t-{uid}-feed"
    upsert(segments, name, all_of(run_is(uid), touchpoints(seg.AGGREGATE_COUNT, seg.COMPARISON_GTE, 2, ("purchase",))))

    def buys_twice(n: int) -> str:
        ingest(identity, [now_event(f"{uid}-{n}-1", f"email:p{n}-{uid}@example.com", type="purchase", run=uid),
                          now_event(f"{uid}-{n}-2", f"email:p{n}-{uid}@example.com", type="purchase", run=uid)])
        return profile_of(identity, f"email:p{n}-{uid}@example.com").profile_id

    buyers = [buys_twice(n) for n in range(3)]
    entered = changes(segments, name, 3)
    assert sorted(kinds(entered)) == sorted((buyer, ENTER, "ingest") for buyer in buyers)
    positions = [c.position for c in entered]
    assert positions == sorted(positions) and len(set(positions)) == 3
    marker = buys_twice(3)  # a later change: what comes before it in the feed is all there is
    resumed = changes(segments, name, 3, after=positions[0])
    assert [c.position for c in resumed[:2]] == positions[1:]
    assert kinds(resumed[2:]) == [(marker, ENTER, "ingest")], "nothing between the three entries and the marker"


def test_a_merge_exits_the_absorbed_profile_and_keeps_the_survivor(segments, identity, driver: Driver, uid: str) -> None:
    name = f"t-{uid}-merge"
    ingest(identity, [now_event(f"{uid}-1", f"cookie:c-{uid}", run=uid),
                      now_event(f"{uid}-2", f"email:{uid}@example.com", run=uid)])
    cookie_profile = profile_of(identity, f"cookie:c-{uid}").profile_id
    email_profile = profile_of(identity, f"email:{uid}@example.com").profile_id
    eventually(lambda: not marked(driver, cookie_profile) and not marked(driver, email_profile),
               "the ingest's evaluation is done")  # else the entries could be the ingest's, not the definition's
    upsert(segments, name, run_is(uid))
    both = f"t-{uid}-both"  # only the merged profile has a cookie and an e-mail
    upsert(segments, both, all_of(run_is(uid), has("cookie"), has("email")))
    before = changes(segments, name, 2)
    assert sorted(kinds(before)) == sorted([(cookie_profile, ENTER, "definition"), (email_profile, ENTER, "definition")])
    ingest(identity, [now_event(f"{uid}-3", f"cookie:c-{uid}", f"email:{uid}@example.com", type="identify")])
    survivor = profile_of(identity, f"cookie:c-{uid}").profile_id
    absorbed = ({cookie_profile, email_profile} - {survivor}).pop()
    after = changes(segments, name, 1, after=before[-1].position)
    assert kinds(after) == [(absorbed, EXIT, "merge")], "the next change after the two entries is the exit"
    # from the start of the log: nothing entered `both` before the merge
    assert kinds(changes(segments, both, 1)) == [(survivor, ENTER, "merge")]
    assert set(members(segments, name)) == {survivor}


def test_forgetting_a_person_exits_every_segment(segments, identity, uid: str) -> None:
    name = f"t-{uid}-forget"
    ingest(identity, [now_event(f"{uid}-1", f"email:{uid}@example.com", run=uid)])
    profile_id = profile_of(identity, f"email:{uid}@example.com").profile_id
    upsert(segments, name, run_is(uid))
    (entered,) = changes(segments, name, 1)
    assert (entered.profile_id, entered.kind) == (profile_id, ENTER)
    identity.ForgetProfile(pb.ForgetProfileRequest(ref=by_identifier(f"email:{uid}@example.com")), timeout=30)
    exited = changes(segments, name, 1, after=entered.position)
    assert kinds(exited) == [(profile_id, EXIT, "forget")]
    assert members(segments, name) == {}


def test_a_time_window_lets_members_age_out_on_the_schedule(segments, identity, uid: str) -> None:
    """The window starts with the event, after the segment exists, so no wait of the test's
    own eats into it; it only has to outlast the time ingest takes to evaluate the event."""
    name = f"t-{uid}-window"
    window = 20
    stored = upsert(segments, name, all_of(run_is(uid), touchpoints(seg.AGGREGATE_COUNT, seg.COMPARISON_GTE, 1,
                                                                    window_s=window)))
    assert stored.member_count == 0
    ingest(identity, [now_event(f"{uid}-1", f"email:{uid}@example.com", ago=timedelta(0), run=uid)])
    profile_id = profile_of(identity, f"email:{uid}@example.com").profile_id
    entered, exited = changes(segments, name, 2, timeout=window + WAIT)
    assert (entered.profile_id, entered.kind) == (profile_id, ENTER)  # by the ingest, or a schedule run before it
    assert kinds([exited]) == [(profile_id, EXIT, "schedule")]


def test_a_position_deleted_by_retention_is_refused_not_skipped(segments, identity, membership: Membership, uid: str) -> None:
    name = f"t-{uid}-retention"
    ingest(identity, [now_event(f"{uid}-{n}", f"email:{n}-{uid}@example.com", run=uid) for n in range(3)])
    upsert(segments, name, run_is(uid))
    logged = changes(segments, name, 3)
    trimmed = 0
    while deleted := membership.trim(timedelta(0)):  # a page at a time: a shared database holds other tests' changes
        trimmed += deleted
    assert trimmed >= 3
    with pytest.raises(grpc.RpcError) as gone:
        changes(segments, name, 1, after=logged[0].position)
    assert gone.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "retention" in gone.value.details()
    # the last position is still one to resume from: the next change there is a later one's
    ingest(identity, [now_event(f"{uid}-3", f"email:3-{uid}@example.com", run=uid)])
    later = profile_of(identity, f"email:3-{uid}@example.com").profile_id
    assert kinds(changes(segments, name, 1, after=logged[-1].position)) == [(later, ENTER, "ingest")]


def test_a_full_evaluation_agrees_with_the_incremental_membership(segments, identity, membership: Membership, uid: str) -> None:
    """After a burst of ingest, merges and a forget, evaluating everything again changes nothing."""
    name = f"t-{uid}-agree"
    upsert(segments, name, all_of(run_is(uid), has("email"), touchpoints(seg.AGGREGATE_COUNT, seg.COMPARISON_GTE, 2)))
    events = []
    for n in range(20):
        events.append(now_event(f"{uid}-{n}-a", f"cookie:c{n}-{uid}", run=uid))
        if n % 2 == 0:
            events.append(now_event(f"{uid}-{n}-b", f"cookie:c{n}-{uid}", f"email:{n}-{uid}@example.com", type="identify"))
    ingest(identity, events)
    identity.ForgetProfile(pb.ForgetProfileRequest(ref=by_identifier(f"email:0-{uid}@example.com")), timeout=30)
    expected = {profile_of(identity, f"email:{n}-{uid}@example.com").profile_id for n in range(2, 20, 2)}
    eventually(lambda: set(members(segments, name)) == expected, "the members are the people with an e-mail")
    assert membership.evaluate_fully(name, "definition") == 0


# -- activation ---------------------------------------------------------------------------------

def test_a_delivery_runner_killed_mid_stream_ends_with_the_evaluated_membership(
        segments, identity, grpc_server, membership: Membership, tmp_path: Path, uid: str) -> None:
    """The `identity deliver` process is killed (SIGKILL) twice while profiles enter and leave;
    restarted, its file holds every change once, and replaying it gives the members."""
    name = f"t-{uid}-deliver"
    upsert(segments, name, all_of(run_is(uid), touchpoints(seg.AGGREGATE_COUNT, seg.COMPARISON_GTE, 2, ("purchase",)),
                                  negate(trait("status", equals="churned"))))
    sink = tmp_path / "members.jsonl"
    config = tmp_path / "destinations.yaml"
    config.write_text(json.dumps({"state_dir": str(tmp_path / "state"), "destinations": [
        {"name": "file", "segment": name, "file": {"path": str(sink), "format": "jsonl"}}]}))
    command = [sys.executable, "-m", "client", "--address", f"127.0.0.1:{grpc_server.port}", "deliver",
               "--config", str(config)]
    stop = threading.Event()

    def customers() -> None:  # people buy, and some churn, until told to stop
        n = 0
        while not stop.is_set() and n < 60:
            ingest(identity, [now_event(f"{uid}-{n}-{k}", f"email:{n}-{uid}@example.com", type="purchase", run=uid)
                              for k in range(2)])
            if n % 4 == 3:
                ingest(identity, [now_event(f"{uid}-{n - 2}-churn", f"email:{n - 2}-{uid}@example.com", type="update",
                                            status="churned")])
            n += 1

    buyer = threading.Thread(target=customers)
    buyer.start()
    try:
        for _ in range(2):
            runner = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                delivered = sink.stat().st_size if sink.exists() else 0
                eventually(lambda: (sink.stat().st_size if sink.exists() else 0) > delivered,
                           "the runner delivers more")
            finally:
                runner.send_signal(signal.SIGKILL)
                runner.wait()
    except BaseException:
        stop.set()  # the buyers stop early only when the test already failed
        raise
    finally:
        buyer.join()
    eventually(lambda: len(members(segments, name)) == 45, "60 buyers, 15 of whom churned, are members")
    assert membership.evaluate_fully(name, "definition") == 0
    expected = set(members(segments, name))
    eventually(lambda: _replayed(command + ["--once"], sink) == expected, "the file replays to the members")
    positions = [json.loads(line)["position"] for line in sink.read_text().splitlines()]
    assert positions == sorted(set(positions)), "a change was delivered twice or out of order"


def _replayed(command: list[str], sink: Path) -> set[str]:
    from activation import replay_membership

    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return replay_membership(sink)


def test_the_backfill_brings_a_graph_written_before_segments_up_to_date(
        segments, identity, graph: Graph, driver: Driver, uid: str) -> None:
    from server.identity.segments.trait_copies import backfill

    ingest(identity, [now_event(f"{uid}-1", f"email:{uid}@example.com", type="purchase", run=uid,
                                properties={"amount": "120.50", "sku": "A-1"})])
    profile_id = profile_of(identity, f"email:{uid}@example.com").profile_id
    driver.execute_query(  # as the previous version wrote them: no trait or number copies
        "MATCH (p:Profile {profile_id: $id}) FOREACH (k IN [k IN keys(p) WHERE k STARTS WITH 'trait.'] | SET p[k] = null) "
        "WITH p MATCH (t:Touchpoint {event_id: $event}) SET t.`prop.amount` = null", id=profile_id, event=f"{uid}-1")
    name = f"t-{uid}-backfill"
    upsert(segments, name, all_of(run_is(uid), touchpoints(seg.AGGREGATE_SUM, seg.COMPARISON_GTE, 100, prop="amount")))
    assert members(segments, name) == {}
    first = backfill(graph)
    assert first.profiles >= 1 and first.touchpoints >= 1
    eventually(lambda: set(members(segments, name)) == {profile_id}, "the backfilled profile is a member")
    again = backfill(graph)
    assert (again.profiles, again.touchpoints) == (0, 0)
