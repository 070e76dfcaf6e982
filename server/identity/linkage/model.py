"""The Fellegi-Sunter match model: per field and level, how likely among matches (m) and non-matches (u).

A pair's match weight is the prior's log2 odds plus each field's log2(m/u) for the level
the pair reached; a missing value is neither agreement nor disagreement, so its m and u are
stored as 1 and its weight is 0. How the parameters are estimated, and the checks a fitted
model must pass before it is used, are in estimation.py.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from server.identity.linkage.compare import level_names
from server.identity.linkage.estimation import FitSample, check, estimate, field_bits, implied_columns
from server.identity.linkage.linkage_config import LinkageRules


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
    prior: float  # P(two random records are one person)
    upper: float
    lower: float
    fitted_at: str
    pairs: int  # candidate pairs m was fitted on
    level_names: tuple[tuple[str, ...], ...] = ()
    iterations: int = 0
    converged: bool = True
    records: int = 0  # Matchable records when fitted
    random_pairs: int = 0
    labelled_pairs: int = 0
    implied_by: tuple[tuple[str, str], ...] = ()  # (field, implying field): see estimation.field_bits
    # The prior's evidence (estimation.prior_from_rules): candidate pairs a deterministic rule
    # calls matches, and the rules' recall, measured on known matches or configured.
    prior_rule_pairs: int = 0
    prior_recall: float = 0.0
    prior_recall_from: str = ""
    quality: dict[str, Any] = field(default_factory=dict, compare=False)  # quality.stored() of the fit's pairs

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
                converged=bool(data.get("converged", True)),
                records=int(data.get("records", 0)),
                random_pairs=int(data.get("random_pairs", 0)),
                labelled_pairs=int(data.get("labelled_pairs", 0)),
                implied_by=_nested(data.get("implied_by", [])),
                prior_rule_pairs=int(data.get("prior_rule_pairs", 0)),
                prior_recall=float(data.get("prior_recall", 0.0)),
                prior_recall_from=str(data.get("prior_recall_from", "")),
                quality=dict(data.get("quality", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a linkage model: {exc!r}") from None

    @property
    def prior_weight(self) -> float:
        """The prior's log2 odds: where every pair starts before its fields' evidence."""
        return float(np.log2(self.prior / (1.0 - self.prior)))

    @property
    def expected_matching_pairs(self) -> float:
        return self.prior * self.records * (self.records - 1) / 2

    def compatible_with(self, rules: LinkageRules) -> bool:
        """Whether levels computed under `rules` mean what this model was fitted on (same fields and levels)."""
        return self.fields == rules.field_names and self.level_names == tuple(tuple(n) for n in level_names(rules))

    def weights(self) -> list[np.ndarray]:
        """Per field, log2(m/u) by level: the bits of evidence each level adds."""
        return [np.log2(np.asarray(m) / np.asarray(u)) for m, u in zip(self.m, self.u)]

    def bayes_factors(self, levels: np.ndarray) -> np.ndarray:
        """Per row, the fields' evidence in bits (log2 Bayes factor), without the prior."""
        levels = np.atleast_2d(levels)
        if levels.shape[1] != len(self.fields):
            raise ValueError(
                f"levels have {levels.shape[1]} columns; model {self.version} compares {len(self.fields)} fields"
            )
        bits: np.ndarray = self.field_weights(levels).sum(axis=1)
        return bits

    def field_weights(self, levels: np.ndarray) -> np.ndarray:
        """Per row and field, the bits that field's level adds (an implied field's agreement none)."""
        return field_bits(np.atleast_2d(levels), [m[1:] for m in self.m], [u[1:] for u in self.u],
                          implied_columns(self.fields, self.implied_by))

    def match_weights(self, levels: np.ndarray) -> np.ndarray:
        """Per row, log2 of the posterior odds of a match: the prior's bits plus the fields'."""
        return self.prior_weight + self.bayes_factors(levels)

    def probabilities(self, levels: np.ndarray) -> np.ndarray:
        """Posterior match probability per row."""
        probabilities: np.ndarray = 1.0 / (1.0 + np.exp2(-self.match_weights(levels)))
        return probabilities

    def explain(self, row: npt.ArrayLike) -> tuple[FieldEvidence, ...]:
        """Each field's level and weight for one pair; with the prior they add up to its probability."""
        row = np.asarray(row).ravel()
        weights = self.field_weights(row[None, :])[0]
        names = self.level_names or tuple(tuple(f"level_{i}" for i in range(len(m))) for m in self.m)
        return tuple(
            FieldEvidence(field=name, level=names[f][int(level)], weight=float(weights[f]))
            for f, (name, level) in enumerate(zip(self.fields, row))
        )

    def problems(self, labelled: np.ndarray, rules: LinkageRules) -> list[str]:
        """Why this model must not be used (estimation.check); empty when it passes."""
        return check([w.tolist() for w in self.weights()], self.level_names, self.fields, self.prior,
                     self.converged, self.iterations, self.records,
                     self.bayes_factors(labelled) if len(labelled) else np.zeros(0), rules.fitting)


def fit(sample: FitSample, rules: LinkageRules, version: str) -> LinkageModel:
    """Fits m, u and the prior (see estimation.py); the caller checks the model before use."""
    if len(sample.candidates) == 0:
        raise ValueError("no candidate pairs to fit the linkage model on")
    found = estimate(sample, rules)
    return LinkageModel(
        version=version,
        fields=rules.field_names,
        m=found.m,
        u=found.u,
        prior=found.prior.prior,
        upper=rules.upper,
        lower=rules.lower,
        fitted_at=datetime.now(UTC).isoformat(timespec="seconds"),
        pairs=len(sample.candidates),
        level_names=tuple(tuple(n) for n in level_names(rules)),
        iterations=found.iterations,
        converged=found.converged,
        records=sample.records,
        random_pairs=len(sample.random),
        labelled_pairs=len(sample.labelled),
        implied_by=rules.implied,
        prior_rule_pairs=found.prior.rule_pairs,
        prior_recall=found.prior.recall,
        prior_recall_from=found.prior.recall_from,
    )


def _nested(rows: list[list[Any]]) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(row) for row in rows)
