"""Decision guards: pairs never linked automatically, whatever the model scores.

Fellegi-Sunter adds up each field's evidence as if fields agreed independently. Two kinds
of strangers break that: household members share surname, street, number, postcode and
town at once, and namesakes share both names. Their summed agreement can outweigh the one
field that tells them apart, so these rules look at the fields a person is told apart by.
A guarded pair is kept as a possible match for a reviewer instead of being linked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from server.identity.linkage.compare import level_names
from server.identity.linkage.linkage_config import LinkageRules

NAMES_AND_DOB_DISAGREE = "names and date of birth all disagree"
HOUSEHOLD = "household: same surname and address, another given name, and no matching date of birth"
NAMESAKE = "namesake: same names, different address and date of birth"

_NOT_AGREEING = ("missing", "different")


class Guards:
    """Evaluates the configured guards on comparison levels."""

    def __init__(self, rules: LinkageRules) -> None:
        self.rules = rules
        self.names = {rule.name: names for rule, names in zip(rules.fields, level_names(rules))}
        self.column = {name: index for index, name in enumerate(rules.field_names)}

    def reasons(self, matrix: np.ndarray) -> list[str | None]:
        """Per row of levels, the first guard that stops the pair, or None."""
        return [self.reason(row) for row in np.atleast_2d(matrix)]

    def reason(self, row: Sequence[int]) -> str | None:
        guards = self.rules.guards
        if self._level(row, "national_id") == "exact":
            return None  # one national id: one person, whatever else was mistyped
        if guards.names_and_dob_disagree and not any(
                self._agrees(row, f) for f in ("given_name", "surname", "date_of_birth")):
            return NAMES_AND_DOB_DISAGREE
        if guards.household and self._household(row):
            return HOUSEHOLD
        if guards.namesake and self._namesake(row):
            return NAMESAKE
        return None

    def _household(self, row: Sequence[int]) -> bool:
        """Two people of one home: what they share says nothing about being one person, and
        another given name without a matching birth date says they are not."""
        same_address = self._agrees(row, "address_1") and not self._differs(row, "street_number")
        other_given = self._differs(row, "given_name")
        return (self._agrees(row, "surname") and same_address and other_given
                and self._level(row, "date_of_birth") not in ("exact", "day_month_swapped"))

    def _namesake(self, row: Sequence[int]) -> bool:
        other_address = self._differs(row, "address_1") and self._differs(row, "postcode")
        return (self._agrees(row, "given_name") and self._agrees(row, "surname") and other_address
                and self._differs(row, "date_of_birth"))

    def _level(self, row: Sequence[int], field: str) -> str | None:
        """The level's name, or None when the field is not compared."""
        column = self.column.get(field)
        return None if column is None else self.names[field][int(row[column])]

    def _agrees(self, row: Sequence[int], field: str) -> bool:
        level = self._level(row, field)
        return level is not None and level not in _NOT_AGREEING

    def _close(self, row: Sequence[int], field: str) -> bool:
        """Agrees at one of the field's two highest levels (john ~ joan is only similar)."""
        column = self.column.get(field)
        return column is not None and int(row[column]) >= len(self.names[field]) - 2

    def _differs(self, row: Sequence[int], field: str) -> bool:
        return self._level(row, field) == "different"
