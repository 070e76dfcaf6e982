"""Every RPC's bad inputs, through the real service: each is answered with a clear status (or,
where the API says so, an in-stream rejection) whose message names what was wrong, and
nothing the service accepted before is lost.

GetLinkageStatus takes no input, so it has no bad input to refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from identity.v1 import common_pb2, identity_service_pb2 as pb, segment_service_pb2 as seg, segment_service_pb2_grpc
from neo4j import Driver
from support import (T0, by_id, by_identifier, event, identifier, identifiers_of, ingest, lookup, profile_of,
                     remove_segments, stamp)

NO_REF = common_pb2.ProfileRef()


@pytest.fixture(autouse=True)
def segments_of_this_test_removed_after_it(driver: Driver, uid: str) -> Iterator[None]:
    yield
    remove_segments(driver, f"t-{uid}-")


def assert_refused(call: Callable[[], object], code: grpc.StatusCode, *words: str) -> None:
    """The call ends with the code and a message holding the words; a streaming answer is read
    to its end, so a refusal must come before any message."""
    with pytest.raises(grpc.RpcError) as caught:
        answer = call()
        if isinstance(answer, Iterator):
            for message in answer:
                raise AssertionError(f"answered before it refused: {message}")
    error = caught.value
    assert error.code() == code, f"{error.code()}: {error.details()}"
    for word in words:
        assert word in error.details(), f"{word!r} not in {error.details()!r}"


def person(identity, uid: str, name: str, *more: str) -> str:
    """A profile with a cookie and an e-mail (and more identifiers); returns its id."""
    (ack,) = ingest(identity, [event(f"{uid}-{name}", f"cookie:{name}-{uid}", f"email:{name}-{uid}@example.com",
                                     *more, type="identify")])
    assert ack.status == pb.ACK_STATUS_ACCEPTED, ack.reason
    return ack.profile_id


def unchanged(identity, uid: str, name: str, profile_id: str, *more: str) -> None:
    """The person's profile is still there, whole."""
    profile = profile_of(identity, f"cookie:{name}-{uid}")
    assert profile.profile_id == profile_id
    assert identifiers_of(profile) == {f"cookie:{name}-{uid}", f"email:{name}-{uid}@example.com", *more}


# ---- Ingest: an in-stream rejection per bad event, the stream goes on ----------------------

def with_identifiers(uid: str, count: int) -> pb.Event:
    return event(f"{uid}-bad", *(f"cookie:many-{n}-{uid}" for n in range(count)))


def rejected_channel(uid: str) -> pb.Event:
    bad = event(f"{uid}-bad", f"cookie:bad-{uid}")
    bad.channel = 7  # not a Channel
    return bad


def at(seconds: int, nanos: int = 0) -> Callable[[str], pb.Event]:
    def bad(uid: str) -> pb.Event:
        sent = event(f"{uid}-bad", f"cookie:bad-{uid}")
        sent.occurred_at.seconds, sent.occurred_at.nanos = seconds, nanos
        return sent
    return bad


FAR_FUTURE = 32503680000  # 3000-01-01


@pytest.mark.parametrize(("bad", "code", "words"), [
    (lambda uid: event("", f"cookie:bad-{uid}"), "bad_event_id", ("event_id is empty",)),
    (lambda uid: event("   ", f"cookie:bad-{uid}"), "bad_event_id", ("event_id is empty",)),
    (lambda uid: event(f"{uid}-" + "x" * 300, f"cookie:bad-{uid}"), "bad_event_id", ("event_id is longer than 256",)),
    (lambda uid: event(f"{uid}-bad\x00", f"cookie:bad-{uid}"), "bad_event_id", ("control characters",)),
    (lambda uid: with_identifiers(uid, 17), "too_many_identifiers", ("17 identifiers", "at most 16")),
    (lambda uid: event(f"{uid}-bad", f"cookie:bad-{uid}", type=""), "no_type", ("type is empty",)),
    (lambda uid: event(f"{uid}-bad", f"cookie:bad-{uid}", type="  "), "no_type", ("type is empty",)),
    (lambda uid: event(f"{uid}-bad"), "no_valid_identifier", ("no identifiers",)),
    (lambda uid: event(f"{uid}-bad", "shoe_size:42"), "no_valid_identifier", ("unknown identifier type 'shoe_size'",)),
    (lambda uid: event(f"{uid}-bad", "email:not-an-address"), "no_valid_identifier", ("is not an e-mail address",)),
    (rejected_channel, "bad_channel", ("channel '7'",)),
    (lambda uid: event(f"{uid}-bad", "phone:12"), "no_valid_identifier", ("phone '12'",)),
    (at(0, 2_000_000_000), "bad_timestamp", ("occurred_at", "is not a time")),
    (at(253_402_300_800 * 10), "bad_timestamp", ("occurred_at", "is not a time")),
    (at(-10**12), "bad_timestamp", ("occurred_at", "is not a time")),
    (at(FAR_FUTURE), "bad_timestamp", ("occurred_at 3000-01-01", "in the future")),
    (lambda uid: event(f"{uid}-bad", f"cookie:bad-{uid}", properties={f"p{n}": "v" for n in range(101)}),
     "too_large", ("101 properties", "at most 100")),
], ids=["empty-id", "blank-id", "long-id", "control-in-id", "too-many-identifiers", "empty-type", "blank-type",
        "no-identifiers", "unknown-type-only", "malformed-email-only", "unknown-channel", "malformed-phone-only",
        "nanos-beyond-a-second", "after-year-9999", "before-year-1", "far-future", "too-many-properties"])
