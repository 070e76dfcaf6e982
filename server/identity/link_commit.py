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

    def recorded(self, links: Sequence[LinkDecision]) -> list[LinkDecision]:
        if not self.record_links:
            return []
        return [link for link in links if self.touching is None or link.a in self.touching or link.b in self.touching]


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
    if commit.lock and not commit.dry_run:
        tx.run("linkage/lock", keys=[{"type": i.type, "value": i.value} for i in sorted(keys)], now=now)
    identifiers, unlinked = read_identifiers(tx, rules, keys)
    if commit.require_profiles:
        _require_profiles(identifiers, commit.proposals)
    profile_ids = sorted({s.profile_id for s in identifiers.values() if s.profile_id})
    profiles = read_profiles(tx, rules, profile_ids, now, lock=not commit.dry_run)
    return Planner(rules, identifiers, profiles, unlinked).decide(commit.touchpoints, commit.proposals,
                                                                  commit.count_touchpoints)


def commit_links(tx: Tx, rules: IdentityRules, commit: LinkCommit, now: datetime) -> Committed:
    """Plans, writes the plan, and splits the profiles that identifiers flagged as shared held
    together. Runs inside the caller's transaction."""
    assert not commit.dry_run, "a dry run plans only"
    plan = plan_commit(tx, rules, commit, now)
    if not plan.links and not plan.profiles and not plan.flags:
        return Committed(plan, False)
    write_plan(tx, plan, now, commit.cause, commit.recorded(plan.links))
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
    tx.run("profiles/create", profile_ids=new_ids, now=now)
    moves = [{"type": i.type, "value": i.value, "profile_id": pid}
             for pid, part in zip(new_ids, parts[1:]) for i in sorted(part)]
    tx.run("profiles/assign", rows=moves)
    tx.run("profiles/record_split", rows=[{"profile_id": pid, "original": profile_id} for pid in new_ids],
           reason=reason, now=now)
    refresh_summaries(tx, rules, [profile_id, *new_ids], cause)
    return [profile_id, *new_ids]


def components(members: Mapping[Identifier, Sequence[Identifier]]) -> list[set[Identifier]]:
    """Connected components of the members over their links (links to non-members ignored)."""
    sets: DisjointSets[Identifier] = DisjointSets(members)
    for member, linked in members.items():
        for other in linked:
            if other in members:
                sets.union(member, other)
    return sets.groups()


def refresh_summaries(tx: Tx, rules: IdentityRules, profile_ids: list[str], cause: str = "unlink") -> None:
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
    tx.run("profiles/update_summary", cause=cause, rows=rows)


# -- reading and writing the planner's state -------------------------------------------------

def read_identifiers(
    tx: Tx, rules: IdentityRules, keys: set[Identifier]
) -> tuple[dict[Identifier, IdentifierState], set[frozenset[Identifier]]]:
    """The identifiers' states, and the pairs among them that an operator unlinked."""
    strong = sorted(t for t in rules.identifier_types if rules.is_strong(t))
    cap = len(strong) * rules.shared_after + 1
    rows = [{"type": i.type, "value": i.value} for i in sorted(keys)]
    states = {}
    unlinked: set[frozenset[Identifier]] = set()
    for r in tx.run("stitching/read_identifiers", keys=rows, strong_types=strong, cap=cap):
        identifier = Identifier(r["type"], r["value"])
        neighbours = frozenset(Identifier(n["type"], n["value"]) for n in r["neighbours"])
        states[identifier] = IdentifierState(identifier, r["profile_id"], r["flag"], neighbours)
        unlinked.update(frozenset((identifier, Identifier(o["type"], o["value"]))) for o in r["unlinked"])
    return states, unlinked


def read_profiles(tx: Tx, rules: IdentityRules, profile_ids: list[str], now: datetime,
                  lock: bool = True) -> dict[str, ProfileState]:
    """The profiles' merge-protection and summary state; locked (the profiles touched) unless
    lock is off (ExplainLink reads the same state without writing)."""
    if not profile_ids:
        return {}
    if lock:
        records = tx.run("stitching/read_profiles", profile_ids=profile_ids,
                         limited_types=sorted(rules.per_profile_limits), now=now)
    else:
        records = tx.run("linkage/explain_profiles", profile_ids=profile_ids,
                         limited_types=sorted(rules.per_profile_limits))
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
    """Writes in an order that keeps every step valid: profiles exist before anything points to
    them. `links` are the decisions to store as evidence edges (those the commit records)."""
    if plan.new_profiles:
        tx.run("profiles/create", profile_ids=plan.new_profiles, now=now)
    if plan.assignments:
        tx.run("profiles/assign", rows=[{"type": i.type, "value": i.value, "profile_id": p}
                                        for i, p in sorted(plan.assignments.items())])
    if plan.merges:
        tx.run("profiles/merge", now=now, rows=[
            {"absorbed": m.absorbed, "survivor": m.survivor, "event_id": m.link.event_id,
             **pair_row(m.link.a, m.link.b)} for m in plan.merges])
    accepted = [_link_row(link) for link in links if link.accepted]
    rejected = [{**_link_row(link), "reason": link.reason} for link in links if not link.accepted]
    if accepted:
        tx.run("stitching/record_links", rows=accepted, evidence_kept=EVIDENCE_KEPT)
    if rejected:
        tx.run("stitching/record_rejections", rows=rejected, evidence_kept=EVIDENCE_KEPT)
    if plan.flags:
        tx.run("stitching/flag_identifiers", now=now, rows=[
            {"type": f.identifier.type, "value": f.identifier.value, "flag": f.flag, "reason": f.reason}
            for f in plan.flags])
    tx.run("profiles/update_summary", cause=cause, rows=[summary_row(p) for p in plan.profiles.values()])


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
