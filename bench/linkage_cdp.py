"""Linkage accuracy on a CDP-shaped world, measured only through the service's own gRPC path.

`python -m bench.linkage_cdp --people 2000,20000,100000` generates, for each size, the world
of bench/cdp_population.py (mostly singletons, households, namesakes, typo'd till signups,
junk) and, on an emptied database of a Neo4j of its own:

1. ingests its events through `Ingest` (--streams parallel streams, dealt by person);
2. imports its CRM records through `ImportRecords` (the first import fits the model);
3. waits until online linkage has drained (`GetLinkageStatus` pending == 0), printing the
   lag meanwhile, and says so if --deadline passed or the queue stopped moving;
4. looks up every identifier of the truth with `LookupProfiles` (a NotFound is a singleton);
5. scores the profiles read back:
   - pairwise precision and recall against the pairs the data can link (every pair of
     identifiers in one profile is a predicted link). Goal: P >= 0.999 (R is shown: the
     large web clusters make it high whatever linkage does);
   - the probabilistic pairs alone: recall of each person's (loyalty_id, CRM record) pair
     that shares no identifier (goal >= 0.99); precision over every (loyalty_id, record) pair
     in one profile that deterministic stitching could not have made;
   - profiles holding the CRM ids (crm_id or CRM record) of two people. Goal: 0;
   - the probabilistic pairs missed: counted by what sets the signup apart from its record (no
     birth date, a mistyped nickname, a typo, a household) and by what ExplainLink says keeps
     them apart (a guard, a score, blocking), with ten of them as text;
   - the import's cost: candidate pairs the model compared per imported record (every CRM
     record carries names, birth date and address, so all are matchable) and in all, and
     import seconds per record.

Which worlds (issue #24: linkage that holds at 100k to 1M people, however densely they live):

- `--people 100000 --per-postcode 100,1000,6000` runs every size at every density (people per
  postcode; 100 by default, as before);
- `--records-only` sends, of the events, only the loyalty signups and their till purchases
  (the CRM records still go through ImportRecords): the web, app and e-mail events of a
  million people would not fit the machine's time;
- `--runs 100000x100,100000x1000,100000x6000,1000000x6000:records` lists the runs one by one,
  `<people>x<per postcode>`, `:records` for a records-only one; it replaces the three options
  above. The issue's four runs are exactly this list.

Each run prints its verdict against the goals (pairwise precision >= 0.999, probabilistic
recall >= 0.99, no profile with two people's CRM ids, online linkage drained). With more than
one size, the import cost per record at the largest size is compared with that at the
smallest (at the same density and the same channels where there is such a run). Goal: at
most 2x.

No linkage code runs here: the figures are what a client of the service sees. The scoring
functions are pure functions over dicts, for tests to reuse.
"""

from __future__ import annotations

import argparse
import math
import re
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import jellyfish
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from bench.cdp_population import NICKNAMES, CdpEvent, CdpWorld, CrmRecord, Ident, generate
from bench.linkage_pipeline import PairwiseQuality, pairwise_quality
from bench.common import bench_neo4j, bench_server, empty_database, log, run_threads, save
from identity.v1 import common_pb2, identity_service_pb2 as pb, identity_service_pb2_grpc

GOALS = {"precision": 0.999, "probabilistic_recall": 0.99, "profiles_with_two_peoples_crm_ids": 0,
         "import_cost_ratio": 2.0}
CRM_TYPES = ("crm_id", "record")

Stub = identity_service_pb2_grpc.IdentityServiceStub


# ---- scoring: pure functions over dicts ------------------------------------------------------

def pairwise(predicted: Mapping[Ident, Hashable], actual: Mapping[Ident, Hashable]) -> PairwiseQuality:
    """Every pair of keys of `actual` in one predicted group is a predicted link, every pair
    in one actual group a true one (the transitive closure counts, as a client sees it)."""
    return pairwise_quality(predicted, actual)


def counts(quality: PairwiseQuality) -> dict[str, float]:
    return {"true_positives": quality.true_positives, "predicted": quality.predicted, "actual": quality.actual,
            "precision": quality.precision, "recall": quality.recall}