def test_ingest_rejects_a_bad_event_in_the_stream_and_keeps_the_events_around_it(
        identity, uid: str, bad: Callable[[str], pb.Event], code: str, words: tuple[str, ...]) -> None:
    before, after = event(f"{uid}-before", f"cookie:before-{uid}"), event(f"{uid}-after", f"cookie:after-{uid}")
    sent = bad(uid)
    acks = ingest(identity, [before, sent, after])
    assert [a.event_id for a in acks] == [before.event_id, sent.event_id, after.event_id]
    assert [a.status for a in acks] == [pb.ACK_STATUS_ACCEPTED, pb.ACK_STATUS_REJECTED, pb.ACK_STATUS_ACCEPTED]
    rejected = acks[1]
    assert rejected.reason_code == code and rejected.profile_id == ""
    for word in words:
        assert word in rejected.reason, rejected.reason
    assert profile_of(identity, f"cookie:before-{uid}").profile_id == acks[0].profile_id
    assert profile_of(identity, f"cookie:after-{uid}").profile_id == acks[2].profile_id


def test_the_limits_themselves_are_accepted(identity, uid: str) -> None:
    longest = event(f"{uid}-".ljust(256, "x"), f"cookie:long-{uid}")
    most = event(f"{uid}-most", *(f"cookie:most-{n}-{uid}" for n in range(16)))
    assert [a.status for a in ingest(identity, [longest, most])] == [pb.ACK_STATUS_ACCEPTED] * 2


# ---- ImportRecords: rejections in the summary, the rest imported ---------------------------

def test_import_rejects_bad_records_in_its_summary_and_imports_the_rest(identity, uid: str) -> None:
    source = f"crm-{uid}"
    messages = [
        pb.SourceRecord(record_id="good-1", source=source, identifiers=[identifier(f"email:good1-{uid}@example.com")]),
        pb.SourceRecord(record_id="", source=source, identifiers=[identifier(f"email:a-{uid}@example.com")]),
        pb.SourceRecord(record_id="no-source", source=" ", identifiers=[identifier(f"email:b-{uid}@example.com")]),
        pb.SourceRecord(record_id="ctl\x07", source=source, identifiers=[identifier(f"email:c-{uid}@example.com")]),
        pb.SourceRecord(record_id="many", source=source,
                        identifiers=[identifier(f"cookie:r{n}-{uid}") for n in range(20)]),
        pb.SourceRecord(record_id="good-2", source=source, identifiers=[identifier(f"email:good2-{uid}@example.com")]),
    ]
    progress = list(identity.ImportRecords(iter(messages), timeout=120))
    assert progress[-1].WhichOneof("kind") == "summary"
    summary = progress[-1].summary
    assert (summary.records, summary.rejected) == (6, 4)
    reasons = {r.record_id: r.reason for r in summary.rejections}
    assert "record_id is empty" in reasons[""]
    assert "source is empty" in reasons["no-source"]
    assert "control characters" in reasons["ctl\x07"]
    assert "identifiers" in reasons["many"] and "at most 16" in reasons["many"]
    for n in (1, 2):
        assert profile_of(identity, f"record:{source}/good-{n}").profile_id == \
            profile_of(identity, f"email:good{n}-{uid}@example.com").profile_id


