"""The one operation that commits link decisions: lock, read, plan, write.

Every way identifiers come to share a profile, or stop sharing one, goes through here:
identifiers seen together in events (ingest), values a replay found valid (replay), the
linkage model's matches (linkage), a reviewer's confirmation (review), an operator's unlink,
and a repair after the full recompute. The planner (stitching.Planner) decides with merge
protection; this module reads what it needs under locks, runs it, writes its plan, and splits
the profiles that fell apart. What differs between callers is a parameter of the commit
(LinkCommit), never an edit of the plan afterwards. The caller stores its own evidence (a
match's probability, a review) from the decisions it gets back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.errors import NotFound
from server.graph import Tx, epoch_millis, to_datetime
from server.identity.disjoint_sets import DisjointSets
from server.identity.golden import GoldenRecord, TraitObservation, from_json, observe, to_json, trait_properties
from server.identity.identity_config import IdentityRules
from server.identity.stitching import (
    SHARED,
    IdentifierState,
    LinkDecision,
    Planner,
    ProfileState,
    ProposedLink,
    StitchPlan,
    new_profile_id,
)
from server.identity import consent
from server.identity.values import Identifier, Touchpoint

EVIDENCE_KEPT = 10  # recent event ids an edge keeps as evidence


@dataclass(frozen=True)
class LinkCommit:
    """What one commit decides, and how it records the decisions."""

    cause: str  # ingest, replay, linkage, review: why the profiles changed (segments see it)
    touchpoints: Sequence[Touchpoint] = ()  # their identifiers were seen together
    # Count the touchpoints in their profiles; off for stored ones, counted when first written.
    count_touchpoints: bool = True
    proposals: Sequence[ProposedLink] = ()  # links no event carried: a model's match, a reviewer's
    # Take the identifiers' locks first. Ingest holds them already: it MERGEd the identifiers.
    lock: bool = False
    # Store the decisions as LINKED / REJECTED_LINK edges with their events as evidence; off
    # when the caller stores evidence of its own (a model's probability, a review).
    record_links: bool = True
    # Store only the decisions that touch these (a replay's revived values: the others were
    # stored with their touchpoint, and storing them again would count their evidence twice).
    touching: frozenset[Identifier] | None = None
    # NotFound unless every identifier of a proposal already has a profile.
    require_profiles: bool = False
    # Plan only, reading without locks or writes (ExplainLink, in a read transaction).
    dry_run: bool = False

    def identifiers(self) -> set[Identifier]:
        return {i for t in self.touchpoints for i in t.identifiers} | {i for p in self.proposals for i in (p.a, p.b)}

    def recorded(self, links: Sequence[LinkDecision], rules: IdentityRules) -> list[LinkDecision]:
        """The decisions stored as edges. A refusal because one side is on the blocklist is
        not: the value's flag says it, the touchpoint keeps its junk, and an edge to the junk
        node from every identifier ever seen with it would make every batch that carries it
        wait for the lock on that node."""
        if not self.record_links:
            return []
        return [link for link in links
                if (self.touching is None or link.a in self.touching or link.b in self.touching)
                and (link.accepted or not (rules.is_blocklisted(link.a.type, link.a.value)
                                           or rules.is_blocklisted(link.b.type, link.b.value)))]


@dataclass(frozen=True)
class Committed:
    """What a commit decided: every link decision, and the profiles that split."""

    plan: StitchPlan
    split: bool

    @property
    def decisions(self) -> list[LinkDecision]:
        return self.plan.links


def plan_commit(tx: Tx, rules: IdentityRules, commit: LinkCommit, now: datetime) -> StitchPlan:
    """Locks (if asked), reads and plans, without writing: ExplainLink asks what a commit
    would decide."""
    keys = commit.identifiers()
    if not keys:
        return StitchPlan()
    if commit.dry_run:
        identifiers, unlinked = read_identifiers(tx, rules, keys)
        profile_ids = sorted({s.profile_id for s in identifiers.values() if s.profile_id})
        profiles = read_profiles(tx, rules, profile_ids)
    else:
        if commit.lock:
            tx.run("linkage/lock", keys=[{"type": i.type, "value": i.value} for i in sorted(keys)], now=now)
        identifiers, unlinked, profiles = read_state(tx, rules, keys, now)
    if commit.require_profiles:
        _require_profiles(identifiers, commit.proposals)
    return Planner(rules, identifiers, profiles, unlinked).decide(commit.touchpoints, commit.proposals,
                                                                  commit.count_touchpoints)


def commit_links(tx: Tx, rules: IdentityRules, commit: LinkCommit, now: datetime) -> Committed:
    """Plans, writes the plan, and splits the profiles that identifiers flagged as shared held
    together. Runs inside the caller's transaction."""
    assert not commit.dry_run, "a dry run plans only"
    plan = plan_commit(tx, rules, commit, now)
    if not plan.links and not plan.profiles and not plan.flags:
        return Committed(plan, False)
    write_plan(tx, plan, now, commit.cause, commit.recorded(plan.links, rules))
    return Committed(plan, split_shared(tx, rules, plan, now, commit.cause))


