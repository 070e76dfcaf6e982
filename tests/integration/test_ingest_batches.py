"""IngestBatches: the same events, checks and acks as Ingest, one message per batch each way,
through the real server and Neo4j."""

from __future__ import annotations

import grpc
import pytest
from identity.v1 import identity_service_pb2 as pb
from support import by_identifier, event, ingest, lookup, profile_of

from server.api.identity_servicer import MAX_EVENT_BATCH


def batches(identity, *groups: list[pb.Event]) -> list[pb.IngestAckBatch]:
    return list(identity.IngestBatches(iter([pb.EventBatch(events=group) for group in groups]), timeout=120))


def test_a_batch_is_acked_event_for_event_in_its_order(identity, uid: str) -> None:
    ingest(identity, [event(f"{uid}-old", f"cookie:c-{uid}")])  # known already: a DUPLICATE when sent again
    group = [event(f"{uid}-1", f"cookie:c-{uid}", f"email:{uid}@example.com", type="login"),
             event(f"{uid}-bad", f"cookie:c-{uid}", type=""),  # no type: rejected, the batch goes on
             event(f"{uid}-old", f"cookie:c-{uid}"),
             event(f"{uid}-2", f"email:{uid}@example.com", minute=5),
             event(f"{uid}-2", f"email:{uid}@example.com", minute=5)]  # twice in one batch
    (answer,) = batches(identity, group)
    assert [a.event_id for a in answer.acks] == [e.event_id for e in group]
    assert [a.status for a in answer.acks] == [pb.ACK_STATUS_ACCEPTED, pb.ACK_STATUS_REJECTED, pb.ACK_STATUS_DUPLICATE,
                                               pb.ACK_STATUS_ACCEPTED, pb.ACK_STATUS_DUPLICATE]
    assert "type" in answer.acks[1].reason
    profile = profile_of(identity, f"email:{uid}@example.com")
    assert {a.profile_id for a in answer.acks if a.status != pb.ACK_STATUS_REJECTED} == {profile.profile_id}
    assert profile.touchpoints_by_channel["online"] == 3  # old, 1 and 2: nothing twice, nothing rejected


def test_a_batch_larger_than_a_transaction_is_written_whole_and_acked_in_order(identity, uid: str) -> None:
    group = [event(f"{uid}-{n}", f"cookie:c-{uid}-{n % 300}", minute=n % 60) for n in range(1_200)]
    first, empty, second = batches(identity, group[:1_100], [], group[1_100:])
    assert [a.event_id for a in first.acks] == [e.event_id for e in group[:1_100]]
    assert list(empty.acks) == []
    assert {a.status for a in [*first.acks, *second.acks]} == {pb.ACK_STATUS_ACCEPTED}
    found = lookup(identity, *[by_identifier(f"cookie:c-{uid}-{n}") for n in range(300)])
    assert all(r.WhichOneof("result") == "profile" for r in found)
    assert sum(r.profile.touchpoints_by_channel["online"] for r in found) == 1_200


def test_an_oversized_batch_is_refused_and_the_batches_before_it_stay(identity, uid: str) -> None:
    oversized = [event(f"{uid}-big-{n}", f"cookie:big-{uid}") for n in range(MAX_EVENT_BATCH + 1)]
    answers = identity.IngestBatches(iter([pb.EventBatch(events=[event(f"{uid}-ok", f"cookie:ok-{uid}")]),
                                           pb.EventBatch(events=oversized)]), timeout=120)
    first = next(answers)
    assert [a.status for a in first.acks] == [pb.ACK_STATUS_ACCEPTED]
    with pytest.raises(grpc.RpcError) as refused:
        next(answers)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{MAX_EVENT_BATCH + 1} events" in (refused.value.details() or "")
    (ok, big) = lookup(identity, by_identifier(f"cookie:ok-{uid}"), by_identifier(f"cookie:big-{uid}"))
    assert ok.WhichOneof("result") == "profile" and big.WhichOneof("result") == "not_found"
