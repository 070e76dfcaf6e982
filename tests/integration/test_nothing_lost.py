"""Nothing lost at the edge, end to end: a web/app feed and a CRM file with every kind of flaw
go in through gRPC; good values are stored and linked, bad ones kept as invalid with their
reason, rejects kept in quarantine; after a configuration change a replay brings them in
exactly once. Checked against Neo4j with a plain driver, not through the service's own reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import yaml
from identity.v1 import identity_service_pb2 as pb, identity_service_pb2_grpc
from neo4j import Driver

from server.api.app import create_server
from server.config import Settings
from server.graph import Graph
from server.identity.identity_config import DEFAULT_RULES_FILE, load_rules
from tests.integration.support import T0, by_identifier, event, identifier, identifiers_of, ingest, profile_of, stamp

Stub = identity_service_pb2_grpc.IdentityServiceStub


def rules_before(directory: Path) -> Path:
    """A deployment that has not declared anonymous_id yet, with tight size limits."""
    data = yaml.safe_load(DEFAULT_RULES_FILE.read_text())
    del data["identifier_types"]["anonymous_id"]
    data["priority"].remove("anonymous_id")
    data["aliases"] = {k: v for k, v in data["aliases"].items() if v != "anonymous_id"}
    data.update(max_properties=5, max_traits=6)
    path = directory / "identity-before.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def servers(settings: Settings, graph: Graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stub, Stub]]:
    """One server under the old rules, one under the new (the default file), on one Neo4j."""
    before = rules_before(tmp_path_factory.mktemp("rules"))
    running = [create_server(replace(settings, rules_file=path, rules=load_rules(path)), graph)
               for path in (before, DEFAULT_RULES_FILE)]
    channels = [grpc.insecure_channel(f"127.0.0.1:{r.port}") for r in running]
    yield Stub(channels[0]), Stub(channels[1])
    for channel, server in zip(channels, running):
        channel.close()
        server.stop(grace=5)


def rejected(driver: Driver, source: str) -> dict[str, dict[str, object]]:
    records, _, _ = driver.execute_query(
        "MATCH (r:Rejected {source: $source}) RETURN r.subject_id AS id, r.code AS code, r.reason AS reason, "
        "r.attempts AS attempts, r.payload AS payload", source=source)
    return {r["id"]: dict(r) for r in records}


def invalid_of(driver: Driver, event_id: str) -> list[str]:
    records, _, _ = driver.execute_query("MATCH (t:Touchpoint {event_id: $id}) RETURN t.invalid AS invalid, "
                                         "t:HasInvalid AS labelled", id=event_id)
    (record,) = records
    assert bool(record["invalid"]) == record["labelled"]
    return list(record["invalid"] or [])


def touchpoints(driver: Driver, prefix: str) -> int:
    records, _, _ = driver.execute_query("MATCH (t:Touchpoint) WHERE t.event_id STARTS WITH $prefix "
                                         "RETURN count(t) AS n", prefix=prefix)
    return records[0]["n"]


def test_a_flawed_feed_loses_nothing_and_a_replay_brings_it_in_once(servers: tuple[Stub, Stub], driver: Driver) -> None:
    old, new = servers
    tag = uuid.uuid4().hex[:8]
    source = f"feed-{tag}"

    def e(name: str, *identifiers: str, **fields: object) -> pb.Event:
        return event(f"{tag}-{name}", *identifiers, source=source, **fields)

    u = lambda n: f"user_id:{tag}-u{n}"  # noqa: E731
    future = e("future", u(5))
    future.occurred_at.CopyFrom(stamp(T0 + timedelta(days=3650)))
    feed = [
        e("login", u(1), "email:ann@@example", f"anonymousId:{tag}-a1", type="identify"),  # two bad values
        e("anon", f"anonymousId:{tag}-a1"),  # nothing usable until anonymous_id is declared
        e("phone", u(2), "phone:(878) 017 5989"),  # possible length, unassigned
        e("nul", u(3), f"cookie:{tag}\x00c3", type="page\x07_view"),  # control characters
        e("big", u(4), properties={f"p{n}": "1" for n in range(6)}),  # over max_properties 5
        future,  # an impossible time: stays rejected
        e("mail", "email:nobody-at-all"),  # nothing usable, ever
    ]
    acks = {a.event_id.removeprefix(f"{tag}-"): a for a in ingest(old, feed)}
    accepted = {k for k, a in acks.items() if a.status == pb.ACK_STATUS_ACCEPTED}
    assert accepted == {"login", "phone", "nul"}
    assert {w.field for w in acks["login"].warnings} == {"identifiers.email", "identifiers.anonymousId"}
    assert "no such number is assigned" in acks["phone"].warnings[0].reason
    assert {k: a.reason_code for k, a in acks.items() if k not in accepted} == {
        "anon": "no_valid_identifier", "big": "too_large", "future": "bad_timestamp", "mail": "no_valid_identifier"}

    crm = f"crm-{tag}"
    records = [
        pb.SourceRecord(record_id="r1", source=crm, identifiers=[identifier(f"crm_id:{tag}-c1"),
                        identifier("phone:(878) 017 5989"), identifier(f"email:{tag}.r1@example.com")],
                        traits={"first_name": "Rhea", "last_name": "Quist", "date_of_birth": "19151311"}),
        pb.SourceRecord(record_id="r2", source=crm, identifiers=[identifier(f"email:{tag}.r2@example.com"),
                        identifier(f"anonymousId:{tag}-a2")], traits={"first_name": "Olu"}),
        pb.SourceRecord(record_id=" ", source=crm, identifiers=[identifier(f"email:{tag}.r3@example.com")]),
        pb.SourceRecord(record_id="r4", source=crm, identifiers=[identifier(f"crm_id:{tag}-c4")],
                        traits={f"t{n}": "x" for n in range(7)}),  # over max_traits 6
    ]
    (*_, last) = old.ImportRecords(iter(records), timeout=120)
    summary = last.summary
    assert (summary.records, summary.rejected, summary.records_with_warnings) == (4, 2, 2)
    warned = {(w.record_id, w.warning.field) for w in summary.warnings}
    assert {("r1", "identifiers.phone"), ("r1", "traits.date_of_birth"), ("r2", "identifiers.anonymousId")} <= warned

    # every good value is stored and linked; every bad one kept as invalid with its reason
    assert {u(1), "email:ann@@example"} & identifiers_of(profile_of(old, u(1))) == {u(1)}
    assert {f"crm_id:{tag}-c1", f"email:{tag}.r1@example.com", f"record:{crm}/r1"} <= identifiers_of(
        profile_of(old, f"crm_id:{tag}-c1"))
    login_invalid = invalid_of(driver, f"{tag}-login")
    assert any('"ann@@example"' in v and "is not an e-mail address" in v for v in login_invalid)
    assert any('"anonymousId"' in v and "unknown identifier type" in v for v in login_invalid)
    assert any("no such number is assigned" in v for v in invalid_of(driver, f"{tag}-phone"))
    assert any("U+0000" in v and "\x00" not in v for v in invalid_of(driver, f"{tag}-nul"))
    graph = old.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=by_identifier(u(1))), timeout=30)
    assert {(i.identifier.type, i.identifier.value) for i in graph.invalid_values} == {
        ("email", "ann@@example"), ("anonymousId", f"{tag}-a1")}

    # every rejected event and record is in quarantine, with its reason and payload
    kept = rejected(driver, source) | rejected(driver, crm)
    assert {k.removeprefix(f"{tag}-"): v["code"] for k, v in kept.items()} == {
        "anon": "no_valid_identifier", "big": "too_large", "future": "bad_timestamp", "mail": "no_valid_identifier",
        " ": "bad_record", "r4": "too_large"}
    assert all(v["payload"] for v in kept.values())
    listed = list(old.ListRejected(pb.ListRejectedRequest(filter=pb.RejectionFilter(source=source)), timeout=30))
    assert {i.subject_id for i in listed} == {f"{tag}-{k}" for k in ("anon", "big", "future", "mail")}
    by_code = list(old.ListRejected(pb.ListRejectedRequest(filter=pb.RejectionFilter(
        source=source, codes=["too_large"])), timeout=30))
    assert [i.subject_id for i in by_code] == [f"{tag}-big"]

    # a redelivery of a reject is one item with a second attempt
    ingest(old, [e("anon", f"anonymousId:{tag}-a1")])
    assert rejected(driver, source)[f"{tag}-anon"]["attempts"] == 2

    # the operator declares anonymous_id and raises the limits (the new server); replay
    def replay(stub: Stub, where: pb.RejectionFilter) -> pb.ReplaySummary:
        steps = list(stub.ReplayRejected(pb.ReplayRejectedRequest(filter=where), timeout=300))
        assert all(s.HasField("status") for s in steps[:-1])
        return steps[-1].summary

    first = replay(new, pb.RejectionFilter(source=source))
    assert (first.events_replayed, first.events_accepted, first.events_still_rejected) == (4, 2, 2)
    assert dict(first.still_rejected) == {"bad_timestamp": 1, "no_valid_identifier": 1}
    assert first.invalid_values_linked >= 1
    records_replay = replay(new, pb.RejectionFilter(source=crm, kind=pb.REJECTED_KIND_RECORD))
    assert (records_replay.records_replayed, records_replay.records_accepted) == (2, 1)

    # what passes now is in, linked, and out of quarantine; what still fails stays
    assert {f"anonymous_id:{tag}-a1", u(1)} <= identifiers_of(profile_of(new, u(1)))
    assert f"anonymous_id:{tag}-a2" in identifiers_of(profile_of(new, f"email:{tag}.r2@example.com"))
    assert f"crm_id:{tag}-c4" in identifiers_of(profile_of(new, f"record:{crm}/r4"))
    assert not any("anonymousId" in v for v in invalid_of(driver, f"{tag}-login"))
    assert any("ann@@example" in v for v in invalid_of(driver, f"{tag}-login"))
    left = rejected(driver, source) | rejected(driver, crm)
    assert {k.removeprefix(f"{tag}-") for k in left} == {"future", "mail", " "}
    assert left[f"{tag}-future"]["attempts"] == 2
    # exactly once: a second replay accepts nothing, and no touchpoint is doubled
    counted = profile_of(new, u(1)).touchpoints_by_channel["online"]
    before = touchpoints(driver, f"{tag}-")
    again = replay(new, pb.RejectionFilter(source=source))
    assert (again.events_accepted, again.events_duplicate, again.events_still_rejected) == (0, 0, 2)
    assert touchpoints(driver, f"{tag}-") == before
    assert profile_of(new, u(1)).touchpoints_by_channel["online"] == counted == 2


def test_forgotten_people_are_never_kept_in_quarantine(servers: tuple[Stub, Stub], identity: Stub,
                                                       driver: Driver) -> None:
    _, new = servers
    tag = uuid.uuid4().hex[:8]
    source = f"forget-{tag}"
    person, other = f"user_id:{tag}-p", f"user_id:{tag}-q"
    ingest(new, [event(f"{tag}-1", person, source=source), event(f"{tag}-2", other, source=source)])
    untyped = [event(f"{tag}-3", person, f"email:{tag}@example.com", source=source, type=" "),
               event(f"{tag}-4", other, source=source, type=" ")]
    assert {a.reason_code for a in ingest(new, untyped)} == {"no_type"}
    assert set(rejected(driver, source)) == {f"{tag}-3", f"{tag}-4"}

    new.ForgetProfile(pb.ForgetProfileRequest(ref=by_identifier(person)), timeout=30)
    assert set(rejected(driver, source)) == {f"{tag}-4"}  # the forgotten person's reject went with them
    (ack,) = ingest(new, [event(f"{tag}-5", person, source=source, type=" ")])
    assert ack.status == pb.ACK_STATUS_REJECTED
    assert set(rejected(driver, source)) == {f"{tag}-4"}  # and a new one is never kept
