"""The Fellegi-Sunter match model: per field and level, how likely among matches (m) and non-matches (u).

Parameters are fitted without labels by expectation-maximisation over the comparison
levels of candidate pairs, assuming fields agree independently given the match status.
A missing value is neither agreement nor disagreement: it is left out of both m and u,
and its m and u are stored as 1 so that its weight log2(m/u) is 0.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np

from server.identity.linkage.compare import level_names
from server.identity.linkage.rules import LinkageRules

SMOOTHING = 0.5  # pseudo-count per level, so that no level is ever impossible in either class
TOLERANCE = 1e-9  # change of mean log-likelihood per pair that counts as converged
PROBABILITY_FLOOR = 1e-6

EMParameters = tuple[list[np.ndarray], list[np.ndarray], float]  # m and u per field, and the prior


@dataclass(frozen=True)
class FieldEvidence:
    """What one field's agreement level contributed to a pair's match weight, in bits."""

    field: str
    level: str
    weight: float


@dataclass(frozen=True)
class LinkageModel:
    version: str
    fields: tuple[str, ...]
    m: tuple[tuple[float, ...], ...]
    u: tuple[tuple[float, ...], ...]
    prior: float
    upper: float
    lower: float
    fitted_at: str
    pairs: int
    level_names: tuple[tuple[str, ...], ...] = ()
    iterations: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> LinkageModel:
        """Reads what `to_json` wrote; raises ValueError naming what is missing or malformed."""
        try:
            data = json.loads(text)
            return LinkageModel(
                version=str(data["version"]),
                fields=tuple(data["fields"]),
                m=_nested(data["m"]),
                u=_nested(data["u"]),
                prior=float(data["prior"]),
                upper=float(data["upper"]),
                lower=float(data["lower"]),
                fitted_at=str(data["fitted_at"]),
                pairs=int(data["pairs"]),
                level_names=_nested(data.get("level_names", [])),
                iterations=int(data.get("iterations", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a linkage model: {exc!r}") from None

    def compatible_with(self, rules: LinkageRules) -> bool:
        """Whether levels computed under `rules` mean what this model was fitted on (same fields and levels)."""
        return self.fields == rules.field_names and self.level_names == tuple(tuple(n) for n in level_names(rules))

    def weights(self) -> list[np.ndarray]:
        """Per field, log2(m/u) by level: the bits of evidence each level adds."""
        return [np.log2(np.asarray(m) / np.asarray(u)) for m, u in zip(self.m, self.u)]

    def match_weights(self, levels: np.ndarray) -> np.ndarray:
        """Total log2 Bayes factor per row: the sum of its fields' level weights."""
        levels = np.atleast_2d(levels)
        if levels.shape[1] != len(self.fields):
            raise ValueError(
                f"levels have {levels.shape[1]} columns; model {self.version} compares {len(self.fields)} fields"
            )
        return sum((w[levels[:, f]] for f, w in enumerate(self.weights())), np.zeros(len(levels)))

    def probabilities(self, levels: np.ndarray) -> np.ndarray:
        """Posterior match probability per row, from the prior odds and the match weight."""
        log2_odds = np.log2(self.prior / (1.0 - self.prior)) + self.match_weights(levels)
        return 1.0 / (1.0 + np.exp2(-log2_odds))

    def explain(self, row: np.ndarray) -> tuple[FieldEvidence, ...]:
        """Each field's level and weight for one pair; with the prior they add up to its probability."""
        weights = self.weights()
        names = self.level_names or tuple(tuple(f"level_{i}" for i in range(len(m))) for m in self.m)
        return tuple(
            FieldEvidence(field=name, level=names[f][int(level)], weight=float(weights[f][int(level)]))
            for f, (name, level) in enumerate(zip(self.fields, np.asarray(row).ravel()))
        )


