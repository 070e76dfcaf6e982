"""Parallel streams that touch the same profiles, and the full recomputation that checks them."""

from __future__ import annotations

import random
import threading

from identity.v1 import identity_service_pb2 as pb
from neo4j import Driver
from support import event, ingest, profile_of

from server.graph import Graph
from server.identity.full_recompute import recompute


def person_identifiers(uid: str, n: int) -> list[str]:
    return [f"user_id:u{n}-{uid}", f"email:p{n}-{uid}@example.com", f"cookie:a{n}-{uid}", f"cookie:b{n}-{uid}",
            f"device_id:d{n}-{uid}"]


def test_parallel_streams_neither_lose_a_merge_nor_duplicate_anything(identity, driver: Driver, graph: Graph,
                                                                      uid: str) -> None:
    people = 12
    rng = random.Random(uid)
    streams: list[list[pb.Event]] = [[] for _ in range(4)]
    for n in range(people):
        ids = person_identifiers(uid, n)
        for k in range(16):  # pairs of one person's identifiers, scattered over all streams
            # the first five chain all five identifiers, so every one is sent (16 random pairs
            # leave one out about once in 60 runs, and the test then looks up what was never sent)
            pair = [ids[k], ids[k + 1]] if k < len(ids) - 1 else rng.sample(ids, 2)
            streams[rng.randrange(4)].append(event(f"{uid}-{n}-{k}", *pair, minute=k))
    failures: list[BaseException] = []

    def send(events: list[pb.Event]) -> None:
        try:
            acks = ingest(identity, events)
            assert all(a.status == pb.ACK_STATUS_ACCEPTED for a in acks), [a.reason for a in acks]
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(s,)) for s in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    profile_ids = set()
    for n in range(people):
        owners = {profile_of(identity, i).profile_id for i in person_identifiers(uid, n)}
        assert len(owners) == 1, f"person {n} is spread over {len(owners)} profiles"
        profile_ids |= owners
    assert len(profile_ids) == people
    records, _, _ = driver.execute_query(
        "MATCH (i:Identifier) WHERE i.value CONTAINS $uid "
        "RETURN count(i) AS identifiers, sum(COUNT { (i)-[:BELONGS_TO]->() }) AS memberships", uid=uid)
    assert records[0]["identifiers"] == records[0]["memberships"] == people * 5
    report = recompute(graph, scope=uid)
    assert report.agrees, report.mismatches


def test_recomputed_components_agree_with_incremental_profiles_after_a_random_ingest(identity, graph: Graph,
                                                                                     uid: str) -> None:
    rng = random.Random(f"random-{uid}")
    pool = [f"cookie:c{n}-{uid}" for n in range(60)] + [f"email:e{n}-{uid}@example.com" for n in range(25)] + \
        [f"user_id:u{n}-{uid}" for n in range(15)] + [f"device_id:d{n}-{uid}" for n in range(10)]
    events = [event(f"{uid}-{k}", *rng.sample(pool, rng.choice([1, 2, 2, 3])), minute=k) for k in range(300)]
    for start in range(0, len(events), 37):  # uneven batches, so merges and splits cross batch borders
        acks = ingest(identity, events[start:start + 37])
        assert all(a.status == pb.ACK_STATUS_ACCEPTED for a in acks)
    report = recompute(graph, scope=uid)
    assert report.agrees, report.mismatches[:5]
    assert report.rounds >= 2, "nothing was linked: the random ingest tested nothing"


def test_recompute_reports_a_profile_that_no_longer_holds_together(identity, driver: Driver, graph: Graph,
                                                                    uid: str) -> None:
    from server.identity.full_recompute import repair
    from server.identity.identity_config import load_rules

    ingest(identity, [event(f"{uid}-1", f"cookie:a-{uid}", f"email:{uid}@example.com")])
    driver.execute_query("MATCH (:Identifier {value: $v})-[l:LINKED]-() DELETE l", v=f"a-{uid}")  # simulate a lost link
    report = recompute(graph, scope=uid)
    assert [m.problem for m in report.mismatches] == ["split"]
    repair(graph, load_rules(), report)
    assert recompute(graph, scope=uid).agrees
    assert profile_of(identity, f"cookie:a-{uid}").profile_id != profile_of(identity, f"email:{uid}@example.com").profile_id


def test_the_recompute_command_reports_agreement(neo4j_settings) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "NEO4J_URI": neo4j_settings.uri, "NEO4J_PASSWORD": neo4j_settings.password}
    done = subprocess.run([sys.executable, "-m", "server.recompute"], cwd=Path(__file__).resolve().parents[2], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "profiles agree with the components" in done.stdout and " identifiers, " in done.stdout