def profile_accuracy(predicted: Mapping[Ident, Hashable], person_of: Mapping[Ident, str],
                     linkable_of: Mapping[Ident, Hashable],
                     deterministic_of: Mapping[Ident, Hashable] | None = None) -> dict[str, float]:
    """Precision and recall against the pairs the data can link; beside them, the precision
    counting any pair of one person as right (the two differ only if a profile joins what no
    evidence joins), and the recall of the linkable pairs that stitching alone cannot make:
    web clusters are large, so their pairs dominate the overall recall even of a service
    that links nothing probabilistically."""
    linkable = pairwise(predicted, linkable_of)
    figures = {**counts(linkable), "precision_same_person": pairwise(predicted, person_of).precision}
    if deterministic_of is not None:
        stitched = pairwise(predicted, deterministic_of)
        beyond = linkable.actual - stitched.actual
        found = linkable.true_positives - stitched.true_positives
        figures["recall_beyond_stitching"] = found / beyond if beyond else 1.0
    return figures


@dataclass(frozen=True)
class ProbabilisticCounts:
    """(loyalty_id, record) pairs that only a probabilistic link can have joined.

    found / true is the recall over the people whose signup and CRM record share no
    identifier; predicted_true / predicted is the precision over every such cross pair in one
    profile, wrong ones (a stranger's record) included.
    """

    found: int
    true: int
    predicted_true: int
    predicted: int

    @property
    def precision(self) -> float:
        return self.predicted_true / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.true if self.true else 1.0

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall}


def probabilistic_accuracy(predicted: Mapping[Ident, Hashable], person_of: Mapping[Ident, str],
                           deterministic_of: Mapping[Ident, Hashable],
                           true_pairs: Iterable[tuple[Ident, Ident]]) -> ProbabilisticCounts:
    """Counts cross pairs per profile without listing them: a fused profile of thousands of
    loyalty ids and records would otherwise be millions of pairs."""
    def cross(key: Callable[[Ident], Hashable]) -> int:
        loyalty: Counter[Hashable] = Counter()
        records: Counter[Hashable] = Counter()
        for identifier in person_of:
            if identifier[0] == "loyalty_id":
                loyalty[key(identifier)] += 1
            elif identifier[0] == "record":
                records[key(identifier)] += 1
        return sum(n * records[k] for k, n in loyalty.items())

    in_profile = cross(lambda i: predicted[i])
    in_profile_person = cross(lambda i: (predicted[i], person_of[i]))
    stitched = cross(lambda i: (predicted[i], deterministic_of[i]))  # deterministic clusters lie within a person
    pairs = list(true_pairs)
    return ProbabilisticCounts(found=sum(predicted[a] == predicted[b] for a, b in pairs), true=len(pairs),
                               predicted_true=in_profile_person - stitched, predicted=in_profile - stitched)


def mixed_profiles(predicted: Mapping[Ident, Hashable], person_of: Mapping[Ident, str],
                   types: Sequence[str] | None = None) -> dict[Hashable, set[str]]:
    """Profiles holding identifiers (of `types`, or any) of more than one person, with those people."""
    people: dict[Hashable, set[str]] = defaultdict(set)
    for identifier, person in person_of.items():
        if types is None or identifier[0] in types:
            people[predicted[identifier]].add(person)
    return {profile: owners for profile, owners in people.items() if len(owners) > 1}


def score(predicted: Mapping[Ident, Hashable], world: CdpWorld) -> dict[str, Any]:
    """All the figures of one world from the profiles the service answered."""
    truth = world.truth
    return {
        "profiles": profile_accuracy(predicted, truth.person_of, truth.linkable_of, truth.deterministic_of),
        "probabilistic": probabilistic_accuracy(predicted, truth.person_of, truth.deterministic_of,
                                                truth.probabilistic_pairs).as_dict(),
        "profiles_with_two_peoples_crm_ids": len(mixed_profiles(predicted, truth.person_of, CRM_TYPES)),
        "profiles_mixing_people": len(mixed_profiles(predicted, truth.person_of)),
        "wrong_links": wrong_links(predicted, world),
        "missed": missed_pairs(predicted, world),
    }