# ---- LookupProfiles: a miss is an in-stream NotFound, the stream goes on -------------------

def test_lookup_answers_each_bad_reference_in_the_stream_and_the_good_ones_around_it(identity, uid: str) -> None:
    profile_id = person(identity, uid, "ann")
    good = by_identifier(f"cookie:ann-{uid}")
    results = lookup(identity, good, NO_REF, by_identifier("shoe_size:42"), by_identifier("email:not-an-address"),
                     by_identifier(f"cookie:nobody-{uid}"), by_id(f"no-such-profile-{uid}"), by_id("  "), good)
    assert [r.request_id for r in results] == [str(n) for n in range(8)]
    kinds = [r.WhichOneof("result") for r in results]
    assert kinds == ["profile"] + ["not_found"] * 6 + ["profile"]
    assert results[0].profile.profile_id == results[-1].profile.profile_id == profile_id
    reasons = [r.not_found.reason for r in results[1:-1]]
    for reason, words in zip(reasons, [("ref is empty",), ("shoe_size",), ("not-an-address",),
                                       (f"cookie:nobody-{uid}",), (f"no-such-profile-{uid}",), ("empty",)]):
        for word in words:
            assert word in reason, reason


# ---- LookupProfile (unary): a miss is a NotFound result, a malformed ref is refused -------

def test_the_unary_lookup_finds_misses_and_refuses_malformed_references(identity, uid: str) -> None:
    profile_id = person(identity, uid, "ann")

    def one(ref: common_pb2.ProfileRef) -> pb.LookupResult:
        return identity.LookupProfile(pb.LookupRequest(request_id="x", ref=ref), timeout=30)

    found = one(by_identifier(f"cookie:ann-{uid}"))
    assert (found.request_id, found.WhichOneof("result"), found.profile.profile_id) == ("x", "profile", profile_id)
    assert one(by_id(profile_id)).profile.profile_id == profile_id
    # answered by the key the handler normalised (the coalescer does not normalise it again)
    assert one(by_identifier(f"email:  ANN-{uid.upper()}@Example.COM ")).profile.profile_id == profile_id
    missed = one(by_identifier(f"cookie:nobody-{uid}"))
    assert missed.WhichOneof("result") == "not_found" and f"cookie:nobody-{uid}" in missed.not_found.reason
    assert one(by_id(f"no-such-profile-{uid}")).WhichOneof("result") == "not_found"
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert_refused(lambda: one(NO_REF), invalid, "ref is empty")
    assert_refused(lambda: one(by_identifier("shoe_size:42")), invalid, "shoe_size")
    assert_refused(lambda: one(by_identifier("email:not-an-address")), invalid, "not-an-address")
    assert_refused(lambda: one(by_id("  ")), invalid, "empty")
    assert one(by_identifier(f"cookie:ann-{uid}")).profile.profile_id == profile_id  # nothing was disturbed


# ---- GetIdentityGraph, TraverseJourney, ExplainLink: references --------------------------

def test_the_identity_graph_of_a_bad_or_unknown_reference_is_refused(identity, uid: str) -> None:
    def graph(ref: common_pb2.ProfileRef) -> Callable[[], object]:
        return lambda: identity.GetIdentityGraph(pb.GetIdentityGraphRequest(ref=ref), timeout=30)

    assert_refused(graph(NO_REF), grpc.StatusCode.INVALID_ARGUMENT, "ref is empty")
    assert_refused(graph(by_identifier("shoe_size:42")), grpc.StatusCode.INVALID_ARGUMENT, "shoe_size")
    assert_refused(graph(by_identifier(f"cookie:nobody-{uid}")), grpc.StatusCode.NOT_FOUND, f"cookie:nobody-{uid}")
    assert_refused(graph(by_id(f"no-such-profile-{uid}")), grpc.StatusCode.NOT_FOUND, f"no-such-profile-{uid}")


def journey(identity, **fields: object) -> Callable[[], object]:
    return lambda: identity.TraverseJourney(pb.TraverseJourneyRequest(**fields), timeout=30)


