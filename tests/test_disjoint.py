"""imgsearch.disjoint: the sets union-find gives are the connected components of the joined pairs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from imgsearch.disjoint import DisjointSets

PAIRS = st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=30)


def _components(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components by repeated merging: the slow obvious way."""
    sets = [{i} for i in range(n)]
    for a, b in pairs:
        sa, sb = next(s for s in sets if a in s), next(s for s in sets if b in s)
        if sa is not sb:
            sets.remove(sb)
            sa |= sb
    return sorted(sorted(s) for s in sets)


@given(PAIRS)
def test_sets_are_the_connected_components_named_by_their_smallest_item(pairs):
    joined = DisjointSets(12)
    for a, b in pairs:
        joined.join(a, b)
    sets = joined.sets()
    assert sets == _components(12, pairs)
    assert all(joined.root(x) == s[0] for s in sets for x in s)
