"""Fitting the Fellegi-Sunter model so that it stays right when matches are rare.

A CDP's records are mostly distinct people. EM left free on candidate pairs then finds the
biggest cluster of agreement, which is strangers who share a postcode, and calls it the
match class. So each parameter comes from the data that can give it without that bias
(Splink's approach):

- u, how often non-matches agree: from random pairs of records, nearly all non-matches at
  any scale. Exact agreement, too rare to count in random pairs (a birthday), comes from
  the records' value frequencies: the chance that two random records share a value.
- m, how often matches agree: by EM with u held fixed, once per blocking pass over the
  candidate pairs that pass produced, leaving out the fields the pass fixes (their
  agreement there is forced by blocking, not evidence of a match). Known matches (records
  joined by identifiers seen together: the same e-mail, phone, CRM id) count as matches
  with certainty, and a weak prior belief that matches mostly agree keeps a pass with few
  matches from inverting a field. Each field's m is the passes' estimates weighted by the
  matches each pass found.
- the prior, P(two random records are one person), from evidence whose meaning does not
  change with how many records share a block (Splink's approach): candidate pairs that agree
  exactly on every field of a deterministic rule (same names and date of birth; same names
  and address) are matches, and those rules find a known share of all matches, their recall,
  measured on the known matches. So

      prior = (rule pairs / recall) / pairs covered

  where the rule pairs are those among the candidates of the sampled records, and the pairs
  covered are all pairs with at least one sampled record. About 1/records when each person
  has one duplicate, however densely the records share postcodes. (EM's share of matches
  among candidates, used before, grew with block density: in a postcode of thousands the
  candidates are neighbours who agree on where they live, and some of that agreement was
  taken for matches.)

`check` then refuses a fit that is not plausible; the caller never makes such a model current.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from server.identity.linkage.attributes import PASS_FIELDS, PersonAttributes, blocking_keys, squashed
from server.identity.linkage.compare import level_names, levels
from server.identity.linkage.linkage_config import FitSettings, LinkageRules

# One field's probabilities by level: an array while fitting, a tuple in a stored model.
Distribution = Sequence[float] | np.ndarray

SMOOTHING = 0.5  # pseudo-count per level of u, so that no level is impossible
TOLERANCE = 1e-9  # change of mean log-likelihood per pair that counts as converged
MIN_SESSION_PAIRS = 30  # a blocking pass with fewer candidate pairs says too little about m
PROBABILITY_FLOOR = 1e-12
PRIOR_CEILING = 0.5
HALF_PAIR = 0.5  # rule pairs counted when the rules found none: the prior is small, never zero


@dataclass(frozen=True)
class FitSample:
    """What a fit reads: levels of candidate, random and known-matching pairs, and counts."""

    candidates: np.ndarray  # levels, (pairs, fields)
    sessions: np.ndarray  # bool, (pairs, passes): the blocking passes whose key the pair shares
    random: np.ndarray  # levels of random pairs of the sampled records
    exact_u: tuple[float | None, ...]  # per field, P(two random records agree exactly), None if unknown
    labelled: np.ndarray  # levels of known matches
    records: int  # records in the population (Matchable identifiers in the graph)
    sampled: int  # records whose candidate pairs were taken


@dataclass(frozen=True)
class Session:
    """EM over one blocking pass's candidate pairs, with u fixed."""

    blocking_pass: str
    fixed: frozenset[int]  # field columns left out
    m: tuple[np.ndarray, ...]  # per field, over the non-missing levels
    expected_matches: float
    iterations: int
    converged: bool


@dataclass(frozen=True)
class PriorEvidence:
    """What the prior was estimated from (prior_from_rules), kept with the model to explain it."""

    rule_pairs: int  # candidate pairs of the sampled records that a deterministic rule calls matches
    recall: float  # the share of all matches the rules find
    recall_from: str  # "known matches" (measured on them) or "configured" (too few known matches)
    covered_pairs: float  # pairs with at least one sampled record

    @property
    def matching_pairs(self) -> float:
        """Matching pairs expected among the covered pairs."""
        return max(self.rule_pairs, HALF_PAIR) / self.recall

    @property
    def prior(self) -> float:
        if self.covered_pairs <= 0:
            return PROBABILITY_FLOOR
        return min(max(self.matching_pairs / self.covered_pairs, PROBABILITY_FLOOR), PRIOR_CEILING)


@dataclass(frozen=True)
class Estimate:
    """Fitted parameters: m and u per field over all levels (missing neutral), and the prior."""

    m: tuple[tuple[float, ...], ...]
    u: tuple[tuple[float, ...], ...]
    prior: PriorEvidence
    sessions: tuple[Session, ...]

    @property
    def iterations(self) -> int:
        return max((s.iterations for s in self.sessions), default=0)

    @property
    def converged(self) -> bool:
        return all(s.converged for s in self.sessions)