def wrong_links(predicted: Mapping[Ident, Hashable], world: CdpWorld, limit: int = 5) -> list[str]:
    """A few loyalty signups put in a profile with another person's CRM record, as text (one
    record per signup: a fused profile would otherwise show one signup five times)."""
    signup = {e.identifiers[0]: e.traits for e in world.events if e.type == "loyalty_signup"}
    records = {r.identifier: r for r in world.records}
    by_profile: dict[Hashable, list[Ident]] = defaultdict(list)
    for identifier in records:
        by_profile[predicted[identifier]].append(identifier)
    found = []
    for loyalty, traits in signup.items():
        for record in by_profile.get(predicted[loyalty], []):
            if world.truth.person_of[record] != world.truth.person_of[loyalty]:
                crm = records[record].traits
                found.append(f"{_line(traits)}  <->  {_line(crm)}")
                break
        if len(found) >= limit:
            break
    return found


def missed_pairs(predicted: Mapping[Ident, Hashable], world: CdpWorld, limit: int = 10) -> dict[str, Any]:
    """The probabilistic pairs left in two profiles: how many of each kind, and a few as text.

    Recall is lost to a few kinds of signup (no birth date, a mistyped nickname, a household
    member at the same address); counting the misses by kind says which one to work on."""
    signup = {e.identifiers[0]: e.traits for e in world.events if e.type == "loyalty_signup"}
    records = {r.identifier: r.traits for r in world.records}
    person = {p.person_id: p for p in world.people}
    missed = missed_list(predicted, world)
    kinds: Counter[str] = Counter()
    combined: Counter[str] = Counter()
    examples = []
    for loyalty, record in missed:
        typed, crm = signup[loyalty], records[record]
        labels = miss_kinds(typed, crm, person[world.truth.person_of[loyalty]].household is not None)
        kinds.update(labels)
        combined[", ".join(labels) or "no visible difference"] += 1
        if len(examples) < limit:
            examples.append(f"{_line(typed)}  <->  {_line(crm)}  [{', '.join(labels)}]")
    return {"count": len(missed), "by_kind": dict(kinds.most_common()),
            "by_combination": dict(combined.most_common()), "examples": examples}


def missed_list(predicted: Mapping[Ident, Hashable], world: CdpWorld) -> list[tuple[Ident, Ident]]:
    """(loyalty id, CRM record) of each probabilistic pair left in two profiles, sorted."""
    return sorted((loyalty, record) for loyalty, record in world.truth.probabilistic_pairs
                  if predicted[loyalty] != predicted[record])


def why_missed(stub: Stub, missed: Sequence[tuple[Ident, Ident]], limit: int = 500,
               budget_s: float = 600.0) -> dict[str, int]:
    """What the service says keeps each missed pair apart (ExplainLink's stopped_by, shortened),
    counted over the first `limit` pairs, or as many as `budget_s` allows (one call is a heavy
    query at 1M): a guard, a score below a threshold, or blocking that never compared them call
    for different fixes, and the traits alone cannot tell them apart. "pairs explained" says
    how many were asked."""
    reasons: Counter[str] = Counter()
    began, explained_pairs = time.monotonic(), 0
    for loyalty, record in missed[:limit]:
        if time.monotonic() - began > budget_s:
            break
        explained = stub.ExplainLink(pb.ExplainLinkRequest(a=_ref(loyalty), b=_ref(record)), timeout=60)
        reasons.update({stop_reason(sentence) for sentence in explained.stopped_by} or {"nothing said"})
        explained_pairs += 1
    return {"pairs explained": explained_pairs, **dict(reasons.most_common())}


def _ref(identifier: Ident) -> common_pb2.ProfileRef:
    kind, value = identifier
    return common_pb2.ProfileRef(identifier=common_pb2.Identifier(type=kind, value=value))


def stop_reason(sentence: str) -> str:
    """An ExplainLink reason without its figures: "a decision guard stops the link (household: ...)"
    -> "guard: household", "the model's score p=0.61 is below upper 0.95: ..." -> "score below upper"."""
    if (guard := re.search(r"decision guard stops the link \(([^:)]+)", sentence)):
        return f"guard: {guard.group(1)}"
    if (band := re.match(r"the model's score \S+ is (below \w+)", sentence)):
        return f"score {band.group(1)}"
    if sentence.startswith("a possible match of "):
        return "a possible match waits for a reviewer"
    if sentence.startswith("merge protection refused linking "):
        return "merge protection refused a link between them"
    return sentence.split(":")[0]


