"""Why two identifiers (or profiles) share a profile, how strongly the model ties them, and
what keeps them apart.

An explanation answers three questions about a pair, and only reads the graph, so operators
may ask as often as they like:
- how: when both share a profile, the shortest path of accepted links joining them (at most
  15 hops, through unflagged identifiers of that profile), each link with its evidence;
- how strong: the current model's score of the pair, field by field; a side without person
  attributes of its own (or a profile ref) is scored by its profile's records, and the pair
  that scores highest is taken;
- why not: the decision guard, a score below the thresholds, blocking that never pairs them
  (or oversized blocks that may not), operators' and reviewers' rejections, merge
  protection's recorded refusals, possible matches waiting for review, and what merge
  protection would say of the link now.
The same functions that decide answer (comparison levels, decisions.score, the candidate
query, the stitching Planner), so an explanation cannot disagree with what linking would do.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from server.errors import InvalidArgument
from server.graph import Tx, to_datetime
from server.identity.linkage.attributes import PersonAttributes
from server.identity.linkage.compare import levels
from server.identity.linkage.decisions import Verdict, score
from server.identity.linkage.model import FieldEvidence, LinkageModel
from server.identity.linkage.candidates import block_slots, subject_row
from server.identity.linkage.linker import Linker
from server.identity.values import GraphLink, Identifier, ProfileKey
from server.identity.profiles import Profiles
from server.identity.link_commit import LinkCommit, plan_commit
from server.identity.stitching import ProposedLink

PERSONS_PER_SIDE = 50  # records of a profile scored against the other side at most
BETWEEN_READ = 20  # rejected links and possible matches between the two profiles reported at most
KIND_NAMES = {"linked": "deterministic", "probabilistic": "probabilistic", "confirmed": "confirmed by a reviewer"}


@dataclass(frozen=True)
class PairScoreView:
    """The current model's reading of one pair of records."""

    a: Identifier
    b: Identifier
    model_version: str
    probability: float
    match_weight: float  # log2 posterior odds: prior_weight plus the fields' weights
    prior_weight: float
    fields: tuple[FieldEvidence, ...]
    verdict: Verdict
    guard: str | None  # the decision guard that stops a link the score alone would make


@dataclass(frozen=True)
class LinkExplanation:
    same_profile: bool
    profile_a: str
    profile_b: str
    path: tuple[GraphLink, ...]  # the links joining a to b, in order, each oriented from a towards b
    score: PairScoreView | None
    shared_blocks: tuple[str, ...]  # blocking passes both records have the same key for
    stopped_by: tuple[str, ...]  # what keeps them apart, as sentences
    summary: str


@dataclass(frozen=True)
class _Record:
    identifier: Identifier
    attributes: PersonAttributes


@dataclass(frozen=True)
class _Blocking:
    shared: tuple[str, ...]
    compared: bool  # whether the candidate query pairs them (from either side)