def test_a_journey_request_with_a_bad_field_is_refused_naming_it(identity, uid: str) -> None:
    person(identity, uid, "ann")
    ann = by_identifier(f"cookie:ann-{uid}")
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert_refused(journey(identity), invalid, "ref is empty")
    assert_refused(journey(identity, ref=ann, limit=-1), invalid, "limit must not be negative")
    assert_refused(journey(identity, ref=ann, since=stamp(T0), until=stamp(T0)), invalid, "since must be before until")
    assert_refused(journey(identity, ref=ann, since=stamp(T0 + timedelta(days=1)), until=stamp(T0)), invalid,
                   "since must be before until")
    assert_refused(journey(identity, ref=ann, channels=[5]), invalid, "channels")
    assert_refused(journey(identity, ref=ann, cursor="not-a-cursor"), invalid, "not-a-cursor", "not a cursor")
    assert_refused(journey(identity, ref=by_identifier(f"cookie:nobody-{uid}")), grpc.StatusCode.NOT_FOUND,
                   f"cookie:nobody-{uid}")
    steps = list(journey(identity, ref=ann)())  # the journey itself is whole
    assert [s.touchpoint.event_id for s in steps] == [f"{uid}-ann"]


def test_an_explanation_needs_two_known_and_different_sides(identity, uid: str) -> None:
    person(identity, uid, "ann")
    ann, nobody = by_identifier(f"cookie:ann-{uid}"), by_identifier(f"cookie:nobody-{uid}")

    def explain(**sides: common_pb2.ProfileRef) -> Callable[[], object]:
        return lambda: identity.ExplainLink(pb.ExplainLinkRequest(**sides), timeout=30)

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert_refused(explain(b=ann), invalid, "a is required")
    assert_refused(explain(a=ann), invalid, "b is required")
    assert_refused(explain(a=ann, b=ann), invalid, "two different")
    assert_refused(explain(a=ann, b=by_identifier("shoe_size:42")), invalid, "shoe_size")
    assert_refused(explain(a=ann, b=nobody), grpc.StatusCode.NOT_FOUND, f"cookie:nobody-{uid}")


# ---- ForgetProfile -------------------------------------------------------------------------

def forget(identity, ref: common_pb2.ProfileRef) -> Callable[[], object]:
    return lambda: identity.ForgetProfile(pb.ForgetProfileRequest(ref=ref), timeout=30)


def test_forgetting_nobody_is_refused_and_forgets_nothing(identity, uid: str) -> None:
    ann = person(identity, uid, "ann")
    assert_refused(forget(identity, NO_REF), grpc.StatusCode.INVALID_ARGUMENT, "ref is empty")
    assert_refused(forget(identity, by_identifier("shoe_size:42")), grpc.StatusCode.INVALID_ARGUMENT, "shoe_size")
    assert_refused(forget(identity, by_identifier(f"cookie:nobody-{uid}")), grpc.StatusCode.NOT_FOUND,
                   f"cookie:nobody-{uid}")
    assert_refused(forget(identity, by_id(f"no-such-profile-{uid}")), grpc.StatusCode.NOT_FOUND,
                   f"no-such-profile-{uid}")
    unchanged(identity, uid, "ann", ann)


@pytest.mark.parametrize("again_by", ["identifier", "profile_id"])
def test_a_second_forget_is_not_found_and_forgets_no_one_else(identity, uid: str, again_by: str) -> None:
    ann, bob = person(identity, uid, "ann"), person(identity, uid, "bob")
    forgotten = forget(identity, by_identifier(f"email:ann-{uid}@example.com"))()
    assert forgotten.profile_id == ann and forgotten.identifiers_forgotten == 2
    again = by_identifier(f"email:ann-{uid}@example.com") if again_by == "identifier" else by_id(ann)
    named = f"email:ann-{uid}@example.com" if again_by == "identifier" else ann
    assert_refused(forget(identity, again), grpc.StatusCode.NOT_FOUND, named)
    unchanged(identity, uid, "bob", bob)


# ---- UnlinkIdentifier -------------------------------------------------------------------------

def test_unlinking_a_missing_identifier_is_refused_and_unlinks_nothing(identity, uid: str) -> None:
    ann = person(identity, uid, "ann")

    def unlink(**fields: object) -> Callable[[], object]:
        return lambda: identity.UnlinkIdentifier(pb.UnlinkIdentifierRequest(**fields), timeout=30)

    assert_refused(unlink(), grpc.StatusCode.INVALID_ARGUMENT, "identifier is required")
    assert_refused(unlink(identifier=identifier("shoe_size:42")), grpc.StatusCode.INVALID_ARGUMENT, "shoe_size")
    assert_refused(unlink(identifier=identifier(f"cookie:nobody-{uid}")), grpc.StatusCode.NOT_FOUND,
                   f"cookie:nobody-{uid}")
    assert_refused(unlink(identifier=identifier(f"cookie:ann-{uid}"), linked_to=identifier(f"cookie:nobody-{uid}")),
                   grpc.StatusCode.NOT_FOUND, "not linked")
    assert_refused(unlink(identifier=identifier(f"cookie:ann-{uid}"), linked_to=identifier("shoe_size:42")),
                   grpc.StatusCode.INVALID_ARGUMENT, "shoe_size")
    unchanged(identity, uid, "ann", ann)