def miss_kinds(typed: Mapping[str, str], crm: Mapping[str, str], in_household: bool) -> list[str]:
    """What sets a till signup apart from its CRM record, in words (the given name as one kind:
    a nickname, a mistyped nickname or a typo)."""
    kinds = []
    birth = typed.get("date_of_birth")
    if birth is None:
        kinds.append("no dob")
    elif birth != crm["date_of_birth"]:
        kinds.append("swapped dob")
    given = _given_name_kind(typed["first_name"], crm["first_name"])
    if given:
        kinds.append(given)
    if typed["last_name"] != crm["last_name"].lower():
        kinds.append("surname typo")
    if typed["address"] != crm["address"].lower():
        kinds.append("address typo")
    if in_household:
        kinds.append("household")
    return kinds


def _given_name_kind(typed: str, formal: str) -> str | None:
    """None when typed as on the CRM record; otherwise a nickname, a nickname with a typo (at
    most two slips from one: the till types one or two), or a typo of the formal name."""
    if typed == formal.lower():
        return None
    nicknames = [n.lower() for n in NICKNAMES.get(formal, ())]
    if typed in nicknames:
        return "nickname"
    if any(jellyfish.damerau_levenshtein_distance(typed, n) <= 2 for n in nicknames) and \
            jellyfish.damerau_levenshtein_distance(typed, formal.lower()) > 2:
        return "mistyped nickname"
    return "given name typo"


def _line(traits: Mapping[str, str]) -> str:
    keys = ("first_name", "last_name", "date_of_birth", "address", "city", "postcode")
    return ", ".join(traits.get(k, "-") for k in keys)


# ---- runs, costs and goals: pure functions too -------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One world to send: how many people, how many of them per postcode, and whether only the
    CRM records and the till's events go (records_only)."""

    people: int
    per_postcode: int = 100
    records_only: bool = False

    @property
    def label(self) -> str:
        """As --runs spells it: 1000000x6000:records."""
        return f"{self.people}x{self.per_postcode}" + (":records" if self.records_only else "")

    def prefix(self, seed: int) -> str:
        """The world's prefix: runs of other sizes, densities or channels never share a value."""
        return f"cdp{self.people}x{self.per_postcode}{'r' if self.records_only else ''}s{seed}"


def parse_run(text: str) -> Run:
    """`100000x6000` or `1000000x6000:records` (a size alone keeps 100 per postcode)."""
    spec, _, mode = text.strip().partition(":")
    if mode not in ("", "records"):
        raise ValueError(f"run {text!r}: after ':' only 'records' is known")
    people, x, density = spec.partition("x")
    try:
        run = Run(int(people), int(density) if x else 100, mode == "records")
    except ValueError:
        raise ValueError(f"run {text!r}: expected <people>x<per postcode>[:records], e.g. 1000000x6000:records") \
            from None
    if run.people < 1 or run.per_postcode < 1:
        raise ValueError(f"run {text!r}: people and people per postcode must be positive")
    return run


def plan_runs(people: str, per_postcode: str, records_only: bool, runs: str | None = None) -> list[Run]:
    """The runs the options ask for: --runs as listed, otherwise every size at every density."""
    if runs:
        return [parse_run(item) for item in runs.split(",") if item.strip()]
    return [parse_run(f"{size.strip()}x{density.strip()}" + (":records" if records_only else ""))
            for size in people.split(",") for density in per_postcode.split(",")]


def import_costs(summary: Mapping[str, Any], import_s: float) -> dict[str, float]:
    """Pairs the import's model compared per imported record, and import seconds per record.
    Every CRM record of the world carries names, birth date and address, so every record
    imported (received less rejected) is matchable."""
    imported = int(summary.get("records", 0)) - int(summary.get("rejected", 0))
    pairs = int(summary.get("pairs_compared", 0))
    return {"records_imported": imported, "pairs_compared": pairs,
            "pairs_per_record": pairs / imported if imported else 0.0,
            "import_s_per_record": import_s / imported if imported else 0.0}


def failed_goals(row: Mapping[str, Any]) -> list[str]:
    """The goals one run missed, in words; empty when it met them all."""
    failed = []
    precision = row["profiles"]["precision"]
    if precision < GOALS["precision"]:
        failed.append(f"pairwise precision {precision:.4f} < {GOALS['precision']}")
    recall = row["probabilistic"]["recall"]
    if recall < GOALS["probabilistic_recall"]:
        failed.append(f"probabilistic recall {recall:.4f} < {GOALS['probabilistic_recall']}")
    mixed = row["profiles_with_two_peoples_crm_ids"]
    if mixed != GOALS["profiles_with_two_peoples_crm_ids"]:
        failed.append(f"{mixed} profiles hold two people's CRM ids")
    wait = row["linkage_wait"]
    if wait["outcome"] != "drained":
        failed.append(f"online linkage {wait['outcome']} with {wait['pending']} pending")
    return failed