class Explainer:
    """Explains pairs over the graph layer; stateless, reads only."""

    def __init__(self, linker: Linker, profiles: Profiles) -> None:
        self.linker = linker
        self.profiles = profiles
        self.graph = linker.graph

    def explain(self, a: ProfileKey, b: ProfileKey) -> LinkExplanation:
        """How a and b are joined, or why they are not; NotFound names a ref that names nothing."""
        a, b = self.profiles.normalize_key(a), self.profiles.normalize_key(b)
        if a == b:
            raise InvalidArgument(f"a and b are both {a}: name two different identifiers or profiles")
        profile_a, profile_b = self.profiles.resolve(a), self.profiles.resolve(b)
        same = profile_a == profile_b
        path = self._path(a, b, profile_a) if same and isinstance(a, Identifier) and isinstance(b, Identifier) else ()
        model = self.linker.model(max_age=0)
        left, right = self._records(a, profile_a), self._records(b, profile_b)
        pair = self._pair(model, left, right)
        pair_score = self._score(model, *pair) if model is not None and pair is not None else None
        blocking = self._blocking(*pair) if pair is not None else None
        stopped: list[str] = []
        if not same:
            stopped += _score_reasons(model, pair_score, blocking, self.linker.linkage.max_block_size)
            stopped += self._between(profile_a, profile_b)
            refusal = self._merge_protection(pair_score, a, b, profile_a, profile_b)
            if refusal:
                stopped.append(f"merge protection would refuse the link now: {refusal}")
        no_score = _no_score_reason(model, a, b, left, right)
        summary = _summary(same, (profile_a, profile_b), (a, b), path, model, pair_score, blocking, stopped, no_score)
        return LinkExplanation(same, profile_a, profile_b, path, pair_score,
                               blocking.shared if blocking else (), tuple(stopped), summary)

    # -- how ---------------------------------------------------------------------------------

    def _path(self, a: Identifier, b: Identifier, profile_id: str) -> tuple[GraphLink, ...]:
        records = self.graph.read("linkage/explain_path", a_type=a.type, a_value=a.value, b_type=b.type,
                                  b_value=b.value, profile_id=profile_id)
        return tuple(_path_step(step) for step in records[0]["steps"]) if records else ()

    # -- how strong --------------------------------------------------------------------------

    def _records(self, key: ProfileKey, profile_id: str) -> list[_Record]:
        """The records a side is scored by: the identifier when it has person attributes, else its profile's."""
        identifier = key if isinstance(key, Identifier) else None
        rows = self.graph.read("linkage/explain_persons", type=identifier.type if identifier else None,
                               value=identifier.value if identifier else None, profile_id=profile_id,
                               limit=PERSONS_PER_SIDE)
        return [_Record(Identifier(r["type"], r["value"]), PersonAttributes.from_dict(json.loads(r["person"])))
                for r in rows]

    def _pair(self, model: LinkageModel | None, left: Sequence[_Record],
              right: Sequence[_Record]) -> tuple[_Record, _Record] | None:
        """The pair to explain: the one the model scores highest; without a model, the one that
        shares the most blocking keys."""
        pairs = [(x, y) for x in left for y in right if x.identifier != y.identifier]
        if not pairs:
            return None
        if model is None:
            return max(pairs, key=lambda p: len(self._shared_keys(*p)))
        weights = model.match_weights(self._levels(pairs))
        return pairs[int(np.argmax(weights))]  # weights, not probabilities: those saturate at 1

    def _levels(self, pairs: Sequence[tuple[_Record, _Record]]) -> np.ndarray:
        return levels([x.attributes for x, _ in pairs], [y.attributes for _, y in pairs], self.linker.linkage)

    def _score(self, model: LinkageModel, x: _Record, y: _Record) -> PairScoreView:
        matrix = self._levels([(x, y)])
        scores = score(model, matrix, self.linker.guards)
        return PairScoreView(x.identifier, y.identifier, model.version, float(scores.probabilities[0]),
                             float(scores.match_weights[0]), model.prior_weight, model.explain(matrix[0]),
                             scores.verdicts[0], scores.guards[0])

    # -- why not -----------------------------------------------------------------------------

    def _shared_keys(self, x: _Record, y: _Record) -> list[str | None]:
        """By slot, the blocking key both records have (None where they differ or lack one)."""
        rules = self.linker.linkage
        return [k if k is not None and k == o else None
                for k, o in zip(block_slots(x.attributes, rules), block_slots(y.attributes, rules))]

    def _blocking(self, x: _Record, y: _Record) -> _Blocking:
        """The passes that pair the records, each oversized block with its size, and whether the
        candidate query (which keeps only the nearest by name of an oversized block) pairs them."""
        keys = self._shared_keys(x, y)
        if not any(keys):
            return _Blocking((), False)
        (record,) = self.graph.read("linkage/explain_blocks", blocks=keys)
        cap = self.linker.linkage.max_block_size
        shared = tuple(
            key.split(":", 1)[0] if size <= cap else
            f"{key.split(':', 1)[0]} (block of {size} records, larger than {cap}: only the nearest by name are compared)"
            for key, size in zip(keys, record["sizes"]) if key is not None)
        return _Blocking(shared, self._compared(x.identifier, y.identifier))

    def _compared(self, x: Identifier, y: Identifier) -> bool:
        subjects = self.graph.read("linkage/subjects", keys=[_key(x), _key(y)])
        for me, _, _, candidates in self.linker.candidates([subject_row(r) for r in subjects], unlinked_only=False):
            other = y if me == x else x
            if any(candidate == other for candidate, _ in candidates):
                return True
        return False

    def _between(self, profile_a: str, profile_b: str) -> list[str]:
        """Rejected links and possible matches between identifiers of the two profiles, as sentences."""
        reasons = []
        for r in self.graph.read("linkage/explain_between", profile_a=profile_a, profile_b=profile_b,
                                 limit=BETWEEN_READ):
            a, b = Identifier(r["a_type"], r["a_value"]), Identifier(r["b_type"], r["b_value"])
            if r["kind"] == "possible":
                guard = f", stopped by the guard {r['guard']}" if r["guard"] else ""
                reasons.append(f"a possible match of {a} and {b} (p={_p(r['probability'] or 0.0)}, "
                               f"model {r['model_version']}{guard}) waits for a reviewer")
            elif r["by_operator"]:
                reasons.append(f"{a} and {b}: {r['reason'] or 'rejected by an operator'}")
            else:
                reasons.append(f"merge protection refused linking {a} and {b}: {r['reason'] or 'no reason kept'}")
        return reasons

    def _merge_protection(self, pair_score: PairScoreView | None, a: ProfileKey, b: ProfileKey,
                          profile_a: str, profile_b: str) -> str | None:
        """What the stitching Planner decides of the link now (on the scored records, else on the
        identifiers asked about, or a member of a profile asked about), read without locks."""
        rules = self.linker.rules
        now = datetime.now(UTC)

        def work(tx: Tx) -> str | None:
            states = self._profile_states(tx, [profile_a, profile_b])
            x: Identifier | None
            y: Identifier | None
            if pair_score is not None:
                x, y = pair_score.a, pair_score.b
            else:
                x, y = _member(a, states.get(profile_a)), _member(b, states.get(profile_b))
            if x is None or y is None:
                return None
            plan = plan_commit(tx, rules, LinkCommit("explain", proposals=[ProposedLink(x, y, "explain", "explain", now)],
                                                     dry_run=True), now)
            if not plan.links:
                return None
            (decision,) = plan.links
            return None if decision.accepted else decision.reason

        return self.graph.read_transaction("explain link", work)

    def _profile_states(self, tx: Tx, profile_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not profile_ids:
            return {}
        records = tx.run("linkage/explain_profiles", profile_ids=profile_ids,
                         limited_types=sorted(self.linker.rules.per_profile_limits))
        return {str(r["profile_id"]): r for r in records}


def _path_step(step: Mapping[str, Any]) -> GraphLink:
    kind = step["kind"]
    return GraphLink(
        Identifier(step["a_type"], step["a_value"]), Identifier(step["b_type"], step["b_value"]), accepted=True,
        reason=step["reason"] or ("seen together" if kind == "linked" else ""), times_seen=int(step["times_seen"] or 0),
        first_seen=to_datetime(step["first_seen"]), last_seen=to_datetime(step["last_seen"]),
        event_ids=tuple(step["event_ids"] or ()), kind=kind, probability=step["probability"],
        model_version=step["model_version"] or "",
        fields=tuple((f["field"], f["level"], float(f["weight"])) for f in json.loads(step["fields"] or "[]")))


def _member(key: ProfileKey, state: Mapping[str, Any] | None) -> Identifier | None:
    if isinstance(key, Identifier):
        return key
    member = state.get("representative") if state else None
    return Identifier(member["type"], member["value"]) if isinstance(member, Mapping) else None


def _key(identifier: Identifier) -> dict[str, str]:
    return {"type": identifier.type, "value": identifier.value}


def _p(probability: float) -> str:
    return f"{probability:.4f}" if probability >= 1e-4 else f"{probability:.1e}"


def _band(model_lower: float, model_upper: float, probability: float) -> str:
    if probability >= model_upper:
        return f"at or above upper {model_upper:g}"
    if probability >= model_lower:
        return f"below upper {model_upper:g}"
    return f"below lower {model_lower:g}"


def _score_reasons(model: LinkageModel | None, pair_score: PairScoreView | None, blocking: _Blocking | None,
                   cap: int) -> list[str]:
    """The model's side of why not: its guard, its thresholds, and blocking where the score alone
    would have kept or linked the pair."""
    if model is None or pair_score is None:
        return []
    p = pair_score.probability
    reasons = []
    if pair_score.guard:
        reasons.append(f"a decision guard stops the link ({pair_score.guard}): "
                       "a possible match for a reviewer at most, never a link")
    elif p < model.lower:
        reasons.append(f"the model's score p={_p(p)} is below lower {model.lower:g}: the pair is not kept")
    elif p < model.upper:
        reasons.append(f"the model's score p={_p(p)} is below upper {model.upper:g}: "
                       "a possible match for a reviewer at most, never a link")
    if p >= model.lower and blocking is not None:
        if not blocking.shared:
            reasons.append("blocking never pairs them: no blocking pass gives both records the same key, "
                           "so the model never compares them")
        elif not blocking.compared:
            reasons.append(f"blocking does not pair them: in the blocks they share, neither is among the other's "
                           f"{cap} nearest by name")
    return reasons


def _no_score_reason(model: LinkageModel | None, a: ProfileKey, b: ProfileKey, left: Sequence[_Record],
                     right: Sequence[_Record]) -> str:
    if model is None:
        return "no score: there is no linkage model yet (import records or refit)"
    for key, records in ((a, left), (b, right)):
        if not records:
            named = str(key) if isinstance(key, Identifier) else f"profile {key}"
            return f"no score: {named} has no person attributes (nor any record of its profile)"
    return ""


def _summary(same: bool, profiles: tuple[str, str], keys: tuple[ProfileKey, ProfileKey],
             path: Sequence[GraphLink], model: LinkageModel | None, pair_score: PairScoreView | None,
             blocking: _Blocking | None, stopped: Sequence[str], no_score: str) -> str:
    if same:
        return _how(profiles[0], keys, path)
    parts = [f"different profiles ({profiles[0]}, {profiles[1]})"]
    if model is not None and pair_score is not None:
        parts.append(f"the model gives p={_p(pair_score.probability)} "
                     f"({_band(model.lower, model.upper, pair_score.probability)})")
    elif no_score:
        parts.append(no_score)
    if blocking is not None:
        parts.append(f"blocking pairs them on {', '.join(b.split(' ', 1)[0] for b in blocking.shared)}"
                     if blocking.shared else "blocking never pairs them")
    if stopped:
        more = f" (and {len(stopped) - 1} more)" if len(stopped) > 1 else ""
        parts.append(f"stopped by: {stopped[0]}{more}")
    return "; ".join(parts)


def _how(profile_id: str, keys: tuple[ProfileKey, ProfileKey], path: Sequence[GraphLink]) -> str:
    if path:
        kinds = Counter(link.kind for link in path)
        parts = []
        for kind, name in KIND_NAMES.items():
            if kinds[kind]:
                part = f"{kinds[kind]} {name}"
                if kind == "probabilistic":
                    weakest = min(link.probability or 0.0 for link in path if link.kind == kind)
                    part += f", {'weakest ' if kinds[kind] > 1 else ''}p={_p(weakest)}"
                parts.append(part)
        return f"same profile {profile_id}, joined by {len(path)} link{'s' * (len(path) != 1)} ({', '.join(parts)})"
    if all(isinstance(key, Identifier) for key in keys):
        return (f"same profile {profile_id}, but no path of accepted links through unflagged identifiers "
                "(within 15 hops) joins them")
    return f"same profile {profile_id}"