def _require_profiles(identifiers: Mapping[Identifier, IdentifierState], proposals: Sequence[ProposedLink]) -> None:
    for proposal in proposals:
        for identifier in (proposal.a, proposal.b):
            state = identifiers.get(identifier)
            if state is None or state.profile_id is None:
                raise NotFound(f"no profile holds {identifier}")


def split_shared(tx: Tx, rules: IdentityRules, plan: StitchPlan, now: datetime, cause: str) -> bool:
    """Splits the profiles held together by identifiers this plan flagged as shared."""
    shared = [flag for flag in plan.flags if flag.flag == SHARED]
    for flag in shared:
        (record,) = tx.run("stitching/profile_of", type=flag.identifier.type, value=flag.identifier.value)
        split_profile(tx, rules, record["profile_id"], f"{flag.identifier} flagged: {flag.reason}", now, cause)
    return bool(shared)


def unlink(tx: Tx, rules: IdentityRules, identifier: Identifier, other: Identifier | None, reason: str,
           now: datetime) -> list[str]:
    """Turns the identifier's links (or the one to other) into an operator's rejections and
    splits its profile where it falls apart; returns the parts' profile ids, the kept one first."""
    records = tx.run("profiles/unlink", type=identifier.type, value=identifier.value,
                     other_type=other.type if other else None, other_value=other.value if other else None,
                     reason=reason or "no reason given", now=now)
    if not records:
        raise NotFound(f"no profile holds {identifier}")
    if other is not None and records[0]["unlinked"] == 0:
        raise NotFound(f"{identifier} and {other} are not linked")
    return split_profile(tx, rules, records[0]["profile_id"], f"unlinked {identifier}", now)


def split_profile(tx: Tx, rules: IdentityRules, profile_id: str, reason: str, now: datetime,
                  cause: str = "unlink") -> list[str]:
    """Splits a profile into its components; returns the ids of all parts, the kept one first.
    The part with the most identifiers keeps the id; every other part gets a new profile that
    records where it came from."""
    records = tx.run("profiles/component_of", profile_id=profile_id)
    members = {Identifier(r["type"], r["value"]): [Identifier(n["type"], n["value"]) for n in r["links"]]
               for r in records}
    parts = components(members)
    if len(parts) <= 1:
        return [profile_id]
    parts.sort(key=lambda part: (-len(part), min((rules.rank(i.type), i.value) for i in part)))
    new_ids = [new_profile_id() for _ in parts[1:]]
    moves = [{"type": i.type, "value": i.value, "profile_id": pid}
             for pid, part in zip(new_ids, parts[1:]) for i in sorted(part)]
    _write(tx, now, cause, new_profiles=new_ids, assignments=moves)
    tx.run("profiles/record_split", rows=[{"profile_id": pid, "original": profile_id} for pid in new_ids],
           reason=reason, now=now)
    refresh_summaries(tx, rules, [profile_id, *new_ids], now, cause)
    return [profile_id, *new_ids]