@dataclass(frozen=True)
class CostRatio:
    """Import cost per record of a run at the largest size over that of its peer at the smallest."""

    large: str
    small: str
    ratio: float

    @property
    def met(self) -> bool:
        return self.ratio <= GOALS["import_cost_ratio"]


def cost_ratios(rows: Sequence[Mapping[str, Any]]) -> list[CostRatio]:
    """For each run at the largest size, its import cost per record over that of the run at
    the smallest size most like it: same density and channels, else same density, else the
    nearest density. None when all runs have one size."""
    sizes = [r["run"]["people"] for r in rows]
    if len(set(sizes)) < 2:
        return []
    largest, smallest = max(sizes), min(sizes)
    small = [r for r in rows if r["run"]["people"] == smallest]
    ratios = []
    for row in (r for r in rows if r["run"]["people"] == largest):
        peer = min(small, key=lambda other: _unlikeness(other["run"], row["run"]))
        base = peer["costs"]["import_s_per_record"]
        ratio = row["costs"]["import_s_per_record"] / base if base else math.inf
        ratios.append(CostRatio(row["run"]["label"], peer["run"]["label"], ratio))
    return ratios


def _unlikeness(one: Mapping[str, Any], other: Mapping[str, Any]) -> tuple[float, bool]:
    """How far apart two runs' densities are (by factor), then whether their channels differ."""
    return abs(math.log(one["per_postcode"] / other["per_postcode"])), one["records_only"] != other["records_only"]


# ---- the service -------------------------------------------------------------------------------

def send_events(stub: Stub, events: Iterable[CdpEvent], window: int = 1000) -> tuple[Counter[str], list[str]]:
    """Ingests on one stream with at most `window` unacked events; acks by status, and the
    reasons of the first rejections."""
    in_flight = threading.Semaphore(window)

    def requests() -> Iterator[pb.Event]:
        for event in events:
            in_flight.acquire()
            yield event.to_proto()

    statuses: Counter[str] = Counter()
    reasons: list[str] = []
    for ack in stub.Ingest(requests(), timeout=24 * 3600):
        in_flight.release()
        statuses[pb.AckStatus.Name(ack.status)] += 1
        if ack.status == pb.ACK_STATUS_REJECTED and len(reasons) < 10:
            reasons.append(f"{ack.event_id}: {ack.reason}")
    return statuses, reasons


def import_records(stub: Stub, records: Iterable[CrmRecord]) -> pb.ImportSummary:
    summary = None
    for progress in stub.ImportRecords((r.to_proto() for r in records), timeout=24 * 3600):
        if progress.WhichOneof("kind") == "summary":
            summary = progress.summary
    if summary is None:
        raise RuntimeError("ImportRecords ended without a summary")
    return summary


@dataclass(frozen=True)
class Drain:
    """How waiting for online linkage ended: drained, deadline or stalled."""

    outcome: str
    seconds: float
    pending: int
    status: pb.LinkageStatus


def wait_for_linkage(stub: Stub, deadline_s: float, stall_s: float, report_every: float = 30.0,
                     report: Callable[[str], None] = print) -> Drain:
    """Polls GetLinkageStatus until nothing is pending; gives up at the deadline, or when the
    queue has not shrunk for `stall_s` (a model refused leaves the worker waiting for ever)."""
    began = reported = moved = time.monotonic()
    lowest = None
    while True:
        status = stub.GetLinkageStatus(pb.GetLinkageStatusRequest(), timeout=60)
        now = time.monotonic()
        if status.pending == 0:
            return Drain("drained", now - began, 0, status)
        if lowest is None or status.pending < lowest:
            lowest, moved = status.pending, now
        if now - began > deadline_s or now - moved > stall_s:
            return Drain("deadline" if now - began > deadline_s else "stalled", now - began, status.pending, status)
        if now - reported >= report_every:
            reported = now
            model = status.model.version if status.HasField("model") else "none"
            report(f"online linkage: {status.pending} pending, oldest waiting {status.oldest_wait_seconds:.0f} s "
                   f"(model {model})")
        time.sleep(0.5)


