"""The golden record: one value per trait for a profile, chosen by a documented rule; and the
copies of traits and numeric event properties that segment rules compare and sum.

Rule: a trait's value comes from the most trusted source that sent a non-empty value
(`source_priority` in config/identity.yaml; unlisted sources rank last), and among values
from equally trusted sources, from the most recent observation. The rule is a total order,
so merging two profiles' records gives the same answer in any order.
"""

from __future__ import annotations

import math

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TraitObservation:
    """One trait value as one source reported it at one moment."""

    key: str
    value: str
    source: str
    observed_at: datetime
    source_rank: int

    def beats(self, other: TraitObservation) -> bool:
        """True when this observation should be the golden value rather than other."""
        return (self.source_rank, -self.observed_at.timestamp(), self.value) < (
            other.source_rank,
            -other.observed_at.timestamp(),
            other.value,
        )


GoldenRecord = dict[str, TraitObservation]


def observe(record: GoldenRecord, observations: Iterable[TraitObservation]) -> None:
    """Folds observations into record, keeping the winner per trait."""
    for seen in observations:
        current = record.get(seen.key)
        if current is None or seen.beats(current):
            record[seen.key] = seen


def merged(*records: Mapping[str, TraitObservation]) -> GoldenRecord:
    result: GoldenRecord = {}
    for record in records:
        observe(result, record.values())
    return result


def to_json(record: Mapping[str, TraitObservation]) -> str:
    """Stored on the profile node as JSON text, readable in Neo4j Browser."""
    return json.dumps(
        {
            key: {"value": o.value, "source": o.source, "observed_at": o.observed_at.isoformat(), "rank": o.source_rank}
            for key, o in sorted(record.items())
        },
        sort_keys=True,
    )


def from_json(text: str | None) -> GoldenRecord:
    if not text:
        return {}
    return {
        key: TraitObservation(key, v["value"], v["source"], datetime.fromisoformat(v["observed_at"]), int(v["rank"]))
        for key, v in json.loads(text).items()
    }


TRAIT_PREFIX = "trait."


def trait_properties(record: Mapping[str, TraitObservation]) -> dict[str, str]:
    """The golden record as profile properties (`trait.<key>`), which segment rules compare in
    Cypher without parsing JSON."""
    return {TRAIT_PREFIX + key: o.value for key, o in record.items()}


PROPERTY_PREFIX = "prop."


def numeric_properties(properties: Mapping[str, str]) -> dict[str, float]:
    """The properties that read as finite numbers (an order's amount), kept as `prop.<name>`
    floats on the touchpoint so that segment rules can sum them in Cypher."""
    numbers = {}
    for key, text in properties.items():
        try:
            number = float(text)
        except ValueError:
            continue
        if math.isfinite(number):
            numbers[PROPERTY_PREFIX + key] = number
    return numbers
