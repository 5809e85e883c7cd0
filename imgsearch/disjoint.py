"""Disjoint sets (union-find): which items end up together once pairs of them are joined. Used for
duplicate groups (``dups.groups``) and for the groups of log queries that liked a common item
(``train.from_log``)."""

from __future__ import annotations


class DisjointSets:
    """``n`` items, each alone at first; ``join`` merges two sets, ``root`` names an item's set
    (the smallest item of it, so a set's name does not depend on the order of joins)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def root(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving: later lookups are shorter
            x = parent[x]
        return x

    def join(self, a: int, b: int) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def sets(self) -> list[list[int]]:
        """Every set's items, ascending; sets in the order of their smallest item."""
        found: dict[int, list[int]] = {}
        for x in range(len(self.parent)):
            found.setdefault(self.root(x), []).append(x)
        return list(found.values())