# ---- ReviewMatch --------------------------------------------------------------------------------

def review(identity, confirm: bool = True, **sides: common_pb2.Identifier) -> Callable[[], object]:
    return lambda: identity.ReviewMatch(pb.ReviewMatchRequest(confirm=confirm, **sides), timeout=30)


@pytest.mark.parametrize("confirm", [True, False])
def test_a_review_needs_two_known_and_different_identifiers(identity, uid: str, confirm: bool) -> None:
    ann, bob = person(identity, uid, "ann"), person(identity, uid, "bob")
    a, b = identifier(f"cookie:ann-{uid}"), identifier(f"cookie:bob-{uid}")
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert_refused(review(identity, confirm, b=b), invalid, "a and b are required")
    assert_refused(review(identity, confirm, a=a), invalid, "a and b are required")
    assert_refused(review(identity, confirm, a=a, b=a), invalid, "the same identifier")
    assert_refused(review(identity, confirm, a=identifier(f"email:ann-{uid}@example.com"),
                          b=identifier(f"email:ANN-{uid}@Example.com")), invalid, "the same identifier")
    assert_refused(review(identity, confirm, a=a, b=identifier("shoe_size:42")), invalid, "shoe_size")
    assert_refused(review(identity, confirm, a=a, b=identifier(f"cookie:nobody-{uid}")), grpc.StatusCode.NOT_FOUND,
                   f"cookie:nobody-{uid}")
    unchanged(identity, uid, "ann", ann)
    unchanged(identity, uid, "bob", bob)


def test_a_confirmation_merge_protection_refuses_is_a_failed_precondition_and_merges_nothing(
        identity, uid: str) -> None:
    ann = person(identity, uid, "ann", f"user_id:u-ann-{uid}")
    bob = person(identity, uid, "bob", f"user_id:u-bob-{uid}")  # one user_id per profile: they cannot merge
    assert_refused(review(identity, a=identifier(f"cookie:ann-{uid}"), b=identifier(f"cookie:bob-{uid}")),
                   grpc.StatusCode.FAILED_PRECONDITION, "merge protection", "user_id")
    unchanged(identity, uid, "ann", ann, f"user_id:u-ann-{uid}")
    unchanged(identity, uid, "bob", bob, f"user_id:u-bob-{uid}")


# ---- RefitLinkageModel, RescoreLinks -----------------------------------------------------------

def current_model(identity) -> tuple[str, str]:
    status = identity.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=30)
    return status.model.version, status.last_refused_fit.version


def test_a_refit_on_a_negative_or_too_small_sample_is_refused_and_the_model_stays(identity, uid: str) -> None:
    # two people with person attributes, so that the graph holds records to sample
    acks = ingest(identity, [event(f"{uid}-p{n}", f"loyalty_id:linktest-bad-{uid}-{n}", type="loyalty_signup",
                                   given_name=f"zelda{n}", surname=f"quorn{uid}", date_of_birth="1971-02-03")
                             for n in range(2)])
    assert {a.status for a in acks} == {pb.ACK_STATUS_ACCEPTED}
    before = current_model(identity)
    assert_refused(lambda: identity.RefitLinkageModel(pb.RefitLinkageModelRequest(sample_records=-1), timeout=60),
                   grpc.StatusCode.INVALID_ARGUMENT, "sample_records must not be negative")
    assert_refused(lambda: identity.RefitLinkageModel(pb.RefitLinkageModelRequest(sample_records=1), timeout=600),
                   grpc.StatusCode.FAILED_PRECONDITION, "fitting the linkage model needs at least")
    assert current_model(identity) == before


@pytest.mark.parametrize("page_size", [-1, 10_001])
def test_a_rescore_with_a_bad_page_size_is_refused_before_it_starts(identity, page_size: int) -> None:
    assert_refused(lambda: identity.RescoreLinks(pb.RescoreLinksRequest(page_size=page_size), timeout=60),
                   grpc.StatusCode.INVALID_ARGUMENT, "page_size")