def components(members: Mapping[Identifier, Sequence[Identifier]]) -> list[set[Identifier]]:
    """Connected components of the members over their links (links to non-members ignored)."""
    sets: DisjointSets[Identifier] = DisjointSets(members)
    for member, linked in members.items():
        for other in linked:
            if other in members:
                sets.union(member, other)
    return sets.groups()


def refresh_summaries(tx: Tx, rules: IdentityRules, profile_ids: list[str], now: datetime,
                      cause: str = "unlink") -> None:
    """Recomputes golden records, seen range and counts of profiles from their touchpoints."""
    rows = []
    for record in tx.run("profiles/summarize", profile_ids=profile_ids):
        golden: GoldenRecord = {}
        for seen in record["observations"]:
            at = to_datetime(seen["occurred_at"])
            assert at is not None
            rank = rules.source_rank(seen["source"])
            observe(golden, (TraitObservation(k, v, seen["source"], at, rank)
                             for k, v in json.loads(seen["traits"]).items()))
        state = ProfileState(
            profile_id=record["profile_id"],
            golden=golden,
            first_seen=to_datetime(record["first_seen"]),
            last_seen=to_datetime(record["last_seen"]),
            touchpoints={"online": record["online"], "offline": record["offline"]},
        )
        rows.append(summary_row(state))
    _write(tx, now, cause, summaries=rows)


# -- reading and writing the planner's state -------------------------------------------------

def read_state(
    tx: Tx, rules: IdentityRules, keys: set[Identifier], now: datetime
) -> tuple[dict[Identifier, IdentifierState], set[frozenset[Identifier]], dict[str, ProfileState]]:
    """In one round trip: the identifiers' states, the pairs among them that an operator
    unlinked, and their profiles' states, the profiles locked."""
    (record,) = tx.run("stitching/read_state", keys=_key_rows(keys), now=now,
                       limited_types=sorted(rules.per_profile_limits), **_neighbour_params(rules))
    states, unlinked = _identifier_states(record["identifiers"])
    return states, unlinked, {p["profile_id"]: profile_state(p) for p in record["profiles"]}


def read_identifiers(
    tx: Tx, rules: IdentityRules, keys: set[Identifier]
) -> tuple[dict[Identifier, IdentifierState], set[frozenset[Identifier]]]:
    """The identifiers' states, and the pairs among them that an operator unlinked (without
    locking their profiles: read_state does both for a commit)."""
    return _identifier_states(tx.run("stitching/read_identifiers", keys=_key_rows(keys), **_neighbour_params(rules)))


def _key_rows(keys: set[Identifier]) -> list[dict[str, str]]:
    return [{"type": i.type, "value": i.value} for i in sorted(keys)]


def _neighbour_params(rules: IdentityRules) -> dict[str, Any]:
    strong = sorted(t for t in rules.identifier_types if rules.is_strong(t))
    return {"strong_types": strong, "cap": len(strong) * rules.shared_after + 1}


def _identifier_states(
    records: Sequence[Mapping[str, Any]]
) -> tuple[dict[Identifier, IdentifierState], set[frozenset[Identifier]]]:
    states = {}
    unlinked: set[frozenset[Identifier]] = set()
    for r in records:
        identifier = Identifier(r["type"], r["value"])
        neighbours = frozenset(Identifier(n["type"], n["value"]) for n in r["neighbours"])
        states[identifier] = IdentifierState(identifier, r["profile_id"], r["flag"], neighbours)
        unlinked.update(frozenset((identifier, Identifier(o["type"], o["value"]))) for o in r["unlinked"])
    return states, unlinked


def read_profiles(tx: Tx, rules: IdentityRules, profile_ids: list[str]) -> dict[str, ProfileState]:
    """The profiles' merge-protection and summary state as read_state gives it, read without
    locking or touching anything (ExplainLink plans in a read transaction)."""
    if not profile_ids:
        return {}
    records = tx.run("linkage/explain_profiles", profile_ids=profile_ids, limited_types=sorted(rules.per_profile_limits))
    return {r["profile_id"]: profile_state(r) for r in records}