def lookup_profiles(stub: Stub, identifiers: Sequence[Ident]) -> dict[Ident, Hashable]:
    """The profile id of each identifier; a NotFound is a profile of its own."""
    requests = (pb.LookupRequest(request_id=str(n), ref=common_pb2.ProfileRef(
        identifier=common_pb2.Identifier(type=kind, value=value))) for n, (kind, value) in enumerate(identifiers))
    found: dict[Ident, Hashable] = {}
    for result in stub.LookupProfiles(requests, timeout=24 * 3600):
        identifier = identifiers[int(result.request_id)]
        found[identifier] = result.profile.profile_id if result.WhichOneof("result") == "profile" \
            else ("not found", *identifier)
    return found


def not_found(predicted: Mapping[Ident, Hashable]) -> int:
    return sum(isinstance(p, tuple) and p[:1] == ("not found",) for p in predicted.values())


def model_figures(status: pb.LinkageStatus) -> dict[str, Any]:
    """The current model as GetLinkageStatus shows it."""
    return as_figures(status.model) if status.HasField("model") else {}


def summary_figures(summary: pb.ImportSummary) -> dict[str, Any]:
    figures = as_figures(summary)
    figures["rejections"] = figures.get("rejections", [])[:10]
    return figures


_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}


def as_figures(message: Message) -> dict[str, Any]:
    """Every field of the message, those added to the proto later included, as plain JSON
    values (MessageToDict writes 64-bit integers as strings)."""
    figures = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return _with_ints(message.DESCRIPTOR, figures)


def _with_ints(descriptor: Descriptor, values: dict[str, Any]) -> dict[str, Any]:
    for item in descriptor.fields:
        if item.name not in values:
            continue
        value = values[item.name]
        is_list = isinstance(value, list)
        if item.message_type is not None and item.message_type.GetOptions().map_entry:
            entry = item.message_type.fields_by_name["value"]
            if entry.type in _INT64:
                values[item.name] = {k: int(v) for k, v in value.items()}
            elif entry.message_type is not None:
                values[item.name] = {k: _with_ints(entry.message_type, v) for k, v in value.items()}
        elif item.message_type is not None and item.message_type.full_name.startswith("identity."):
            values[item.name] = [_with_ints(item.message_type, v) for v in value] if is_list \
                else _with_ints(item.message_type, value)
        elif item.type in _INT64:
            values[item.name] = [int(v) for v in value] if is_list else int(value)
    return values


# ---- the benchmark -----------------------------------------------------------------------------

def parallel(channel: Callable[[], grpc.Channel], work: Callable[[Stub, Any], Any], chunks: Sequence[Any]) -> list[Any]:
    """Runs work(stub, chunk) for every chunk on a thread and a channel of its own."""
    def run(chunk: Any) -> Any:
        with channel() as opened:
            return work(Stub(opened), chunk)

    return run_threads(run, chunks)


@dataclass(frozen=True)
class Explain:
    """How many missed pairs to ask ExplainLink about, and for how long at most."""
    pairs: int = 500
    seconds: float = 600.0