# ---- ListRejected, ReplayRejected ----------------------------------------------------------------

BAD_FILTERS = [
    (pb.RejectionFilter(codes=["no_type", "no_such_code"]), "unknown reason codes no_such_code"),
    (pb.RejectionFilter(since=stamp(T0), until=stamp(T0)), "since must be before until"),
    (pb.RejectionFilter(since=stamp(T0 + timedelta(hours=1)), until=stamp(T0)), "since must be before until"),
    (pb.RejectionFilter(kind=9), "kind 9 is not a RejectedKind"),
]


def quarantined(identity, source: str) -> list[pb.RejectedItem]:
    return list(identity.ListRejected(pb.ListRejectedRequest(filter=pb.RejectionFilter(source=source)), timeout=60))


@pytest.fixture
def one_rejected(identity, uid: str) -> str:
    """A source with one event in quarantine (no type: no replay can fix it); returns the source."""
    source = f"bad-input-{uid}"
    (ack,) = ingest(identity, [event(f"{uid}-untyped", f"cookie:q-{uid}", type="", source=source)])
    assert ack.reason_code == "no_type"
    return source


@pytest.mark.parametrize(("where", "words"), BAD_FILTERS, ids=["unknown-code", "empty-range", "reversed-range", "kind"])
def test_listing_rejections_with_a_bad_filter_is_refused_naming_it(identity, where: pb.RejectionFilter,
                                                                 words: str) -> None:
    assert_refused(lambda: identity.ListRejected(pb.ListRejectedRequest(filter=where), timeout=60),
                   grpc.StatusCode.INVALID_ARGUMENT, words)


def test_listing_rejections_with_a_negative_limit_is_refused(identity, one_rejected: str, uid: str) -> None:
    assert_refused(lambda: identity.ListRejected(pb.ListRejectedRequest(
        filter=pb.RejectionFilter(source=one_rejected), limit=-1), timeout=60),
        grpc.StatusCode.INVALID_ARGUMENT, "limit must not be negative")
    assert [i.subject_id for i in quarantined(identity, one_rejected)] == [f"{uid}-untyped"]


@pytest.mark.parametrize(("where", "words"), BAD_FILTERS, ids=["unknown-code", "empty-range", "reversed-range", "kind"])
def test_a_replay_with_a_bad_filter_is_refused_and_replays_nothing(identity, one_rejected: str,
                                                                  where: pb.RejectionFilter, words: str) -> None:
    before = quarantined(identity, one_rejected)
    assert [i.code for i in before] == ["no_type"]
    mine = pb.RejectionFilter(source=one_rejected)
    mine.MergeFrom(where)
    assert_refused(lambda: identity.ReplayRejected(pb.ReplayRejectedRequest(filter=mine), timeout=60),
                   grpc.StatusCode.INVALID_ARGUMENT, words)
    assert quarantined(identity, one_rejected) == before, "a refused replay touches no quarantined item"


# ---- SegmentService ------------------------------------------------------------------------------

def run_is(uid: str) -> seg.Rule:
    return seg.Rule(trait=seg.TraitCondition(key="run", equals=uid))


def all_of(*rules: seg.Rule) -> seg.Rule:
    return seg.Rule(all=seg.RuleList(rules=rules))


def touchpoints(aggregate: int, comparison: int) -> seg.Rule:
    return seg.Rule(touchpoints=seg.TouchpointCondition(aggregate=aggregate, comparison=comparison, value=1.0))


@pytest.fixture
def kept_segment(segments, identity, uid: str) -> tuple[str, seg.Segment, set[str]]:
    """A stored segment with one member; returns its name, its definition and its members."""
    (ack,) = ingest(identity, [event(f"{uid}-member", f"email:member-{uid}@example.com", run=uid)])
    name = f"t-{uid}-kept"
    stored = segments.UpsertSegment(seg.UpsertSegmentRequest(name=name, rule=run_is(uid), description="v1"),
                                    timeout=120)
    assert stored.member_count == 1
    return name, stored, {ack.profile_id}


def members(segments, name: str) -> set[str]:
    return {m.profile_id for m in segments.ListSegmentMembers(seg.ListSegmentMembersRequest(name=name), timeout=60)}