def profile_state(record: Mapping[str, Any]) -> ProfileState:
    limited: dict[str, set[str]] = {}
    for item in record["limited"]:
        limited.setdefault(item["type"], set()).add(item["value"])
    return ProfileState(
        profile_id=str(record["profile_id"]),
        size=int(record["size"]),
        limited=limited,
        golden=from_json(record["golden"]),
        first_seen=to_datetime(record["first_seen"]),
        last_seen=to_datetime(record["last_seen"]),
        touchpoints={"online": int(record["touchpoints_online"]),
                     "offline": int(record["touchpoints_offline"])},
    )


def write_plan(tx: Tx, plan: StitchPlan, now: datetime, cause: str, links: Sequence[LinkDecision]) -> None:
    """Writes the plan in one round trip. `links` are the decisions to store as evidence edges
    (those the commit records). Profiles about to merge first bring their consent up to date,
    so that the merge can tell whether they disagree (consent.refresh)."""
    if plan.merges:
        consent.refresh(tx, sorted({m.survivor for m in plan.merges} | {m.absorbed for m in plan.merges}))
    _write(
        tx, now, cause,
        new_profiles=plan.new_profiles,
        assignments=[{"type": i.type, "value": i.value, "profile_id": p} for i, p in sorted(plan.assignments.items())],
        merges=[{"absorbed": m.absorbed, "survivor": m.survivor, "event_id": m.link.event_id,
                 **pair_row(m.link.a, m.link.b)} for m in plan.merges],
        links=[_link_row(link) for link in links if link.accepted],
        rejections=[{**_link_row(link), "reason": link.reason} for link in links if not link.accepted],
        flags=[{"type": f.identifier.type, "value": f.identifier.value, "flag": f.flag, "reason": f.reason}
               for f in plan.flags],
        summaries=[summary_row(p) for p in plan.profiles.values()],
    )


def _write(tx: Tx, now: datetime, cause: str, *, new_profiles: Sequence[str] = (),
           assignments: Sequence[Mapping[str, Any]] = (), merges: Sequence[Mapping[str, Any]] = (),
           links: Sequence[Mapping[str, Any]] = (), rejections: Sequence[Mapping[str, Any]] = (),
           flags: Sequence[Mapping[str, Any]] = (), summaries: Sequence[Mapping[str, Any]] = ()) -> None:
    """The one writer of profiles, memberships, merges, link evidence, flags and summaries
    (stitching/write_plan), in the order that keeps every step valid."""
    tx.run("stitching/write_plan", now=now, cause=cause, evidence_kept=EVIDENCE_KEPT, plan={
        "new_profiles": list(new_profiles), "assignments": list(assignments), "merges": list(merges),
        "links": list(links), "rejections": list(rejections), "flags": list(flags), "summaries": list(summaries)})


def summary_row(profile: ProfileState) -> dict[str, object]:
    return {
        "profile_id": profile.profile_id,
        "golden": to_json(profile.golden),
        "traits": trait_properties(profile.golden),
        "first_seen": epoch_millis(profile.first_seen),
        "last_seen": epoch_millis(profile.last_seen),
        "touchpoints_online": profile.touchpoints.get("online", 0),
        "touchpoints_offline": profile.touchpoints.get("offline", 0),
    }


def pair_row(a: Identifier, b: Identifier) -> dict[str, str]:
    """An unordered pair as the queries take it: a and b in their sort order."""
    a, b = sorted((a, b))
    return {"a_type": a.type, "a_value": a.value, "b_type": b.type, "b_value": b.value}


def _link_row(link: LinkDecision) -> dict[str, object]:
    return {**pair_row(link.a, link.b), "event_id": link.event_id, "occurred_at": epoch_millis(link.occurred_at)}
