"""Deterministic stitching with merge protection: which identifiers link, which profiles merge.

The planner is a pure function of what the transaction read from Neo4j (identifiers, their
profiles, flags and co-occurrences) and the touchpoints or proposed links to decide. It
decides; link_commit, the one write path, reads for it under locks and writes its plan. Keeping it pure makes every rule testable without a
database and keeps the transaction retry-safe: each attempt plans afresh from what it read.

Rules, in the order they apply to each event:
1. A blocklisted value (junk typed at tills and in forms) is flagged and links nothing.
2. A value seen with more than `shared_after` distinct identifiers of one strong type (a
   family tablet, a shop's phone) is flagged as shared and links no more; the profile it
   belonged to is split along its remaining links (see link_commit.split_profile).
3. A link between identifiers of different profiles merges them, unless the merged profile
   would hold more identifiers of a type than `per_profile_limits` allows: then the link is
   kept as a rejected edge with the reason, and the profiles stay apart (the contested,
   lower-priority identifier stays where it was).
4. A pair that an operator unlinked stays unlinked.
5. The smaller profile is merged into the larger; on a tie, into the older (existing before
   this batch), then into the lower id, so that every server decides the same way. A profile
   made for a new identifier and merged away in the same batch is never written.
The touchpoint belongs to the profile of its highest-priority identifier that is not
blocklisted.
"""

from __future__ import annotations

import hmac
import itertools
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from server.identity.disjoint_sets import DisjointSets
from server.identity.golden import GoldenRecord, TraitObservation, merged, observe
from server.identity.values import Identifier, Touchpoint
from server.identity.identity_config import IdentityRules

BLOCKLISTED = "blocklisted"
SHARED = "shared"


@dataclass(frozen=True)
class IdentifierState:
    """An identifier as the graph knows it before the batch."""

    identifier: Identifier
    profile_id: str | None = None
    flag: str | None = None
    # Distinct strong identifiers already seen with this one (capped when read).
    strong_neighbours: frozenset[Identifier] = frozenset()


@dataclass
class ProfileState:
    """A profile as the batch sees it: what merge protection and the golden record need."""

    profile_id: str
    size: int = 0
    limited: dict[str, set[str]] = field(default_factory=dict)
    golden: GoldenRecord = field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    touchpoints: dict[str, int] = field(default_factory=dict)
    is_new: bool = False

    def absorb(self, other: ProfileState) -> None:
        self.size += other.size
        for kind, values in other.limited.items():
            self.limited.setdefault(kind, set()).update(values)
        self.golden = merged(self.golden, other.golden)
        self.first_seen = _earliest(self.first_seen, other.first_seen)
        self.last_seen = _latest(self.last_seen, other.last_seen)
        for channel, count in other.touchpoints.items():
            self.touchpoints[channel] = self.touchpoints.get(channel, 0) + count


@dataclass(frozen=True)
class LinkDecision:
    """Whether two identifiers seen together are linked, and the evidence either way."""

    a: Identifier
    b: Identifier
    accepted: bool
    reason: str
    event_id: str
    occurred_at: datetime


@dataclass(frozen=True)
class ProposedLink:
    """A link between two known identifiers that no event carried together: a match of the
    linkage model, or a reviewer's confirmation. It goes through the same merge protection."""

    a: Identifier
    b: Identifier
    evidence_id: str  # names what proposed it, e.g. "model:v3" or "review"
    reason: str
    at: datetime


@dataclass(frozen=True)
class Merge:
    absorbed: str
    survivor: str
    link: LinkDecision


@dataclass(frozen=True)
class Flag:
    identifier: Identifier
    flag: str
    reason: str


@dataclass
class StitchPlan:
    """Everything the ingest transaction writes for one batch."""

    links: list[LinkDecision] = field(default_factory=list)
    new_profiles: list[str] = field(default_factory=list)
    assignments: dict[Identifier, str] = field(default_factory=dict)
    merges: list[Merge] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    primaries: dict[str, Identifier] = field(default_factory=dict)
    touchpoint_profiles: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, ProfileState] = field(default_factory=dict)


def new_profile_id() -> str:
    return uuid.uuid4().hex


def suppression_hash(salt: str, identifier: Identifier) -> str:
    """A salted hash that lets ingest recognise a forgotten identifier without keeping it."""
    return hmac.new(salt.encode(), str(identifier).encode(), "sha256").hexdigest()


