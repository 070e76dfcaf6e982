"""Linkage of a record set held in memory: blocking, comparison, fitting, scoring, profiles.

A measuring instrument of the benchmarks, not the service: the service links against the
graph (server/identity/linkage/linker.py with cypher/linkage/candidates.cypher), and every
accuracy figure the README gives goes through it. This in-memory path runs the same rules and
model on a plain mapping, as the speed reference of bench/linkage.py; its profile and
pairwise-quality helpers score the service's answers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from server.identity.disjoint_sets import DisjointSets

from server.identity.linkage.attributes import PersonAttributes, blocking_keys
from server.identity.linkage.compare import levels
from server.identity.linkage.estimation import fit_sample
from server.identity.linkage.model import LinkageModel, fit
from server.identity.linkage.linkage_config import LinkageRules

ScoredPair = tuple[str, str, float]


@dataclass(frozen=True)
class LinkageRun:
    """Everything one in-memory linkage produced, for measuring it."""

    ids: tuple[str, ...]
    candidates: np.ndarray  # (n_pairs, 2) indices into ids, first < second
    levels: np.ndarray
    probabilities: np.ndarray
    model: LinkageModel

    def scored_pairs(self, threshold: float) -> list[ScoredPair]:
        keep = np.flatnonzero(self.probabilities >= threshold)
        return [
            (self.ids[self.candidates[k, 0]], self.ids[self.candidates[k, 1]], float(self.probabilities[k]))
            for k in keep
        ]


def link_in_memory(
    records: Mapping[str, PersonAttributes], rules: LinkageRules, model: LinkageModel | None = None
) -> tuple[LinkageModel, list[ScoredPair]]:
    """Links records among themselves; returns the model and the pairs at or above `rules.lower`.

    Without a model one is fitted on the candidates; ValueError when blocking finds none.
    """
    run = run_linkage(records, rules, model)
    return run.model, run.scored_pairs(rules.lower)


def run_linkage(
    records: Mapping[str, PersonAttributes], rules: LinkageRules, model: LinkageModel | None = None
) -> LinkageRun:
    """Blocks, compares and scores; fits a model on the candidates when none is given."""
    ids = tuple(records)
    attributes = [records[record_id] for record_id in ids]
    candidates = candidate_pairs(attributes, rules)
    compared = levels([attributes[i] for i in candidates[:, 0]], [attributes[j] for j in candidates[:, 1]], rules)
    if model is None:
        pairs = [(attributes[i], attributes[j]) for i, j in candidates]
        model = fit(fit_sample(attributes, pairs, [], len(attributes), rules, seed=0), rules, version="in-memory")
    return LinkageRun(ids, candidates, compared, model.probabilities(compared), model)


def candidate_pairs(attributes: Sequence[PersonAttributes], rules: LinkageRules) -> np.ndarray:
    """The union of all blocking passes' pairs, as sorted index pairs without repeats.

    A block larger than `rules.max_block_size` (a common postcode, a popular birthday) is
    not paired all-with-all: its records are sorted by name and each is paired with its
    next max_block_size - 1 neighbours, which bounds the pairs per record.
    """
    blocks: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(attributes):
        for key in blocking_keys(record, rules):
            blocks[key].append(index)
    window = rules.max_block_size - 1
    found = [_block_pairs(_by_name(members, attributes), window) for members in blocks.values() if len(members) > 1]
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.concatenate(found)
    pairs.sort(axis=1)
    return np.unique(pairs, axis=0)


def _by_name(members: list[int], attributes: Sequence[PersonAttributes]) -> np.ndarray:
    def name(index: int) -> tuple[str, str]:
        record = attributes[index]
        return record.surname or "", record.given_name or ""

    return np.asarray(sorted(members, key=name) if len(members) > 2 else members, dtype=np.int64)


def _block_pairs(members: np.ndarray, window: int) -> np.ndarray:
    """All pairs of a block, or each member with its next `window` members when it is larger."""
    return members[_positions(len(members), window)]


@lru_cache(maxsize=1024)
def _positions(size: int, window: int) -> np.ndarray:
    """Index pairs (i < j, j - i <= window) within a block of `size`; blocks repeat few sizes."""
    first, second = np.triu_indices(size, k=1)
    near = second - first <= window
    return np.column_stack([first[near], second[near]])


def profiles(ids: Iterable[str], links: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Connected components of accepted links (the transitive closure): record id -> profile number."""
    sets: DisjointSets[str] = DisjointSets(ids)
    for a, b in links:
        sets.union(a, b)
    numbers: dict[str, int] = {}
    return {record_id: numbers.setdefault(sets.find(record_id), len(numbers)) for record_id in list(sets.parent)}


@dataclass(frozen=True)
class PairwiseQuality:
    """Pairwise precision and recall of predicted profiles against true ones."""

    true_positives: int
    predicted: int
    actual: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.actual if self.actual else 1.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def pairwise_quality(predicted: Mapping[str, int], actual: Mapping[str, int]) -> PairwiseQuality:
    """Every pair inside a profile counts as a link, on both sides; both map the same record ids."""
    both = Counter((predicted[r], actual[r]) for r in actual)
    return PairwiseQuality(
        true_positives=_pairs_within(both.values()),
        predicted=_pairs_within(Counter(predicted[r] for r in actual).values()),
        actual=_pairs_within(Counter(actual.values()).values()),
    )


def pair_completeness(candidates: Iterable[tuple[str, str]], actual: Mapping[str, int]) -> float:
    """Share of true pairs (within true profiles) that blocking put forward as candidates."""
    found = {frozenset(pair) for pair in candidates if actual[pair[0]] == actual[pair[1]]}
    total = _pairs_within(Counter(actual.values()).values())
    return len(found) / total if total else 1.0


def _pairs_within(sizes: Iterable[int]) -> int:
    return sum(size * (size - 1) // 2 for size in sizes)