@pytest.mark.parametrize(("rule", "path"), [
    (all_of(), "rule.all"),
    (all_of(run_is("x"), seg.Rule(any=seg.RuleList())), "rule.all.rules[1].any"),
    (seg.Rule(**{"not": seg.Rule(trait=seg.TraitCondition(key="", equals="x"))}), "rule.not.trait.key"),
    (seg.Rule(), "rule"),
    (all_of(run_is("x"), seg.Rule(identifier=seg.IdentifierCondition(has_type="fax"))), "rule.all.rules[1].identifier"),
    (touchpoints(seg.AGGREGATE_SUM, seg.COMPARISON_GTE), "rule.touchpoints"),
    (touchpoints(seg.AGGREGATE_COUNT, seg.COMPARISON_UNSPECIFIED), "rule.touchpoints"),
    (all_of(run_is("x"), seg.Rule(in_segment="t-nowhere-at-all")), "does not exist"),
])
def test_a_bad_rule_is_refused_naming_the_node_and_the_stored_version_stays(
        segments, kept_segment: tuple[str, seg.Segment, set[str]], rule: seg.Rule, path: str) -> None:
    name, stored, before = kept_segment
    assert_refused(lambda: segments.UpsertSegment(seg.UpsertSegmentRequest(name=name, rule=rule), timeout=120),
                   grpc.StatusCode.INVALID_ARGUMENT, path)
    assert segments.GetSegment(seg.GetSegmentRequest(name=name), timeout=30) == stored
    assert members(segments, name) == before


def test_a_rule_may_not_close_a_cycle_and_the_segments_stay_as_they_were(segments, uid: str) -> None:
    a = segments.UpsertSegment(seg.UpsertSegmentRequest(name=f"t-{uid}-a", rule=run_is(uid)), timeout=120)
    segments.UpsertSegment(seg.UpsertSegmentRequest(name=f"t-{uid}-b", rule=all_of(
        run_is(uid), seg.Rule(in_segment=f"t-{uid}-a"))), timeout=120)
    assert_refused(lambda: segments.UpsertSegment(seg.UpsertSegmentRequest(name=f"t-{uid}-a", rule=all_of(
        run_is(uid), seg.Rule(in_segment=f"t-{uid}-b"))), timeout=120), grpc.StatusCode.INVALID_ARGUMENT, "depends on")
    assert segments.GetSegment(seg.GetSegmentRequest(name=f"t-{uid}-a"), timeout=30) == a


def test_an_upsert_without_a_name_or_a_rule_is_refused(segments, uid: str) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert_refused(lambda: segments.UpsertSegment(seg.UpsertSegmentRequest(name="  ", rule=run_is(uid)), timeout=60),
                   invalid, "name")
    assert_refused(lambda: segments.UpsertSegment(seg.UpsertSegmentRequest(name=f"t-{uid}-norule"), timeout=60),
                   invalid, "rule is missing")
    assert_refused(lambda: segments.GetSegment(seg.GetSegmentRequest(name=f"t-{uid}-norule"), timeout=30),
                   grpc.StatusCode.NOT_FOUND, f"t-{uid}-norule")


def test_a_segment_is_named_to_be_read(segments, uid: str) -> None:
    missing = f"t-{uid}-none"
    assert_refused(lambda: segments.GetSegment(seg.GetSegmentRequest(name=""), timeout=30),
                   grpc.StatusCode.INVALID_ARGUMENT, "name is empty")
    assert_refused(lambda: segments.GetSegment(seg.GetSegmentRequest(name=missing), timeout=30),
                   grpc.StatusCode.NOT_FOUND, missing)
    assert_refused(lambda: segments.ListSegmentMembers(seg.ListSegmentMembersRequest(name=missing), timeout=30),
                   grpc.StatusCode.NOT_FOUND, missing)
    assert_refused(lambda: segments.WatchSegment(seg.WatchSegmentRequest(name=missing), timeout=30),
                   grpc.StatusCode.NOT_FOUND, missing)
    assert_refused(lambda: segments.WatchSegment(seg.WatchSegmentRequest(name=" "), timeout=30),
                   grpc.StatusCode.INVALID_ARGUMENT, "name is empty")


def test_members_with_a_bad_page_size_or_identifier_type_are_refused(
        segments, kept_segment: tuple[str, seg.Segment, set[str]]) -> None:
    name, _, before = kept_segment

    def listed(**fields: object) -> Callable[[], object]:
        return lambda: segments.ListSegmentMembers(seg.ListSegmentMembersRequest(name=name, **fields), timeout=30)

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert_refused(listed(page_size=-1), invalid, "page_size -1")
    assert_refused(listed(page_size=10_001), invalid, "page_size 10001")
    assert_refused(listed(identifier_types=["email", "fax"]), invalid, "fax")
    assert members(segments, name) == before


