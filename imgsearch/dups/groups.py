"""``imgsearch dups`` time: score the stored pairs, join groups by average linkage, and check the
groups against the files as they are now."""

from __future__ import annotations

import itertools
import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from imgsearch.disjoint import DisjointSets
from imgsearch.dups.pairs import (
    DEFAULT_THRESHOLD,
    Signatures,
    duplicate_score,
    pair_features,
    table_of,
    unit_rows,
)
from imgsearch.files import fresh
from imgsearch.store import Generation


@dataclass
class Group:
    rows: list[int]  # item rows, the largest file first
    similarity: list[float]  # each member's duplicate score against the first (first: 1.0)


def find_groups(
    gen: Generation, threshold: float = DEFAULT_THRESHOLD, *, exact_only: bool = False
) -> list[Group]:
    """Duplicate groups of ``gen``: exact (same bytes) and, unless ``exact_only``, near ones."""
    table = table_of(gen)
    joined = DisjointSets(gen.count)
    for a, b in table.exact.tolist():
        joined.join(a, b)
    known: dict[tuple[int, int], float] = {}
    if not exact_only and len(table.a):
        scores = duplicate_score(table.features)
        keep = scores >= min(threshold, _KNOWN_FLOOR)  # the rest count 0 in `_cross_mean` anyway
        a, b, scores = table.a[keep], table.b[keep], scores[keep]
        known = dict(zip(zip(a.tolist(), b.tolist(), strict=True), scores.tolist(), strict=True))
        _link(joined, a, b, scores, threshold, known)
    groups = _ordered(gen, [rows for rows in joined.sets() if len(rows) > 1], known)
    return sorted(groups, key=lambda g: (-len(g.rows), gen.items[g.rows[0]].path))


SAME_FILE = "same file as the first"  # a hard link to it, or the first is a symbolic link to it


@dataclass
class LeftOut:
    """What ``fresh_groups`` left out: members by reason, and groups dropped whole."""

    files: Counter[str]
    groups: int = 0

    def __bool__(self) -> bool:
        return bool(self.groups or sum(self.files.values()))

    def note(self) -> str:
        parts = [f"{sum(self.files.values())} file(s) ({fresh.describe(self.files)})"] if self.files else []
        if self.groups:
            parts.append(f"{self.groups} group(s) (first file gone or changed, or one file left)")
        return f"left out {' and '.join(parts)} since the index; run `imgsearch index` for fresh groups"


def fresh_groups(gen: Generation, groups: list[Group]) -> tuple[list[Group], LeftOut]:
    """``groups`` as the files stand now, checked right before output: a member whose file is
    gone or changed since the index (``fresh.check``) is left out, and so is a member that is
    the same file as the first (deleting it would delete the file kept). A group left with one
    member is dropped.

    A group whose *first* file is gone or changed is dropped whole rather than given a new
    first file. The first file is the one a delete pipeline keeps (``dups --copies -0 | xargs
    -0 rm``), and the others were grouped and scored against it: once it is gone, nothing the
    index knows says the rest still belong together (a crop and a recoloured copy, each close to
    the deleted original, need not be copies of each other), and a new first file would be one
    the user never saw listed as kept. Dropping the group deletes nothing; ``imgsearch index``
    then groups what is there now.
    """
    kept: list[Group] = []
    left_out = LeftOut(Counter())
    for group in groups:
        checks = [fresh.check(gen.items[r]) for r in group.rows]
        first = checks[0]
        if isinstance(first, str):
            left_out.groups += 1
            left_out.files.update(c for c in checks if isinstance(c, str))
            continue
        members = [0]
        for pos, found in enumerate(checks[1:], 1):
            if isinstance(found, str):
                left_out.files[found] += 1
            elif os.path.samestat(found, first):
                left_out.files[SAME_FILE] += 1
            else:
                members.append(pos)
        if len(members) < 2:
            left_out.groups += 1
            continue
        kept.append(Group([group.rows[p] for p in members], [group.similarity[p] for p in members]))
    return kept, left_out


# Pairs scoring below this are dropped before linking: they could only lower a cross mean, and
# counting them as 0 changes it by less than this per pair.
_KNOWN_FLOOR = 0.01


def _link(
    joined: DisjointSets,
    a: np.ndarray,
    b: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    known: dict,
) -> None:
    """Join pairs above ``threshold``, strongest first; two groups merge only when their members
    score ``threshold`` on average across the groups. Plain connected components let one
    look-alike edge chain two products' groups into one (bench/dups.py: a 13-image group, most
    of the held-out false pairs)."""
    members = {rows[0]: rows for rows in joined.sets()}  # exact duplicates are joined already
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] < threshold:
            break
        ra, rb = joined.root(int(a[i])), joined.root(int(b[i]))
        if ra == rb:
            continue
        left, right = members[ra], members[rb]
        if (len(left) > 1 or len(right) > 1) and _cross_mean(known, left, right) < threshold:
            continue
        joined.join(ra, rb)
        members[joined.root(ra)] = left + right


def _cross_mean(known: dict, left: list[int], right: list[int]) -> float:
    """Mean score over every pair across two groups. A pair that was never a candidate (not among
    each other's nearest image vectors above CANDIDATE_COSINE, no shared pHash block) counts 0:
    such pairs are not duplicates, and scoring them would cost the time the table saves."""
    pairs = [(min(x, y), max(x, y)) for x, y in itertools.product(left, right)]
    return float(np.mean([known.get(p, 0.0) for p in pairs]))


def _ordered(gen: Generation, groups: list[list[int]], known: dict) -> list[Group]:
    """Largest file first (the one to keep, usually); each member scored against it: the table's
    score where the pair is a candidate, else scored now (only those few pairs)."""
    out = []
    missing: list[tuple[int, int, int, int]] = []  # (group, position, first, row)
    for g, rows in enumerate(groups):
        rows = sorted(rows, key=lambda r: (-gen.items[r].size, gen.items[r].path))
        first = rows[0]
        sims = [1.0]
        for pos, r in enumerate(rows[1:], 1):
            if gen.items[r].sha256 is not None and gen.items[r].sha256 == gen.items[first].sha256:
                sims.append(1.0)
            elif (min(first, r), max(first, r)) in known:
                sims.append(known[(min(first, r), max(first, r))])
            else:
                sims.append(0.0)
                missing.append((g, pos, first, r))
        out.append(Group(rows, sims))
    if missing:
        a = np.array([m[2] for m in missing], np.int64)
        b = np.array([m[3] for m in missing], np.int64)
        sig = Signatures(gen.items, np.unique(np.concatenate([a, b])))
        ok = sig.has[sig.local(a)] & sig.has[sig.local(b)]
        colour = gen.vectors.get("colour")
        image = np.asarray(gen.vectors["image"], np.float32)
        scores = np.zeros(len(a))
        if ok.any():
            colour_rows = None if colour is None else unit_rows(np.asarray(colour))
            scores[ok] = duplicate_score(pair_features(image, colour_rows, sig, a[ok], b[ok]))
        for (g, pos, _, _), s in zip(missing, scores.tolist(), strict=True):
            out[g].similarity[pos] = s
    for group in out:
        group.similarity = [round(float(s), 4) for s in group.similarity]
    return out
