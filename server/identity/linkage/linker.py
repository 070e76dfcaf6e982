"""Probabilistic linkage against the graph: candidates from Neo4j, scores from the model,
decisions through merge protection.

Identifiers with person attributes (a CRM record, a loyalty signup's card) are Matchable:
they carry their cleaned attributes and one blocking key per pass. Linking a batch of such
subjects fetches the Matchable identifiers that share a key with each (indexed, capped per
key), compares every pair field by field, and scores it with the current model:
- at or above the upper threshold the pair is proposed as a link, unless a decision guard
  (household, namesake, ...) stops it, and the stitching planner applies the same merge
  protection as to identifiers seen together (flags, per-profile limits, operator unlinks);
  an accepted link merges profiles and keeps the model's evidence;
- between the thresholds, or stopped by a guard, the pair is kept as a POSSIBLE_MATCH edge
  for review;
- below, nothing is stored.
A model is only ever used after it passed its checks (estimation.check); a refused fit is
kept with its reasons, and the model that was current stays current. A refusal is loud: it
is counted (on_refusal), logged, and while no model is current, `status()` says that
probabilistic linkage is off and why.
Pairs already in one profile are skipped: linking them adds nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from server.errors import ConfigurationError, FailedPrecondition, ModelRefused
from server.graph import Graph, Tx, epoch_millis
from server.identity.identity_config import IdentityRules
from server.identity.link_commit import EVIDENCE_KEPT, LinkCommit, commit_links, pair_row
from server.identity.linkage.attributes import PersonAttributes
from server.identity.linkage.candidates import BLOCK_SLOTS, subject_row
from server.identity.linkage.compare import levels
from server.identity.linkage.decisions import Verdict, quality_of, score
from server.identity.linkage.estimation import FitSample, fit_sample
from server.identity.linkage.guards import Guards
from server.identity.linkage.linkage_config import LinkageRules
from server.identity.linkage.linkage_status import (FitSchedule, LinkageLag, LinkageStatusView, RefusedFitView, moment,
                                                    why_off)
from server.identity.linkage.model import LinkageModel, fit
from server.identity.linkage.quality import BAND_EDGES, LinkageQuality, QualitySummary, from_stored, stored
from server.identity.stitching import LinkDecision, ProposedLink
from server.identity.values import Identifier
from server.tuning import FIT_CANDIDATE_CHUNK, REFUSED_FIT_SAMPLE_GROWTH

# A subject of linkage: its identifier, profile id, attributes, and its candidates with theirs.
SubjectCandidates = tuple[Identifier, str | None, PersonAttributes, list[tuple[Identifier, PersonAttributes]]]

log = logging.getLogger(__name__)

MIN_FIT_PAIRS = 200  # EM on fewer candidate pairs gives parameters that mean little
KNOWN_MATCHES_READ = 20_000  # known matches read for a fit at most
# Who asks for a fit: an import without a model, RefitLinkageModel, the online worker.
FIT_TRIGGERS = ("import", "refit", "online")


@dataclass(frozen=True)
class ScoredPair:
    a: Identifier
    b: Identifier
    probability: float
    fields: str  # JSON: [{field, level, weight}]
    verdict: Verdict = Verdict.LINK
    guard: str | None = None  # the decision guard that stopped a link


@dataclass
class LinkOutcome:
    """What one linkage run decided, by subject, and the distribution of its scores."""

    pairs_compared: int = 0
    linked: set[Identifier] = field(default_factory=set)  # accepted probabilistic links touch these
    possible: set[Identifier] = field(default_factory=set)
    refused: set[Identifier] = field(default_factory=set)  # merge protection refused a match
    quality: LinkageQuality = field(default_factory=LinkageQuality)

    def add(self, other: LinkOutcome) -> None:
        self.pairs_compared += other.pairs_compared
        self.linked |= other.linked
        self.possible |= other.possible
        self.refused |= other.refused
        self.quality.add(other.quality)


class Linker:
    """Links Matchable identifiers with the current model; stateless apart from a model cache."""

    def __init__(self, graph: Graph, rules: IdentityRules, linkage: LinkageRules,
                 fitter: Callable[[FitSample, LinkageRules, str], LinkageModel] = fit,
                 on_refusal: Callable[[str], None] = lambda trigger: None) -> None:
        self.graph = graph
        self.fitter = fitter  # the estimation; every model it returns still passes adopt()'s checks
        self.on_refusal = on_refusal  # told the trigger (FIT_TRIGGERS) of each refit that ended refused
        self.rules = rules
        self.linkage = linkage
        if len(linkage.blocking) > BLOCK_SLOTS:
            raise ConfigurationError(f"linkage blocking: at most {BLOCK_SLOTS} passes (one indexed slot each), "
                                     f"{len(linkage.blocking)} configured")
        self.guards = Guards(linkage)
        self._model: LinkageModel | None = None
        self._model_checked: float | None = None  # when the store was last asked, found or not
        self._incompatible: str | None = None  # the stored current model's version, when it cannot be used
        self._last_refusal = ""  # the last refit this process saw refused, until a model is current
        self._lock = threading.Lock()

    # -- the model ---------------------------------------------------------------------------

    def model(self, max_age: float = 5.0) -> LinkageModel | None:
        """The current model, re-read at most every max_age seconds (another server may refit).
        Its absence is remembered as long: the online worker asks for it many times a second."""
        with self._lock:
            if self._model_checked is None or time.monotonic() - self._model_checked > max_age:
                records = self.graph.read("linkage/current_model")
                if not records:
                    self._model, self._incompatible = None, None
                elif self._model is None or self._model.version != records[0]["version"]:
                    self._model = self._usable(LinkageModel.from_json(records[0]["params"]))
                if self._model is not None:
                    self._last_refusal = ""
                self._model_checked = time.monotonic()
            return self._model

    def _usable(self, model: LinkageModel) -> LinkageModel | None:
        """A stored model fitted under other fields or levels than configured now cannot score
        today's comparisons; it is ignored, and the next import, RefitLinkageModel or the online
        worker fits anew."""
        if model.compatible_with(self.linkage):
            self._incompatible = None
            return model
        if self._incompatible != model.version:  # said once, not at every re-read
            log.warning("linkage model %s does not fit config/linkage.yaml any more: probabilistic linkage is off "
                        "until a new one is fitted (import records or call RefitLinkageModel)", model.version)
        self._incompatible = model.version
        return None

    def refit(self, sample_records: int = 0, trigger: str = "refit") -> LinkageModel:
        """Fits a model on a random sample of the graph's Matchable identifiers, checks it, and
        makes it current. A fit the checks refuse is fitted once more on a sample
        REFUSED_FIT_SAMPLE_GROWTH times larger (at most every Matchable record): a refusal is
        often too little evidence. When that is refused too, ModelRefused with its reasons (both
        fits are stored as refused). `trigger` (FIT_TRIGGERS) says who asked, for on_refusal.
        Every fit, by an import, RefitLinkageModel or the online worker, comes through here."""
        size = sample_records or self.linkage.fitting.sample_records
        sample = self.fit_sample(size)
        try:
            return self._fit_and_adopt(sample)
        except ModelRefused as refused:
            first = refused
        larger = min(REFUSED_FIT_SAMPLE_GROWTH * size, sample.records)
        if larger <= sample.sampled:  # the sample held every record: another fit would see the same
            self._refused(trigger, first)
            raise first
        log.warning("linkage model %s refused on a sample of %d of %d records; fitting once more on %d",
                    first.version, sample.sampled, sample.records, larger)
        try:
            return self._fit_and_adopt(self.fit_sample(larger))
        except ModelRefused as second:
            self._refused(trigger, second)
            raise
        except FailedPrecondition:  # a larger sample with fewer candidate pairs: the first refusal stands
            self._refused(trigger, first)
            raise first from None

    def _fit_and_adopt(self, sample: FitSample) -> LinkageModel:
        return self.adopt(self.fitter(sample, self.linkage, datetime.now(UTC).strftime("v%Y%m%d%H%M%S%f")), sample)

    def _refused(self, trigger: str, refused: ModelRefused) -> None:
        with self._lock:
            self._last_refusal = f"the last fit ({refused.version}) was refused: {'; '.join(refused.reasons)}"
        self.on_refusal(trigger)

    def fit_sample(self, sample_records: int) -> FitSample:
        """What a fit reads from the graph: sampled records, their candidate pairs (linked ones
        included, or a refit after the first import would see hardly any matches), and the
        known matches among them."""
        (count,) = self.graph.read("linkage/count_matchable")
        total = int(count["matchable"])
        if total < 2:
            raise FailedPrecondition("no records with person attributes to fit the linkage model on yet")
        share = min(1.0, 1.5 * sample_records / total)
        # a record forgotten (or deleted) while the sample is read comes back without its person
        rows = [r for r in self.graph.read("linkage/sample", share=share, limit=sample_records) if r["person"]]
        sampled = [PersonAttributes.from_dict(json.loads(r["person"])) for r in rows]
        pairs: list[tuple[PersonAttributes, PersonAttributes]] = []
        seen: set[frozenset[Identifier]] = set()
        for chunk in _chunks([subject_row(r) for r in rows], FIT_CANDIDATE_CHUNK):
            for me, _, person, candidates in self.candidates(chunk, unlinked_only=False):
                for other, other_person in candidates:
                    if frozenset((me, other)) not in seen:
                        seen.add(frozenset((me, other)))
                        pairs.append((person, other_person))
        if len(pairs) < MIN_FIT_PAIRS:
            raise FailedPrecondition(f"the records in the graph give {len(pairs)} candidate pairs; fitting the linkage "
                                     f"model needs at least {MIN_FIT_PAIRS}")
        return fit_sample(sampled, pairs, self._known_matches(rows), total, self.linkage)

    def _known_matches(self, rows: Sequence[Mapping[str, object]]) -> list[tuple[PersonAttributes, PersonAttributes]]:
        keys = [{"type": r["type"], "value": r["value"]} for r in rows]
        found: dict[frozenset[Identifier], tuple[PersonAttributes, PersonAttributes]] = {}
        for r in self.graph.read("linkage/known_matches", keys=keys, limit=KNOWN_MATCHES_READ):
            pair = frozenset((Identifier(r["a_type"], r["a_value"]), Identifier(r["b_type"], r["b_value"])))
            found.setdefault(pair, (PersonAttributes.from_dict(json.loads(r["a_person"])),
                                    PersonAttributes.from_dict(json.loads(r["b_person"]))))
        return list(found.values())

    def adopt(self, model: LinkageModel, sample: FitSample) -> LinkageModel:
        """Checks a fitted model on its sample and makes it current; a model that fails a check
        is stored as refused with the reasons, logged, and raised as ModelRefused."""
        quality = quality_of(score(model, sample.candidates, self.guards))
        model = replace(model, quality=stored(quality, model.upper))
        problems = model.problems(sample.labelled, self.linkage)
        params = {"version": model.version, "params": model.to_json(), "fitted_at": datetime.now(UTC),
                  "pairs": model.pairs}
        if problems:
            self.graph.transaction("save refused linkage model", lambda tx: tx.run(
                "linkage/save_refused_fit", reasons=problems, **params))
            log.warning("linkage model %s refused, the current model stays: %s", model.version, "; ".join(problems))
            raise ModelRefused(model.version, problems)
        self.graph.transaction("save linkage model", lambda tx: tx.run("linkage/save_model", **params))
        with self._lock:
            self._model, self._model_checked = model, time.monotonic()
            self._incompatible, self._last_refusal = None, ""
        log.info("linkage model %s fitted on %d candidate pairs, %d random pairs and %d known matches of %d records; "
                 "prior %.3g (%.0f matching pairs expected), expected precision of its links %.4f",
                 model.version, model.pairs, model.random_pairs, model.labelled_pairs, model.records, model.prior,
                 model.expected_matching_pairs, quality.expected_precision)
        return model

    def last_refused_fit(self) -> RefusedFitView | None:
        """The latest refused fit when it is newer than the current model."""
        records = self.graph.read("linkage/last_refused_fit")
        if not records:
            return None
        return RefusedFitView(LinkageModel.from_json(records[0]["params"]), tuple(records[0]["reasons"]))

    def matchable(self) -> int:
        """How many identifiers carry person attributes: the population a fit samples."""
        (record,) = self.graph.read("linkage/count_matchable")
        return int(record["matchable"])

    def status(self) -> LinkageStatusView:
        """The current model and its links, the online queue, the last refused fit, and whether
        probabilistic linkage is on: if not, why, and what happens next."""
        lag = self.lag()
        model = self.model(max_age=0)
        refused = self.last_refused_fit()
        schedule = self.fit_schedule()
        matchable = self.matchable()
        now = datetime.now(UTC)
        off, why = why_off(model, refused, self._incompatible, matchable, lag, schedule, now)
        next_attempt = schedule.not_before if off is not None and schedule is not None else None
        return LinkageStatusView(lag=lag, model=model, current_links=self.links_of(model) if model else None,
                                 refused=refused, off=off, why_off=why, matchable=matchable,
                                 next_fit_attempt=next_attempt if next_attempt and next_attempt > now else None)

    def known_state(self) -> str:
        """Whether probabilistic linkage is on, as this process last read it, for /readyz: no
        query and no lock (model() holds the lock while it reads Neo4j, and /readyz must answer
        whatever Neo4j does); "" before the first read."""
        checked, model, refusal, incompatible = (self._model_checked, self._model, self._last_refusal,
                                                 self._incompatible)
        if checked is None:
            return ""
        if model is not None:
            return f"probabilistic linkage: on (model {model.version})"
        if refusal:
            why = refusal
        elif incompatible is not None:
            why = f"the stored model {incompatible} does not fit config/linkage.yaml"
        else:
            why = "no linkage model is current"
        return f"probabilistic linkage: off: {why} (GetLinkageStatus says more)"

    # -- the online worker's fit attempts ----------------------------------------------------

    def claim_fit(self, owner: str, lease_s: float) -> int | None:
        """Claims the online fit for this server (one server at a time, not before a refused
        attempt's back-off has passed); the refused attempts in a row so far, or None when
        another server holds the claim or the back-off runs."""
        now = epoch_millis(datetime.now(UTC))
        records = self.graph.transaction("claim linkage fit", lambda tx: tx.run(
            "linkage/claim_fit", owner=owner, now=now, lease_ms=int(lease_s * 1000)))
        return int(records[0]["attempts"]) if records and records[0]["claimed"] else None

    def release_fit(self, owner: str, attempts: int, retry_after_s: float | None, outcome: str) -> None:
        """Ends the claim with the attempt's outcome and when the next may start (None: when due)."""
        now = datetime.now(UTC)
        not_before = epoch_millis(now + timedelta(seconds=retry_after_s)) if retry_after_s is not None else None
        self.graph.transaction("release linkage fit", lambda tx: tx.run(
            "linkage/release_fit", owner=owner, now=epoch_millis(now), not_before=not_before, attempts=attempts,
            outcome=outcome))

    def fit_schedule(self) -> FitSchedule | None:
        """The online worker's attempts so far; None before the first."""
        records = self.graph.read("linkage/fit_schedule")
        if not records:
            return None
        r = records[0]
        return FitSchedule(attempts=int(r["attempts"]), attempted_at=moment(r["attempted_at"]),
                           not_before=moment(r["not_before"]), outcome=str(r["outcome"]),
                           claimed_until=moment(r["claimed_until"]))

    def links_of(self, model: LinkageModel) -> QualitySummary:
        """The probabilistic links the model made that the graph holds now, by band."""
        edges = [model.upper, *(e for e in BAND_EDGES if e > model.upper), 1.0]
        (record,) = self.graph.read("linkage/links_of_model", version=model.version, edges=edges)
        bands = [[edges[i], edges[i + 1], count] for i, count in enumerate(record["bands"])]
        return from_stored({"link_bands": bands, "link_probability_sum": record["probability_sum"]}, model.upper)

    def lag(self) -> LinkageLag:
        """How far online linkage is behind: identifiers queued, and the oldest one's wait."""
        (record,) = self.graph.read("linkage/lag")
        oldest = record["oldest"]
        wait = max(0.0, time.time() - oldest / 1000) if oldest is not None else 0.0
        return LinkageLag(int(record["pending"]), wait)

    # -- linking -------------------------------------------------------------------------------

    def link(self, subjects: Sequence[Identifier], model: LinkageModel) -> LinkOutcome:
        """Scores the subjects' candidate pairs and writes the decisions; subjects must be
        Matchable already (described)."""
        keys = [{"type": i.type, "value": i.value} for i in subjects]
        records = self.graph.read("linkage/subjects", keys=keys)
        chunk = [subject_row(r) for r in records]
        scored, compared, quality = self._score(chunk, model)
        outcome = LinkOutcome(pairs_compared=compared, quality=quality)
        accepted = [p for p in scored if p.verdict is Verdict.LINK]
        possible = [p for p in scored if p.verdict is Verdict.REVIEW]
        if accepted or possible:
            decisions = self.graph.transaction("link", lambda tx: self._write(tx, model, accepted, possible))
            for decision in decisions:
                (outcome.linked if decision.accepted else outcome.refused).update((decision.a, decision.b))
            refused = {frozenset((d.a, d.b)) for d in decisions if not d.accepted}
            quality.refused += len(refused)
            quality.links = [p.probability for p in accepted if frozenset((p.a, p.b)) not in refused]
        for pair in possible:
            outcome.possible.update((pair.a, pair.b))
        return outcome

    def candidates(self, chunk: list[dict[str, object]], unlinked_only: bool = True) -> Iterator[SubjectCandidates]:
        """Per subject: identifier, profile id, attributes, and [(candidate, attributes)]; with
        unlinked_only, only those worth deciding on (other profiles, not refused by a reviewer)."""
        for record in self.graph.read("linkage/candidates", subjects=chunk,
                                      half=max(1, self.linkage.max_block_size // 2)):
            me = Identifier(record["type"], record["value"])
            person = PersonAttributes.from_dict(json.loads(record["person"]))
            pairs = [(Identifier(c["type"], c["value"]), PersonAttributes.from_dict(json.loads(c["person"])))
                     for c in record["candidates"]
                     if not unlinked_only or (not c["refused"] and (c["profile_id"] is None
                                                                    or c["profile_id"] != record["profile_id"]))]
            yield me, record["profile_id"], person, pairs

    def _score(self, chunk: list[dict[str, object]],
               model: LinkageModel) -> tuple[list[ScoredPair], int, LinkageQuality]:
        seen: set[frozenset[Identifier]] = set()
        pairs: list[tuple[Identifier, Identifier]] = []
        left: list[PersonAttributes] = []
        right: list[PersonAttributes] = []
        for me, _, person, candidates in self.candidates(chunk):
            for other, other_person in candidates:
                key = frozenset((me, other))
                if key in seen:
                    continue
                seen.add(key)
                pairs.append((me, other))
                left.append(person)
                right.append(other_person)
        if not pairs:
            return [], 0, LinkageQuality()
        matrix = levels(left, right, self.linkage)
        scores = score(model, matrix, self.guards)
        scored = []
        for (a, b), row, probability, verdict, guard in zip(pairs, matrix, scores.probabilities, scores.verdicts,
                                                            scores.guards, strict=True):
            if verdict is not Verdict.NONE:
                scored.append(ScoredPair(a, b, float(probability), evidence_fields(model, row), verdict, guard))
        return scored, len(pairs), quality_of(scores)

    def _write(self, tx: Tx, model: LinkageModel, accepted: list[ScoredPair],
               possible: list[ScoredPair]) -> list[LinkDecision]:
        now = datetime.now(UTC)
        decisions: list[LinkDecision] = []
        if accepted:
            evidence = f"model:{model.version}"
            proposals = [ProposedLink(p.a, p.b, evidence, _reason(model, p.probability), now) for p in accepted]
            committed = commit_links(tx, self.rules, LinkCommit("linkage", proposals=proposals, lock=True,
                                                                record_links=False), now)
            decisions = committed.decisions
            by_pair = {frozenset((p.a, p.b)): p for p in accepted}
            matches = [_match_row(d, by_pair[frozenset((d.a, d.b))], model) for d in decisions if d.accepted]
            refusals = [{**pair_row(d.a, d.b), "event_id": d.event_id, "occurred_at": epoch_millis(now),
                         "reason": f"{_reason(model, by_pair[frozenset((d.a, d.b))].probability)}, but {d.reason}"}
                        for d in decisions if not d.accepted]
            if matches:
                tx.run("linkage/record_matches", rows=matches, now=now)
            if refusals:
                tx.run("stitching/record_rejections", rows=refusals, evidence_kept=EVIDENCE_KEPT)
        if possible:
            tx.run("linkage/record_possible", now=now, rows=[
                {**pair_row(p.a, p.b), "probability": p.probability, "model_version": model.version, "fields": p.fields,
                 "guard": p.guard} for p in possible])
        return decisions


def evidence_fields(model: LinkageModel, row: Sequence[int]) -> str:
    """A pair's evidence as stored on its edge: JSON [{field, level, weight}]."""
    return json.dumps([{"field": e.field, "level": e.level, "weight": round(e.weight, 3)} for e in model.explain(row)])


def _reason(model: LinkageModel, probability: float) -> str:
    return f"matched by linkage model {model.version} (p={probability:.4f})"


def _match_row(decision: LinkDecision, pair: ScoredPair, model: LinkageModel) -> dict[str, object]:
    return {**pair_row(decision.a, decision.b), "probability": pair.probability, "model_version": model.version,
            "fields": pair.fields, "reason": decision.reason}


def _chunks(items: list[dict[str, object]], size: int) -> Iterable[list[dict[str, object]]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
