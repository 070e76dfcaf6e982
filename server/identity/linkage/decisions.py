"""What the model's scores mean for a pair: link it, keep it for review, or leave it.

One place decides, so that imports, online linkage, re-scoring, fitting reports and
explanations agree on every pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from server.identity.linkage.guards import Guards
from server.identity.linkage.model import LinkageModel
from server.identity.linkage.quality import LinkageQuality


class Verdict(Enum):
    LINK = "link"  # at or above upper, no guard stops it: proposed to merge protection
    REVIEW = "review"  # between the thresholds, or stopped by a guard: a possible match
    NONE = "none"  # below lower: nothing is stored


@dataclass(frozen=True)
class Scores:
    """The model's reading of comparison levels, row by row."""

    probabilities: np.ndarray
    match_weights: np.ndarray  # log2 posterior odds
    guards: tuple[str | None, ...]  # the guard that stops a row scored at or above upper
    verdicts: tuple[Verdict, ...]


def score(model: LinkageModel, matrix: np.ndarray, guards: Guards) -> Scores:
    weights = model.match_weights(matrix) if len(matrix) else np.zeros(0)
    probabilities = 1.0 / (1.0 + np.exp2(-weights))
    stopped = tuple(guards.reason(row) if p >= model.upper else None for row, p in zip(matrix, probabilities))
    verdicts = tuple(_verdict(p, guard, model) for p, guard in zip(probabilities, stopped))
    return Scores(probabilities, weights, stopped, verdicts)


def _verdict(probability: float, guard: str | None, model: LinkageModel) -> Verdict:
    if probability >= model.upper:
        return Verdict.LINK if guard is None else Verdict.REVIEW
    return Verdict.REVIEW if probability >= model.lower else Verdict.NONE


def quality_of(scores: Scores) -> LinkageQuality:
    """The distribution of the scores; refusals by merge protection are added by the writer."""
    quality = LinkageQuality()
    quality.score(scores.match_weights)
    quality.links = [float(p) for p, v in zip(scores.probabilities, scores.verdicts) if v is Verdict.LINK]
    quality.possible = sum(v is Verdict.REVIEW for v in scores.verdicts)
    quality.guard(guard for guard in scores.guards if guard is not None)
    return quality
