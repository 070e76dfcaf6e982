"""Comparison of candidate pairs: each field's agreement banded into a small number of levels.

Levels are categorical so that the model can learn, per field, how much each degree of
agreement says about a match; a raw similarity would force one weight curve on all fields.
Level 0 is "missing": a value absent on either side says nothing either way. Names have a
level of their own just above "different", "mistyped_nickname": a name one slip from a nickname
of the other's says less than a similar name, and sharing "similar" with it would make that level
common among strangers (its u rises) and cost the typo'd matches it scores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from recordlinkage.algorithms.string import damerau_levenshtein_similarity, jarowinkler_similarity

from server.identity.linkage.attributes import (PersonAttributes, are_nicknames, is_mistyped_nickname,
                                                nickname_similarity, squashed)
from server.identity.linkage.linkage_config import FieldRule, LinkageRules

LEVEL_MISSING = 0
LEVEL_DIFFERENT = 1
LEVEL_MISTYPED_NICKNAME = 2  # names only

_BAND_NAMES = {1: ["close"], 2: ["similar", "close"], 3: ["fuzzy", "similar", "close"]}
_EDIT_LEVELS = ["missing", "different", "one_edit", "exact"]
_FIXED_LEVELS = {
    "exact": ["missing", "different", "exact"],
    "date": ["missing", "different", "one_part_different", "day_month_swapped", "exact"],
    "postcode": _EDIT_LEVELS,
    "number": _EDIT_LEVELS,
}

Values = Sequence[str | None]


def level_names(rules: LinkageRules) -> list[list[str]]:
    """Per field, the name of each level, index = level."""
    return [field_level_names(rule) for rule in rules.fields]


def field_level_names(rule: FieldRule) -> list[str]:
    if rule.bands:
        slipped = ["mistyped_nickname"] if rule.comparator == "name" else []
        return ["missing", "different", *slipped, *_BAND_NAMES[len(rule.bands)], "exact"]
    return list(_FIXED_LEVELS[rule.comparator])


def levels(
    pairs_left: Sequence[PersonAttributes], pairs_right: Sequence[PersonAttributes], rules: LinkageRules
) -> np.ndarray:
    """Comparison levels of pairs (pairs_left[i], pairs_right[i]): shape (n_pairs, n_fields), int8."""
    if len(pairs_left) != len(pairs_right):
        raise ValueError("pairs_left and pairs_right must hold the same number of records")
    left = {rule.name: [getattr(a, rule.name) for a in pairs_left] for rule in rules.fields}
    right = {rule.name: [getattr(a, rule.name) for a in pairs_right] for rule in rules.fields}
    columns = {rule.name: compare_field(rule, left[rule.name], right[rule.name]) for rule in rules.fields}
    by_name = {rule.name: rule for rule in rules.fields}
    for rule in rules.fields:
        if rule.swap_with and rule.name < rule.swap_with:
            _prefer_crosswise(rule, by_name[rule.swap_with], left, right, columns)
    return np.column_stack([columns[rule.name] for rule in rules.fields]).astype(np.int8)


def _prefer_crosswise(
    rule: FieldRule, other: FieldRule, left: Mapping[str, list[str | None]], right: Mapping[str, list[str | None]],
    columns: dict[str, np.ndarray],
) -> None:
    """Where the two fields agree better crosswise than straight, the values were swapped: use that.

    Either side's values may be the swapped ones, and the two fields grade differently, so both
    readings are graded and the better one kept (ties to the higher level of the first field,
    then of the second). A pair then gets the same levels whichever side comes first: the online
    linker compares pairs in the order the graph returns them.
    """
    first, second = rule.name, other.name
    straight = columns[first] + columns[second]
    rows = np.flatnonzero(straight < 2 * (len(field_level_names(rule)) - 1))  # both exact: nothing to gain
    if not len(rows):
        return
    left_first, left_second = [left[first][i] for i in rows], [left[second][i] for i in rows]
    right_first, right_second = [right[first][i] for i in rows], [right[second][i] for i in rows]
    # reading A: the right side's values were swapped; reading B: the left side's were
    a_first, a_second = compare_field(rule, left_first, right_second), compare_field(other, left_second, right_first)
    b_first, b_second = compare_field(rule, right_first, left_second), compare_field(other, right_second, left_first)
    take_b = _lexicographic_greater((b_first + b_second, b_first, b_second), (a_first + a_second, a_first, a_second))
    crossed_first, crossed_second = np.where(take_b, b_first, a_first), np.where(take_b, b_second, a_second)
    better = crossed_first.astype(np.int16) + crossed_second > straight[rows]
    columns[first][rows[better]] = crossed_first[better]
    columns[second][rows[better]] = crossed_second[better]


def _lexicographic_greater(x: Sequence[np.ndarray], y: Sequence[np.ndarray]) -> np.ndarray:
    """Elementwise: is the tuple (x[0][i], x[1][i], ...) greater than (y[0][i], y[1][i], ...)?"""
    greater = np.zeros(len(x[0]), dtype=bool)
    decided = np.zeros(len(x[0]), dtype=bool)
    for a, b in zip(x, y):
        greater |= ~decided & (a > b)
        decided |= a != b
    return greater


def compare_field(rule: FieldRule, left: Values, right: Values) -> np.ndarray:
    """Levels of one field over aligned value lists."""
    if rule.comparator in ("name", "string"):
        left, right = [squashed(v) for v in left], [squashed(v) for v in right]
    grade = _GRADERS[rule.comparator](rule)
    graded = _grade_distinct(left, right, grade)
    exact = len(field_level_names(rule)) - 1
    return np.fromiter(
        (LEVEL_MISSING if a is None or b is None else exact if a == b else graded[(a, b)] for a, b in zip(left, right)),
        dtype=np.int8,
        count=len(left),
    )


Grader = Callable[[list[str], list[str]], list[int]]


def _grade_distinct(left: Values, right: Values, grade: Grader) -> dict[tuple[str, str], int]:
    """Grades each distinct pair of differing values once: blocks repeat the same values a lot.

    Each pair is graded in one canonical order and the grade given to both orders, so that a
    comparison never depends on which record came first (Jaro's greedy matching need not be
    symmetric)."""
    distinct = sorted({(min(a, b), max(a, b)) for a, b in zip(left, right) if a is not None and b is not None and a != b})
    if not distinct:
        return {}
    graded = dict(zip(distinct, grade([a for a, _ in distinct], [b for _, b in distinct])))
    return graded | {(b, a): level for (a, b), level in graded.items()}


def _similarity_grader(rule: FieldRule) -> Grader:
    """Bands Jaro-Winkler similarity; for names a nickname counts as the closest band, a name far
    from the other but within the closest band of one of its nicknames ("miek" ~ michael's "mike")
    is one band below (a mistyped nickname says less than a nickname; a looser reading made
    unrelated names similar and cost Febrl's typo'd matches recall), and a name still far but one
    slip from a nickname ("mikw", "dno" for don) is a mistyped nickname, the level above different."""
    bands = np.asarray(rule.bands)
    is_name = rule.comparator == "name"
    top = len(field_level_names(rule)) - 2  # the closest band, below exact

    def graded_name(a: str, b: str, level: int) -> int:
        if level == top:
            return level
        if are_nicknames(a, b):
            return top
        if level == LEVEL_DIFFERENT and nickname_similarity(a, b) >= bands[-1]:
            return top - 1
        if level == LEVEL_DIFFERENT and is_mistyped_nickname(a, b):
            return LEVEL_MISTYPED_NICKNAME
        return level

    def grade(left: list[str], right: list[str]) -> list[int]:
        similarity = jarowinkler_similarity(pd.Series(left), pd.Series(right)).to_numpy()
        band = np.searchsorted(bands, similarity, side="right")
        if is_name:
            band += band > 0  # a name's bands sit above mistyped_nickname
        graded: list[int] = (LEVEL_DIFFERENT + band).tolist()
        if is_name:
            graded = [graded_name(a, b, g) for a, b, g in zip(left, right, graded)]
        return graded

    return grade


def _edit_grader(rule: FieldRule) -> Grader:
    """Codes agree closely when one typo (insertion, deletion, substitution, transposition) apart."""

    def grade(left: list[str], right: list[str]) -> list[int]:
        similarity = damerau_levenshtein_similarity(pd.Series(left), pd.Series(right)).to_numpy()
        longest = np.asarray([max(len(a), len(b)) for a, b in zip(left, right)])
        edits = np.rint((1.0 - similarity) * longest)
        graded: list[int] = np.where(edits <= 1, 2, LEVEL_DIFFERENT).tolist()
        return graded

    return grade


def _date_grader(rule: FieldRule) -> Grader:
    return lambda left, right: [_date_level(a, b) for a, b in zip(left, right)]


def _date_level(a: str, b: str) -> int:
    """Day and month swapped is a classic entry error; one part (or one digit) off is a typo."""
    if a[:4] == b[:4] and a[4:6] == b[6:8] and a[6:8] == b[4:6]:
        return 3
    parts_differing = sum(x != y for x, y in ((a[:4], b[:4]), (a[4:6], b[4:6]), (a[6:8], b[6:8])))
    if parts_differing == 1 or _one_transposition_or_substitution(a, b):
        return 2
    return LEVEL_DIFFERENT


def _one_transposition_or_substitution(a: str, b: str) -> bool:
    if len(a) != len(b):
        return False
    differing = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if len(differing) == 1:
        return True
    first, *rest = differing
    return len(differing) == 2 and rest[0] == first + 1 and a[first] == b[first + 1] and a[first + 1] == b[first]


_GRADERS: dict[str, Callable[[FieldRule], Grader]] = {
    "name": _similarity_grader,
    "string": _similarity_grader,
    "exact": lambda rule: lambda left, right: [LEVEL_DIFFERENT] * len(left),
    "date": _date_grader,
    "postcode": _edit_grader,
    "number": _edit_grader,
}