# -- the sample -------------------------------------------------------------------------------

def fit_sample(sampled: Sequence[PersonAttributes],
               candidates: Sequence[tuple[PersonAttributes, PersonAttributes]],
               labelled: Sequence[tuple[PersonAttributes, PersonAttributes]],
               records: int, rules: LinkageRules, seed: int | None = None) -> FitSample:
    """Compares the pairs a fit needs; `sampled` are the records whose candidates were taken."""
    rng = random.Random(seed)
    random_pairs = _random_pairs(len(sampled), rules.fitting.random_pairs, rng)
    return FitSample(
        candidates=_levels(candidates, rules),
        sessions=_sessions(candidates, rules),
        random=_levels([(sampled[i], sampled[j]) for i, j in random_pairs], rules),
        exact_u=tuple(_exact_agreement([getattr(a, rule.name) for a in sampled], rule.comparator)
                      for rule in rules.fields),
        labelled=_levels(labelled, rules),
        records=max(records, len(sampled)),
        sampled=len(sampled),
    )


def _levels(pairs: Sequence[tuple[PersonAttributes, PersonAttributes]], rules: LinkageRules) -> np.ndarray:
    if not pairs:
        return np.zeros((0, len(rules.fields)), dtype=np.int8)
    return levels([a for a, _ in pairs], [b for _, b in pairs], rules)


def _sessions(pairs: Sequence[tuple[PersonAttributes, PersonAttributes]], rules: LinkageRules) -> np.ndarray:
    keys: dict[PersonAttributes, set[str]] = {}

    def of(record: PersonAttributes) -> set[str]:
        if record not in keys:
            keys[record] = set(blocking_keys(record, rules))
        return keys[record]

    shared = np.zeros((len(pairs), len(rules.blocking)), dtype=bool)
    for row, (a, b) in enumerate(pairs):
        for key in of(a) & of(b):
            shared[row, rules.blocking.index(key.split(":", 1)[0])] = True
    return shared


def _random_pairs(n: int, wanted: int, rng: random.Random) -> list[tuple[int, int]]:
    if n < 2:
        return []
    if n * (n - 1) // 2 <= wanted:
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < wanted:
        i, j = rng.randrange(n), rng.randrange(n)
        if i != j:
            pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


def _exact_agreement(values: Sequence[str | None], comparator: str) -> float | None:
    """P(two random records agree exactly | both have a value), from value frequencies."""
    present = [squashed(v) if comparator in ("name", "string") else v for v in values if v is not None]
    n = len(present)
    if n < 2:
        return None
    same = sum(c * (c - 1) for c in Counter(present).values())
    return same / (n * (n - 1))


# -- fitting ------------------------------------------------------------------------------------

def estimate(sample: FitSample, rules: LinkageRules) -> Estimate:
    """u from random pairs, m by EM per blocking pass with u fixed, then the prior."""
    sizes = [len(names) - 1 for names in level_names(rules)]  # non-missing levels per field
    u = [_u_field(sample, f, size) for f, size in enumerate(sizes)]
    alpha = [_agreement_belief(size) * rules.fitting.m_prior_pairs for size in sizes]
    labelled = [_level_counts(sample.labelled[:, f], size) for f, size in enumerate(sizes)]
    sessions = tuple(s for p, name in enumerate(rules.blocking)
                     if (s := _session(sample, rules, p, name, u, alpha, labelled, sizes)) is not None)
    m = [_combined_m(f, sessions, labelled[f] + alpha[f]) for f in range(len(sizes))]
    return Estimate(m=tuple(_with_missing(p) for p in m), u=tuple(_with_missing(p) for p in u),
                    prior=prior_from_rules(sample, rules), sessions=sessions)


def _u_field(sample: FitSample, field: int, size: int) -> np.ndarray:
    """u over the non-missing levels: exact from value frequencies, the others from random pairs."""
    counts = _level_counts(sample.random[:, field], size) + SMOOTHING
    exact = sample.exact_u[field]
    if exact is None:
        return _normalised(counts)
    exact = min(max(exact, PROBABILITY_FLOOR), 1.0 - PROBABILITY_FLOOR)
    rest = counts[:-1] / counts[:-1].sum() * (1.0 - exact)
    return np.append(rest, exact)


def _level_counts(column: np.ndarray, size: int) -> np.ndarray:
    """Counts of the non-missing levels 1..size of one field's column."""
    return np.bincount(np.asarray(column, dtype=np.int64), minlength=size + 1)[1:size + 1].astype(float)


def _agreement_belief(size: int) -> np.ndarray:
    """A prior belief of m over levels (different, ..., exact): matches mostly agree exactly."""
    if size == 2:
        return np.array([0.05, 0.95])
    middle = np.full(size - 2, 0.25 / (size - 2))
    return np.concatenate([[0.05], middle, [0.70]])


