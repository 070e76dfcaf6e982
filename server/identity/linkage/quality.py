"""How a model's decisions are distributed: what an operator reads to see a bad model at once.

A healthy model scores most candidate pairs far below zero (strangers) and its links far
above `upper`; their mean probability is its own estimate of their precision. A model that
puts strangers into its match class shows as links crowding just above `upper`, a low
expected precision, or many pairs stopped by decision guards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Bin edges of match weights (log2 posterior odds; 0 is a probability of 0.5, 4.25 of 0.95).
WEIGHT_EDGES: tuple[float, ...] = (-20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0)
# Probability band edges above `upper` for accepted links.
BAND_EDGES: tuple[float, ...] = (0.99, 0.999, 0.9999)


@dataclass
class LinkageQuality:
    pairs_scored: int = 0
    weight_bins: list[int] = field(default_factory=lambda: [0] * (len(WEIGHT_EDGES) + 1))
    links: list[float] = field(default_factory=list)  # probabilities of accepted links
    possible: int = 0
    guarded: dict[str, int] = field(default_factory=dict)
    refused: int = 0

    def score(self, match_weights: np.ndarray) -> None:
        """Counts scored pairs into the weight bins."""
        self.pairs_scored += len(match_weights)
        bins = np.searchsorted(np.asarray(WEIGHT_EDGES), np.asarray(match_weights), side="right")
        for index, count in zip(*np.unique(bins, return_counts=True)):
            self.weight_bins[int(index)] += int(count)

    def guard(self, reasons: Iterable[str]) -> None:
        for reason in reasons:
            self.guarded[reason] = self.guarded.get(reason, 0) + 1

    def add(self, other: LinkageQuality) -> None:
        self.pairs_scored += other.pairs_scored
        self.weight_bins = [a + b for a, b in zip(self.weight_bins, other.weight_bins)]
        self.links.extend(other.links)
        self.possible += other.possible
        self.guard(reason for reason, count in other.guarded.items() for _ in range(count))
        self.refused += other.refused

    @property
    def expected_precision(self) -> float:
        """Mean match probability of the accepted links: the model's own precision estimate."""
        return float(np.mean(self.links)) if self.links else 0.0

    def weight_histogram(self) -> list[tuple[float, float, int]]:
        edges = (-np.inf, *WEIGHT_EDGES, np.inf)
        return [(edges[i], edges[i + 1], count) for i, count in enumerate(self.weight_bins)]

    def link_bands(self, upper: float) -> list[tuple[float, float, int]]:
        """Accepted links by probability band, from `upper` to 1 (the last band includes 1)."""
        edges = [upper, *(e for e in BAND_EDGES if e > upper), 1.0]
        counts = np.histogram(np.clip(self.links, upper, 1.0), bins=edges)[0] if self.links else [0] * (len(edges) - 1)
        return [(edges[i], edges[i + 1], int(count)) for i, count in enumerate(counts)]


@dataclass(frozen=True)
class QualitySummary:
    """A quality as read back from storage or a query: counts, not the pairs themselves."""

    pairs_scored: int
    weight_histogram: tuple[tuple[float, float, int], ...]
    link_bands: tuple[tuple[float, float, int], ...]
    possible: int
    guarded: Mapping[str, int]
    refused: int
    expected_precision: float


def summarise(quality: LinkageQuality, upper: float) -> QualitySummary:
    return QualitySummary(quality.pairs_scored, tuple(quality.weight_histogram()), tuple(quality.link_bands(upper)),
                          quality.possible, dict(quality.guarded), quality.refused, quality.expected_precision)


def from_stored(data: Mapping[str, Any], upper: float) -> QualitySummary:
    """Reads the dict that a model stores (see `stored`)."""
    edges = (-np.inf, *WEIGHT_EDGES, np.inf)
    bins = list(data.get("weight_bins", [])) or [0] * (len(edges) - 1)
    bands = tuple(tuple(band) for band in data.get("link_bands", ()))
    links = sum(band[2] for band in bands)
    return QualitySummary(
        pairs_scored=int(data.get("pairs_scored", 0)),
        weight_histogram=tuple((edges[i], edges[i + 1], int(c)) for i, c in enumerate(bins)),
        link_bands=bands,
        possible=int(data.get("possible", 0)),
        guarded=dict(data.get("guarded", {})),
        refused=int(data.get("refused", 0)),
        expected_precision=float(data.get("link_probability_sum", 0.0)) / links if links else 0.0,
    )


def stored(quality: LinkageQuality, upper: float) -> dict[str, Any]:
    """The dict a model keeps of the quality of its fit's candidate pairs."""
    return {"pairs_scored": quality.pairs_scored, "weight_bins": quality.weight_bins,
            "link_bands": [list(band) for band in quality.link_bands(upper)],
            "link_probability_sum": float(np.sum(quality.links)) if quality.links else 0.0,
            "possible": quality.possible, "guarded": quality.guarded, "refused": quality.refused}