def test_watching_from_a_negative_position_is_refused(segments, kept_segment: tuple[str, seg.Segment, set[str]]) -> None:
    name, _, _ = kept_segment
    assert_refused(lambda: segments.WatchSegment(seg.WatchSegmentRequest(name=name, after_position=-1), timeout=30),
                   grpc.StatusCode.INVALID_ARGUMENT, "after_position -1 is negative")


# ---- times that are no time, limits of records, positions never given out ----------------

IMPOSSIBLE = Timestamp(seconds=0, nanos=2_000_000_000)  # nanos beyond a second: no time at all


def test_import_rejects_a_record_with_an_impossible_recorded_at_and_imports_the_rest(identity, uid: str) -> None:
    source = f"crm-{uid}"
    messages = [pb.SourceRecord(record_id="good", source=source, identifiers=[identifier(f"cookie:g-{uid}")]),
                pb.SourceRecord(record_id="when", source=source, recorded_at=IMPOSSIBLE,
                                identifiers=[identifier(f"cookie:w-{uid}")])]
    summary = list(identity.ImportRecords(iter(messages), timeout=120))[-1].summary
    assert (summary.records, summary.rejected) == (2, 1)
    assert "recorded_at" in summary.rejections[0].reason
    assert profile_of(identity, f"record:{source}/good")


@pytest.mark.parametrize("field", ["since", "until"])
def test_a_journey_with_an_impossible_bound_is_invalid_argument(identity, uid: str, field: str) -> None:
    ingest(identity, [event(f"{uid}-1", f"cookie:a-{uid}")])
    request = pb.TraverseJourneyRequest(ref=by_identifier(f"cookie:a-{uid}"), **{field: IMPOSSIBLE})
    with pytest.raises(grpc.RpcError) as caught:
        list(identity.TraverseJourney(request, timeout=60))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in caught.value.details()


@pytest.mark.parametrize("rpc", ["ListRejected", "ReplayRejected"])
def test_a_rejection_filter_with_an_impossible_bound_is_invalid_argument(identity, uid: str, rpc: str) -> None:
    where = pb.RejectionFilter(since=IMPOSSIBLE, source=f"nothing-{uid}")
    request = pb.ListRejectedRequest(filter=where) if rpc == "ListRejected" else pb.ReplayRejectedRequest(filter=where)
    with pytest.raises(grpc.RpcError) as caught:
        list(getattr(identity, rpc)(request, timeout=60))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "since" in caught.value.details()


def test_a_record_with_as_many_identifiers_as_the_limit_is_imported(identity, uid: str) -> None:
    record = pb.SourceRecord(record_id="sixteen", source=f"crm-{uid}",
                             identifiers=[identifier(f"cookie:s{n}-{uid}") for n in range(16)])
    summary = list(identity.ImportRecords(iter([record]), timeout=120))[-1].summary
    assert summary.rejected == 0, summary.rejections  # its own record identifier does not count


def test_a_record_with_an_over_long_source_is_rejected_naming_the_source(identity, uid: str) -> None:
    record = pb.SourceRecord(record_id="r1", source=f"crm-{uid}-" + "y" * 300, identifiers=[identifier(f"cookie:l-{uid}")])
    summary = list(identity.ImportRecords(iter([record]), timeout=120))[-1].summary
    assert summary.rejected == 1 and "source" in summary.rejections[0].reason


def test_watching_after_a_position_the_log_never_gave_out_is_refused(channel, identity, driver, uid: str) -> None:
    segments = segment_service_pb2_grpc.SegmentServiceStub(channel)
    name = f"t-{uid}-future"
    segments.UpsertSegment(seg.UpsertSegmentRequest(name=name, rule=seg.Rule(trait=seg.TraitCondition(key="run", equals=uid))), timeout=60)
    try:
        with pytest.raises(grpc.RpcError) as caught:  # else every change up to it is skipped silently
            next(iter(segments.WatchSegment(seg.WatchSegmentRequest(name=name, after_position=10**15), timeout=10)))
        assert caught.value.code() in (grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.INVALID_ARGUMENT)
    finally:
        driver.execute_query("MATCH (s:Segment {name: $name}) OPTIONAL MATCH (s)-[:HAS_VERSION]->(v) DETACH DELETE s, v", name=name)