class Planner:
    """Plans one batch; see the module docstring for the rules."""

    def __init__(
        self,
        rules: IdentityRules,
        identifiers: Mapping[Identifier, IdentifierState],
        profiles: Mapping[str, ProfileState],
        unlinked_pairs: Iterable[frozenset[Identifier]] = (),
        make_id: Callable[[], str] = new_profile_id,
    ) -> None:
        self.rules = rules
        self.profile_of: dict[Identifier, str | None] = {i: s.profile_id for i, s in identifiers.items()}
        self.flag_of: dict[Identifier, str | None] = {i: s.flag for i, s in identifiers.items()}
        self.neighbours: dict[Identifier, set[Identifier]] = {i: set(s.strong_neighbours) for i, s in identifiers.items()}
        self.profiles: dict[str, ProfileState] = dict(profiles)
        self.merged: DisjointSets[str] = DisjointSets()
        self.unlinked = set(unlinked_pairs)
        self.make_id = make_id
        self.plan = StitchPlan()
        self.born: list[str] = []  # profiles made in this batch, in order
        self.admitted: dict[Identifier, str] = {}  # identifiers without a profile, and the one each got
        self.absorptions: list[Merge] = []  # every merge, in order, those of profiles born here too
        self.blocklisted: dict[Identifier, bool] = {}  # the rules' answer, once per identifier
        # asked for every pair of every event: plain containers, not the rules' read-only mappings
        self.strong = rules.strong_types()
        self.limits = tuple(rules.per_profile_limits.items())
        self.limits_by_type = dict(self.limits)

    def find(self, profile_id: str) -> str:
        """The profile a profile id belongs to now, after this plan's merges."""
        return self.merged.find(profile_id)

    def current_profile(self, identifier: Identifier) -> str | None:
        profile_id = self.profile_of.get(identifier)
        return self.find(profile_id) if profile_id else None

    # -- planning --------------------------------------------------------------------------------

    def decide(self, touchpoints: Sequence[Touchpoint] = (), proposals: Sequence[ProposedLink] = (),
             count_touchpoints: bool = True) -> StitchPlan:
        """Decides the links of identifiers seen together in touchpoints, then the proposed
        links between known identifiers (a model's match, a reviewer's confirmation); counts
        the touchpoints in their profiles unless they were counted when first stored."""
        for touchpoint in touchpoints:
            self._plan_event(touchpoint)
        if count_touchpoints:
            for touchpoint in touchpoints:
                self._attribute(touchpoint)
        for proposal in proposals:
            a, b = sorted((proposal.a, proposal.b), key=lambda i: (self.rules.rank(i.type), i.value))
            self.plan.links.append(self._decide_pair(a, b, proposal.evidence_id, proposal.at, proposal.reason))
        self._settle()
        self.plan.profiles = {pid: self.profiles[pid] for pid in self._live_profiles()}
        return self.plan

    def plan_batch(self, touchpoints: Sequence[Touchpoint]) -> StitchPlan:
        return self.decide(touchpoints=touchpoints)

    def plan_links(self, proposals: Sequence[ProposedLink]) -> StitchPlan:
        """Decides proposed links between identifiers that have profiles already."""
        return self.decide(proposals=proposals)

    def _plan_event(self, touchpoint: Touchpoint) -> None:
        ordered = sorted(touchpoint.identifiers, key=lambda i: (self.rules.rank(i.type), i.value))
        junk = [i for i in ordered if self._is_blocklisted(i)]
        for identifier in ordered:
            self._admit(identifier)
        self._detect_shared(ordered)
        for a, b in itertools.combinations(ordered, 2):
            self.plan.links.append(self._decide(a, b, touchpoint))
        primary = primary_identifier(self.rules, touchpoint, junk)
        if primary is not None:
            self.plan.primaries[touchpoint.event_id] = primary

    def _is_blocklisted(self, identifier: Identifier) -> bool:
        known = self.blocklisted.get(identifier)
        if known is None:
            known = self.blocklisted[identifier] = self.rules.is_blocklisted(identifier.type, identifier.value)
        return known

    def _admit(self, identifier: Identifier) -> None:
        """Flags a blocklisted value; gives an identifier without a profile a new one."""
        self.neighbours.setdefault(identifier, set())
        if self.flag_of.get(identifier) is None and self._is_blocklisted(identifier):
            self._flag(identifier, BLOCKLISTED, f"{identifier} is on the blocklist of junk values")
        if self.flag_of.get(identifier) == BLOCKLISTED or self.profile_of.get(identifier):
            return
        profile = ProfileState(self.make_id(), is_new=True)
        self.profiles[profile.profile_id] = profile
        self.born.append(profile.profile_id)
        self._assign(identifier, profile)

    def _assign(self, identifier: Identifier, profile: ProfileState) -> None:
        self.profile_of[identifier] = profile.profile_id
        self.admitted[identifier] = profile.profile_id
        profile.size += 1
        if identifier.type in self.limits_by_type:
            profile.limited.setdefault(identifier.type, set()).add(identifier.value)

    def _flag(self, identifier: Identifier, flag: str, reason: str) -> None:
        self.flag_of[identifier] = flag
        self.plan.flags.append(Flag(identifier, flag, reason))

    def _detect_shared(self, identifiers: Sequence[Identifier]) -> None:
        limit = self.rules.shared_after
        for x, y in itertools.permutations(identifiers, 2):
            if y.type not in self.strong or y.type == x.type or self.flag_of.get(y) == BLOCKLISTED:
                continue
            seen = self.neighbours[x]
            seen.add(y)
            count = sum(1 for n in seen if n.type == y.type)
            if count > limit and self.flag_of.get(x) is None:
                self._flag(x, SHARED, f"{x} was seen with {count} different {y.type} values (more than {limit})")

    def _decide(self, a: Identifier, b: Identifier, touchpoint: Touchpoint) -> LinkDecision:
        return self._decide_pair(a, b, touchpoint.event_id, touchpoint.occurred_at, "seen together")

    def _decide_pair(self, a: Identifier, b: Identifier, evidence_id: str, at: datetime, why: str) -> LinkDecision:
        def decision(accepted: bool, reason: str) -> LinkDecision:
            return LinkDecision(a, b, accepted, reason, evidence_id, at)

        for identifier in (a, b):
            flag = self.flag_of.get(identifier)
            if flag is not None:
                return decision(False, f"{identifier} is {flag}")
        if frozenset((a, b)) in self.unlinked:
            return decision(False, "unlinked by an operator")
        pa, pb = self.current_profile(a), self.current_profile(b)
        if pa is None or pb is None:  # a proposal about an identifier that was unlinked or forgotten meanwhile
            return decision(False, f"{a if pa is None else b} belongs to no profile")
        if pa == pb:
            return decision(True, why)
        conflict = self._limit_conflict(self.profiles[pa], self.profiles[pb])
        if conflict:
            return decision(False, conflict)
        link = decision(True, why)
        self._merge(pa, pb, link)
        return link

    def _limit_conflict(self, one: ProfileState, other: ProfileState) -> str:
        for kind, limit in self.limits:
            values = one.limited.get(kind, set()) | other.limited.get(kind, set())
            if len(values) > limit:
                return f"merging would give one profile {len(values)} {kind} values (limit {limit})"
        return ""

    def _merge(self, pa: str, pb: str, link: LinkDecision) -> None:
        survivor, absorbed = sorted((self.profiles[pa], self.profiles[pb]), key=_survival_order)
        survivor.absorb(absorbed)
        self.merged.union(survivor.profile_id, absorbed.profile_id)
        self.absorptions.append(Merge(absorbed.profile_id, survivor.profile_id, link))

    def _settle(self) -> None:
        """Turns the decisions into what the plan writes. A profile born in this batch and
        merged away in it too is never written: its identifiers go straight to the profile
        they ended in, and a known profile it absorbed merges into the next profile that is
        written. A new cookie that logs in costs one edge to the known profile, not a profile
        node, a merge and an inactive node kept for ever."""
        born = set(self.born)
        absorbed_into = {m.absorbed: m.survivor for m in self.absorptions}

        def kept(profile_id: str) -> str:
            while profile_id in born and profile_id in absorbed_into:
                profile_id = absorbed_into[profile_id]
            return profile_id

        self.plan.new_profiles = [pid for pid in self.born if pid not in absorbed_into]
        self.plan.assignments = {i: self.find(pid) for i, pid in self.admitted.items()}
        self.plan.merges = [replace(m, survivor=kept(m.survivor)) for m in self.absorptions if m.absorbed not in born]

    def _attribute(self, touchpoint: Touchpoint) -> None:
        """Counts the touchpoint and its traits in the profile of its primary identifier."""
        primary = self.plan.primaries.get(touchpoint.event_id)
        profile_id = self.current_profile(primary) if primary else None
        if profile_id is None:
            return
        self.plan.touchpoint_profiles[touchpoint.event_id] = profile_id
        profile = self.profiles[profile_id]
        profile.first_seen = _earliest(profile.first_seen, touchpoint.occurred_at)
        profile.last_seen = _latest(profile.last_seen, touchpoint.occurred_at)
        channel = touchpoint.channel.value
        profile.touchpoints[channel] = profile.touchpoints.get(channel, 0) + 1
        observe(profile.golden, observations(self.rules, touchpoint))

    def _live_profiles(self) -> list[str]:
        return sorted({self.find(pid) for pid in self.profiles})


def primary_identifier(rules: IdentityRules, touchpoint: Touchpoint,
                       junk: Collection[Identifier] | None = None) -> Identifier | None:
    """The identifier that decides the touchpoint's profile: the highest-priority one that is not junk
    (the blocklisted values, when the caller knows them already).

    It depends on configuration only, not on the graph, so ingest marks it when it writes the
    touchpoint.
    """
    if junk is None:
        junk = [i for i in touchpoint.identifiers if rules.is_blocklisted(i.type, i.value)]
    candidates = [i for i in touchpoint.identifiers if i not in junk]
    return min(candidates, key=lambda i: (rules.rank(i.type), i.value), default=None)


def observations(rules: IdentityRules, touchpoint: Touchpoint) -> list[TraitObservation]:
    rank = rules.source_rank(touchpoint.source)
    return [TraitObservation(k, v, touchpoint.source, touchpoint.occurred_at, rank) for k, v in touchpoint.traits.items()]


def _survival_order(profile: ProfileState) -> tuple[int, bool, str]:
    return (-profile.size, profile.is_new, profile.profile_id)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)