def fit(levels: np.ndarray, rules: LinkageRules, version: str, max_iterations: int = 100) -> LinkageModel:
    """Fits m, u and the match prior to candidate pairs' levels by EM.

    Identical level vectors are fitted once with their count as weight, so the cost depends
    on the number of distinct agreement patterns, not on the number of pairs.
    """
    names = level_names(rules)
    if len(levels) == 0:
        raise ValueError("no candidate pairs to fit the linkage model on")
    if np.ndim(levels) != 2 or np.shape(levels)[1] != len(names):
        raise ValueError(f"levels must have one column per compared field ({len(names)}), got shape {np.shape(levels)}")
    patterns, counts = np.unique(np.asarray(levels, dtype=np.int64), axis=0, return_counts=True)
    sizes = [len(n) for n in names]
    indicators = [_level_indicators(patterns[:, f], size) for f, size in enumerate(sizes)]
    m, u, prior = _initial_parameters(indicators, counts)
    previous, iterations = -np.inf, 0
    for iterations in range(1, max_iterations + 1):
        posterior, log_likelihood = _expectation(indicators, counts, m, u, prior)
        m, u, prior = _maximisation(indicators, counts, posterior)
        if abs(log_likelihood - previous) < TOLERANCE:
            break
        previous = log_likelihood
    m, u, prior = _identified(m, u, prior)
    return LinkageModel(
        version=version,
        fields=rules.field_names,
        m=tuple(_with_neutral_missing(p) for p in m),
        u=tuple(_with_neutral_missing(p) for p in u),
        prior=float(prior),
        upper=rules.upper,
        lower=rules.lower,
        fitted_at=datetime.now(UTC).isoformat(timespec="seconds"),
        pairs=int(counts.sum()),
        level_names=tuple(tuple(n) for n in names),
        iterations=iterations,
    )


def _level_indicators(column: np.ndarray, size: int) -> np.ndarray:
    """One-hot of the non-missing levels (shape patterns x (size-1)); a missing row is all zeros."""
    return (column[:, None] == np.arange(1, size)[None, :]).astype(float)


def _initial_parameters(indicators: list[np.ndarray], counts: np.ndarray) -> EMParameters:
    """m leans on the highest levels and u follows the overall level frequencies.

    Most candidate pairs are non-matches, so overall frequencies are a fair first u; an m
    that favours agreement tells EM which of its two classes is the match class.
    """
    m = [_normalised(np.exp2(2.0 * np.arange(ind.shape[1]))) for ind in indicators]
    u = [_normalised(counts @ ind + SMOOTHING) for ind in indicators]
    return m, u, 0.1


def _expectation(
    indicators: list[np.ndarray], counts: np.ndarray, m: list[np.ndarray], u: list[np.ndarray], prior: float
) -> tuple[np.ndarray, float]:
    """Posterior match probability of each pattern, and the mean log-likelihood per pair."""
    log_match = np.log(prior) + sum(ind @ np.log(p) for ind, p in zip(indicators, m))
    log_non_match = np.log(1.0 - prior) + sum(ind @ np.log(p) for ind, p in zip(indicators, u))
    log_total = np.logaddexp(log_match, log_non_match)
    posterior = np.exp(log_match - log_total)
    return posterior, float(counts @ log_total / counts.sum())


def _maximisation(indicators: list[np.ndarray], counts: np.ndarray, posterior: np.ndarray) -> EMParameters:
    match_weight, non_match_weight = counts * posterior, counts * (1.0 - posterior)
    m = [_normalised(match_weight @ ind + SMOOTHING) for ind in indicators]
    u = [_normalised(non_match_weight @ ind + SMOOTHING) for ind in indicators]
    prior = float(np.clip(match_weight.sum() / counts.sum(), PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR))
    return m, u, prior


def _identified(m: list[np.ndarray], u: list[np.ndarray], prior: float) -> EMParameters:
    """EM's classes are symmetric: the match class is the one where exact agreement is likelier."""
    votes = sum(1 if mf[-1] > uf[-1] else -1 for mf, uf in zip(m, u))
    return (m, u, prior) if votes >= 0 else (u, m, 1.0 - prior)


def _nested(rows: list[list]) -> tuple[tuple, ...]:
    return tuple(tuple(row) for row in rows)


def _normalised(values: np.ndarray) -> np.ndarray:
    return values / values.sum()


def _with_neutral_missing(probabilities: np.ndarray) -> tuple[float, ...]:
    return (1.0, *(float(p) for p in probabilities))