def run_world(server, neo4j, run: Run, seed: int, streams: int, deadline_s: float,
              stall_s: float, explain: Explain = Explain()) -> dict[str, Any]:
    world = generate(run.people, seed=seed, prefix=run.prefix(seed), per_postcode=run.per_postcode,
                     records_only=run.records_only)
    log(f"{run.label}: {world.stats()}")
    empty_database(neo4j)
    began = time.monotonic()
    acks: Counter[str] = Counter()
    reasons: list[str] = []
    for counted, rejected in parallel(server.channel, send_events, world.streams(streams)):
        acks.update(counted)
        reasons += rejected
    ingest_s = time.monotonic() - began
    log(f"ingested {len(world.events)} events in {ingest_s:.0f} s: {dict(acks)}")
    with server.channel() as channel:
        stub = Stub(channel)
        began = time.monotonic()
        summary = import_records(stub, world.records)
        import_s = time.monotonic() - began
        log(f"imported {len(world.records)} records in {import_s:.0f} s: {summary_figures(summary)}")
        drain = wait_for_linkage(stub, deadline_s, stall_s, report=log)
        log(f"online linkage {drain.outcome} after {drain.seconds:.0f} s ({drain.pending} pending)")
    identifiers = list(world.truth.person_of)
    began = time.monotonic()
    predicted: dict[Ident, Hashable] = {}
    for part in parallel(server.channel, lookup_profiles, [identifiers[k::streams] for k in range(streams)]):
        predicted.update(part)
    lookup_s = time.monotonic() - began
    figures = score(predicted, world)
    # printed before the diagnostics below, which at 1M take half an hour (500 ExplainLink calls)
    log(f"{run.label}: profiles {figures['profiles']}, probabilistic {figures['probabilistic']}")
    with server.channel() as channel:
        figures["missed"]["why"] = why_missed(Stub(channel), missed_list(predicted, world),
                                              explain.pairs, explain.seconds)
    model = model_figures(drain.status)
    row = {"run": {**asdict(run), "label": run.label}, "people": run.people, "seed": seed, "world": world.stats(),
           "ingest_s": ingest_s, "events_per_s": len(world.events) / ingest_s if ingest_s else 0.0,
           "acks": dict(acks), "rejections": reasons, "import_s": import_s,
           "records_per_s": len(world.records) / import_s, "summary": summary_figures(summary),
           "costs": import_costs(summary_figures(summary), import_s),
           "linkage_wait": {"outcome": drain.outcome, "seconds": drain.seconds, "pending": drain.pending},
           "model_version": model.get("version", ""), "prior": model.get("prior"), "model": model,
           "lookup_s": lookup_s, "lookups": len(identifiers), "not_found": not_found(predicted), **figures}
    row["failed_goals"] = failed_goals(row)
    return row


def report(rows: Sequence[Mapping[str, Any]]) -> None:
    print(f"{'run':>20} {'ppc':>5} {'events':>7} {'records':>7} {'ingest s':>8} {'import s':>8} {'wait s':>7} "
          f"{'P':>7} {'R':>7} {'prob P':>7} {'prob R':>7} {'2-CRM':>6} {'mixed':>6} {'pairs/rec':>9} "
          f"{'ms/rec':>7} {'prior':>9}  verdict")
    print(f"{'goals':>20} {'':>5} {'':>7} {'':>7} {'':>8} {'':>8} {'':>7} {'>=' + str(GOALS['precision']):>7} "
          f"{'':>7} {'':>7} {'>=' + str(GOALS['probabilistic_recall']):>7} {'0':>6}")
    for r in rows:
        profiles, prob, costs = r["profiles"], r["probabilistic"], r["costs"]
        prior = f"{r['prior']:.3g}" if r.get("prior") is not None else "none"
        wait = f"{r['linkage_wait']['seconds']:.0f}" + ("" if r["linkage_wait"]["outcome"] == "drained" else "!")
        density = r["world"]["people"] / r["world"]["postcodes"]
        print(f"{r['run']['label']:>20} {density:>5.0f} {r['world']['events']:>7} {r['world']['crm_records']:>7} "
              f"{r['ingest_s']:>8.0f} {r['import_s']:>8.0f} {wait:>7} {profiles['precision']:>7.4f} "
              f"{profiles['recall']:>7.4f} {prob['precision']:>7.4f} {prob['recall']:>7.4f} "
              f"{r['profiles_with_two_peoples_crm_ids']:>6} {r['profiles_mixing_people']:>6} "
              f"{costs['pairs_per_record']:>9.2f} {1000 * costs['import_s_per_record']:>7.2f} {prior:>9}  "
              f"{'NOT met' if r['failed_goals'] else 'met'}")
    for r in rows:
        _details(r)
    ratios = cost_ratios(rows)
    if ratios:
        print(f"\nimport cost per record, largest size over smallest (goal <= {GOALS['import_cost_ratio']:g}):")
        cost = {r["run"]["label"]: 1000 * r["costs"]["import_s_per_record"] for r in rows}
        for ratio in ratios:
            print(f"  {ratio.large} {cost[ratio.large]:.2f} ms / {ratio.small} {cost[ratio.small]:.2f} ms "
                  f"= {ratio.ratio:.2f} ({'met' if ratio.met else 'NOT met'})")