def _session(sample: FitSample, rules: LinkageRules, index: int, name: str, u: list[np.ndarray],
             alpha: list[np.ndarray], labelled: list[np.ndarray], sizes: list[int]) -> Session | None:
    rows = sample.sessions[:, index] if sample.sessions.size else np.zeros(0, dtype=bool)
    if rows.sum() < MIN_SESSION_PAIRS:
        return None
    fixed = frozenset(f for f, field in enumerate(rules.field_names) if field in PASS_FIELDS.get(name, ()))
    matrix = sample.candidates[rows].astype(np.int64)
    matrix[:, sorted(fixed)] = 0  # left out: treated as missing
    patterns, counts = np.unique(matrix, axis=0, return_counts=True)
    indicators = [(patterns[:, f, None] == np.arange(1, size + 1)[None, :]).astype(float)
                  for f, size in enumerate(sizes)]
    m, expected, iterations, converged = _em_m(indicators, counts.astype(float), u, alpha, labelled,
                                               rules.fitting.max_iterations)
    return Session(name, fixed, tuple(m), expected, iterations, converged)


def _em_m(indicators: list[np.ndarray], counts: np.ndarray, u: list[np.ndarray], alpha: list[np.ndarray],
          labelled: list[np.ndarray], max_iterations: int) -> tuple[list[np.ndarray], float, int, bool]:
    """EM for m and the share of matches among the pairs, with u fixed.

    Starts from the belief that matches agree, so the first E-step calls agreeing pairs matches.
    """
    m = [a / a.sum() for a in alpha]
    share = 0.1
    log_u = sum(ind @ np.log(p) for ind, p in zip(indicators, u))
    previous = -np.inf
    for iteration in range(1, max_iterations + 1):
        log_match = np.log(share) + sum(ind @ np.log(p) for ind, p in zip(indicators, m))
        log_other = np.log(1.0 - share) + log_u
        log_total = np.logaddexp(log_match, log_other)
        weight = counts * np.exp(log_match - log_total)
        m = [_normalised(weight @ ind + known + a) for ind, known, a in zip(indicators, labelled, alpha)]
        share = float(np.clip(weight.sum() / counts.sum(), 1e-9, 1.0 - 1e-9))
        likelihood = float(counts @ log_total / counts.sum())
        if abs(likelihood - previous) < TOLERANCE:
            return m, float(weight.sum()), iteration, True
        previous = likelihood
    return m, float(weight.sum()), max_iterations, False


def _combined_m(field: int, sessions: Sequence[Session], fallback: np.ndarray) -> np.ndarray:
    """The sessions' m for a field, weighted by the matches each found; the known matches and
    the prior belief where no session could estimate it."""
    usable = [s for s in sessions if field not in s.fixed and s.expected_matches > 0]
    if not usable:
        return _normalised(fallback)
    weights = np.array([s.expected_matches for s in usable])
    return _normalised(sum(w * s.m[field] for w, s in zip(weights, usable)))


def prior_from_rules(sample: FitSample, rules: LinkageRules) -> PriorEvidence:
    """P(two random records match) = (rule pairs / the rules' recall) / pairs covered.

    Rule pairs are the candidate pairs that agree exactly on every field of one of
    `fitting.prior_rules`; the recall is the share of the known matches that agree so (with
    half a pair of smoothing), or `fitting.prior_rules_recall` while fewer than
    `fitting.min_labelled_pairs` known matches are there to measure it. The candidates are
    those of `sampled` records against all `records`; a rule pair outside blocking is missed,
    which the recall measured on known matches does not see, so blocking must pair records
    that agree on a rule (every rule here shares a blocking pass's key).
    """
    covered = sample.sampled * (sample.records - 1) - sample.sampled * (sample.sampled - 1) / 2
    columns = rule_columns(rules)
    caught = _caught_by_rules(sample.labelled, columns, rules)
    settings = rules.fitting
    if len(sample.labelled) >= max(settings.min_labelled_pairs, 1):
        recall, source = (caught.sum() + HALF_PAIR) / (len(sample.labelled) + 2 * HALF_PAIR), "known matches"
    else:
        recall, source = settings.prior_rules_recall, "configured"
    pairs = int(_caught_by_rules(sample.candidates, columns, rules).sum())
    return PriorEvidence(rule_pairs=pairs, recall=float(recall), recall_from=source, covered_pairs=float(covered))


def rule_columns(rules: LinkageRules) -> tuple[tuple[int, ...], ...]:
    """The prior rules as field columns; ValueError naming a field that is not compared."""
    names = rules.field_names
    unknown = sorted({f for rule in rules.fitting.prior_rules for f in rule if f not in names})
    if unknown:
        raise ValueError(f"prior rules name {', '.join(unknown)}, not compared fields")
    return tuple(tuple(names.index(f) for f in rule) for rule in rules.fitting.prior_rules)


