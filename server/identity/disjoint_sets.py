"""Disjoint sets (union-find): the one implementation behind profiles as components."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class DisjointSets(Generic[T]):
    """Sets that only ever merge. Elements are added on first mention."""

    def __init__(self, elements: Iterable[T] = ()) -> None:
        self.parent: dict[T, T] = {}
        for element in elements:
            self.parent.setdefault(element, element)

    def find(self, element: T) -> T:
        """The set's representative, compressing the path on the way."""
        root = self.parent.setdefault(element, element)
        while self.parent[root] != root:
            root = self.parent[root]
        while element != root:
            self.parent[element], element = root, self.parent[element]
        return root

    def union(self, into: T, other: T) -> T:
        """Merges other's set into into's; into's representative stays the representative
        (the caller decides which side survives, e.g. the larger profile)."""
        root, absorbed = self.find(into), self.find(other)
        if root != absorbed:
            self.parent[absorbed] = root
        return root

    def groups(self) -> list[set[T]]:
        grouped: dict[T, set[T]] = {}
        for element in list(self.parent):
            grouped.setdefault(self.find(element), set()).add(element)
        return list(grouped.values())