def _details(r: Mapping[str, Any]) -> None:
    s, costs = r["summary"], r["costs"]
    verdict = "goals NOT met: " + "; ".join(r["failed_goals"]) if r["failed_goals"] else "goals met"
    print(f"\n{r['run']['label']} ({r['people']} people, {r['world']['postcodes']} postcodes"
          f"{', records only' if r['run']['records_only'] else ''}): {verdict}")
    print(f"  import: {s.get('records')} records, new {s.get('new_profiles')}, deterministic "
          f"{s.get('linked_deterministic')}, probabilistic {s.get('linked_probabilistic')}, possible "
          f"{s.get('possible_matches')}, rejected {s.get('rejected')}; pairs compared {costs['pairs_compared']} "
          f"({costs['pairs_per_record']:.2f} per record), {1000 * costs['import_s_per_record']:.2f} ms per record")
    for refusal in s.get("model_refusals", []):
        print(f"  model refused: {refusal}")
    print(f"  online linkage: {r['linkage_wait']['outcome']} after {r['linkage_wait']['seconds']:.0f} s "
          f"({r['linkage_wait']['pending']} pending); acks {r['acks']}; lookups {r['lookups']} "
          f"({r['not_found']} not found) in {r['lookup_s']:.0f} s")
    p, profiles = r["probabilistic"], r["profiles"]
    print(f"  profiles: {profiles['true_positives']} of {profiles['predicted']} predicted pairs right, "
          f"{profiles['true_positives']} of {profiles['actual']} linkable pairs found; recall of the pairs "
          f"stitching alone cannot make {profiles['recall_beyond_stitching']:.4f}")
    print(f"  probabilistic pairs: found {p['found']} of {p['true']}; {p['predicted_true']} right of "
          f"{p['predicted']} (loyalty, record) pairs that only linkage can have joined")
    for line in r["wrong_links"]:
        print(f"  wrong: {line}")
    missed = r["missed"]
    if missed["count"]:
        kinds = ", ".join(f"{kind} {n}" for kind, n in missed["by_kind"].items())
        print(f"  missed probabilistic pairs: {missed['count']} ({kinds})")
        why = ", ".join(f"{reason} {n}" for reason, n in missed.get("why", {}).items())
        print(f"  what keeps them apart (ExplainLink; a pair may have several reasons): {why}")
        for combination, n in missed["by_combination"].items():
            print(f"    {n:>5}  {combination}")
        for line in missed["examples"]:
            print(f"  missed: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", default="2000,20000,100000", help="comma-separated world sizes")
    parser.add_argument("--per-postcode", default="100",
                        help="comma-separated densities (people per postcode); every size runs at every one")
    parser.add_argument("--records-only", action="store_true",
                        help="send only the CRM records and the loyalty signups with their purchases")
    parser.add_argument("--runs", default=None,
                        help="runs one by one, e.g. 100000x6000,1000000x6000:records (replaces the three above)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1, help="server processes")
    parser.add_argument("--streams", type=int, default=4, help="parallel Ingest and LookupProfiles streams")
    parser.add_argument("--deadline", type=float, default=0.0,
                        help="seconds to wait for online linkage to drain (default 600 + 0.1 per person)")
    parser.add_argument("--stall", type=float, default=600.0,
                        help="give up waiting when the linkage queue has not shrunk for this many seconds")
    parser.add_argument("--explain", type=int, default=500,
                        help="missed pairs to ask ExplainLink why (the first ones, sorted)")
    parser.add_argument("--explain-seconds", type=float, default=600.0,
                        help="stop asking ExplainLink after this many seconds per run")
    args = parser.parse_args()
    try:
        runs = plan_runs(args.people, args.per_postcode, args.records_only, args.runs)
    except ValueError as exc:
        parser.error(str(exc))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-linkage-cdp-") as scratch:
        with bench_neo4j(Path(scratch) / "neo4j") as neo4j, bench_server(neo4j, args.processes) as server:
            for run in runs:
                deadline = args.deadline or 600 + 0.1 * run.people
                rows.append(run_world(server, neo4j, run, args.seed, args.streams, deadline, args.stall,
                                      Explain(args.explain, args.explain_seconds)))
                log(f"{run.label}: profiles {rows[-1]['profiles']}, probabilistic {rows[-1]['probabilistic']}")
    report(rows)
    ratios = [{**asdict(r), "met": r.met} for r in cost_ratios(rows)]
    figures = {"goals": GOALS, "seed": args.seed, "runs": rows, "import_cost_ratios": ratios}
    print(f"figures saved to {save('linkage-cdp', figures)}")


if __name__ == "__main__":
    main()