def _caught_by_rules(matrix: np.ndarray, columns: Sequence[tuple[int, ...]], rules: LinkageRules) -> np.ndarray:
    """Per row, whether it agrees exactly on every field of at least one rule."""
    if len(matrix) == 0:
        return np.zeros(0, dtype=bool)
    exact = np.array([len(names) - 1 for names in level_names(rules)])
    agrees = np.asarray(matrix) == exact[None, :]
    caught: np.ndarray = np.any([agrees[:, list(rule)].all(axis=1) for rule in columns], axis=0)
    return caught


def field_bits(matrix: np.ndarray, m: Sequence[Distribution], u: Sequence[Distribution],
               implied: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """Per row and field, log2(m/u) of the row's level (missing adds 0).

    `implied` lists (field, implying field) columns: where the implying field agrees exactly,
    the implied field's agreement adds nothing (a postcode already says the town), so its
    weight is capped at 0; disagreement still counts.
    """
    weights = [np.concatenate([[0.0], np.log2(np.asarray(mf) / np.asarray(uf))]) for mf, uf in zip(m, u)]
    matrix = np.atleast_2d(matrix).astype(np.int64)
    bits = np.column_stack([w[matrix[:, f]] for f, w in enumerate(weights)]) if weights else np.zeros((len(matrix), 0))
    for field, by in implied:
        agree = matrix[:, by] == len(m[by])  # the exact level is the last one
        bits[agree, field] = np.minimum(bits[agree, field], 0.0)
    return bits


def bayes_factor_bits(matrix: np.ndarray, m: Sequence[Distribution], u: Sequence[Distribution],
                      implied: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """Per row, log2 of the Bayes factor: the sum of the fields' bits (field_bits)."""
    bits: np.ndarray = field_bits(matrix, m, u, implied).sum(axis=1)
    return bits


def implied_columns(fields: Sequence[str], implied: Sequence[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    return tuple((fields.index(a), fields.index(b)) for a, b in implied if a in fields and b in fields)


def _normalised(values: np.ndarray) -> np.ndarray:
    normalised: np.ndarray = values / values.sum()
    return normalised


def _with_missing(probabilities: np.ndarray) -> tuple[float, ...]:
    return (1.0, *(float(p) for p in probabilities))


# -- checks ---------------------------------------------------------------------------------------

def check(weights: Sequence[Sequence[float]], names: Sequence[Sequence[str]], fields: Sequence[str], prior: float,
          converged: bool, iterations: int, records: int, labelled_bits: np.ndarray,
          settings: FitSettings) -> list[str]:
    """Why a fitted model must not be used; empty when it passes every check.

    `weights` are per field the log2(m/u) of each level (index 1 is "different"), and
    `labelled_bits` the Bayes factors (log2) the model gives the known matches.
    """
    problems = [*_monotone(weights, names, fields), *_plausible_prior(prior, records, settings)]
    if not converged:
        problems.append(f"EM did not converge within {iterations} iterations")
    if len(labelled_bits) >= settings.min_labelled_pairs and len(labelled_bits) > 0:
        share = float(np.mean(np.asarray(labelled_bits) > 0))
        if share < settings.min_labelled_agreement:
            problems.append(f"only {share:.0%} of {len(labelled_bits)} known matches (records sharing a strong "
                            f"identifier) score as evidence for a match; at least "
                            f"{settings.min_labelled_agreement:.0%} must")
    return problems


def _monotone(weights: Sequence[Sequence[float]], names: Sequence[Sequence[str]],
              fields: Sequence[str]) -> list[str]:
    problems = []
    for field, field_weights, field_names in zip(fields, weights, names):
        different = field_weights[1]
        for level in range(2, len(field_weights)):
            if field_weights[level] <= different:
                problems.append(f"{field}: '{field_names[level]}' weighs {field_weights[level]:+.2f} bits, not more "
                                f"than 'different' ({different:+.2f} bits)")
        if field_weights[-1] <= 0:
            problems.append(f"{field}: exact agreement weighs {field_weights[-1]:+.2f} bits, no evidence of a match")
    return problems


def _plausible_prior(prior: float, records: int, settings: FitSettings) -> list[str]:
    pairs = records * (records - 1) / 2
    expected = prior * pairs
    if not 0.0 < prior < PRIOR_CEILING:
        return [f"prior {prior:.4g} is not a probability that two random records match"]
    if expected > settings.max_matches_per_record * records:
        return [f"prior {prior:.4g} implies {expected:,.0f} matching pairs among {records:,} records, more than "
                f"{settings.max_matches_per_record:g} per record"]
    return []
