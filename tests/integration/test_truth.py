"""People with known truth, traps included: no two people share a profile, no person is split."""

from __future__ import annotations

import threading
from collections import defaultdict

from identity.v1 import common_pb2, identity_service_pb2 as pb

from bench.population import JUNK, generate, iter_protos, split_by_person
from server.graph import Graph
from server.identity.full_recompute import recompute


def lookup_all(identity, identifiers: list[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    requests = [pb.LookupRequest(request_id=str(n), ref=common_pb2.ProfileRef(
        identifier=common_pb2.Identifier(type=t, value=v))) for n, (t, v) in enumerate(identifiers)]
    answers = {}
    for result in identity.LookupProfiles(iter(requests), timeout=120):
        key = identifiers[int(result.request_id)]
        answers[key] = result.profile.profile_id if result.WhichOneof("result") == "profile" else None
    return answers


def test_generated_people_end_in_exactly_their_own_profiles(identity, graph: Graph, uid: str) -> None:
    population = generate(people=300, events=3000, seed=11, prefix=f"t{uid}")
    streams = split_by_person(population.events, 3)
    failures: list[BaseException] = []

    def send(events) -> None:
        try:
            acks = list(identity.Ingest(iter_protos(events), timeout=300))
            assert all(a.status == pb.ACK_STATUS_ACCEPTED for a in acks), {a.reason for a in acks if a.reason}
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(s,)) for s in streams]
    [t.start() for t in threads]
    [t.join(timeout=300) for t in threads]
    assert not failures, failures

    owner = lookup_all(identity, list(population.truth))
    missing = [i for i, p in owner.items() if p is None]
    assert missing == [], f"identifiers without a profile: {missing[:5]}"
    profiles_of_person: dict[str, set[str]] = defaultdict(set)
    people_of_profile: dict[str, set[str]] = defaultdict(set)
    for identifier, person in population.truth.items():
        profiles_of_person[person].add(owner[identifier])
        people_of_profile[owner[identifier]].add(person)
    split = {p: ids for p, ids in profiles_of_person.items() if len(ids) > 1}
    fused = {p: people for p, people in people_of_profile.items() if len(people) > 1}
    assert split == {}, f"{len(split)} people are spread over several profiles"
    assert fused == {}, f"{len(fused)} profiles hold several people"
    assert len(people_of_profile) == len(profiles_of_person) == len(population.people)

    junk = lookup_all(identity, list(JUNK))
    assert set(junk.values()) == {None}, "junk values belong to no profile"
    assert recompute(graph, scope=f"t{uid}").agrees
