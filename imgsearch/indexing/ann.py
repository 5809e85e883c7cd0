"""Nearest-neighbour search over one vector space.

Rows are float32 and L2-normalised, so cosine similarity is a plain dot product.
Small collections are searched exactly with numpy: below ``EXACT_BELOW`` rows that
is faster than Annoy as well as exact, and there is no index file to build or keep
in sync.  Larger collections go through an Annoy forest memory-mapped from disk;
Annoy only proposes candidates, which are re-scored against the stored vectors, so
every score this module returns is an exact cosine whichever path produced it.

An index in parts (``build_index(parts=N)``, ``imgsearch index --parts N``) is one Annoy
forest per contiguous slice of the rows. A search asks every part for its nearest items with
a share of the node budget, keeps the best by Annoy's distance and re-scores them against the
stored vectors, so scores are the ones a single index gives; ``bench/scale_query.py`` measures
recall and latency by part count.

An all-zero row means "this item has no vector in this space": it is never added
to the Annoy index and never returned by either path.

Speed against recall: recall rises and latency grows with ``search_k`` (per query,
no rebuild needed) and with ``trees`` (at build time; costs build time and disk).
See the constants below and ``bench/query_latency.py`` for the measured trade-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annoy
import numpy as np

from imgsearch.cache import atomic_path, file_sha256

# All figures: bench/query_latency.py, 100k clustered synthetic unit vectors, k=10,
# 200 held-out queries, 2-core x86_64 AMD EPYC (shared), annoy 1.17.3 (no AVX), numpy 2.4.

# Trees: at search_k=4000 recall@10 was 0.984 / 0.977 / 0.985 with 10 / 25 / 50 trees
# (dim 384) and 0.987 / 0.984 / 0.988 (dim 1280): more trees bought no recall at this
# budget but cost build time (384: 6.8 / 11.2 / 22.0 s; 1280: 16.6 / 36.2 / 46.1 s) and
# disk (384: 163 / 186 / 224 MB; 1280: 504 / 526 / 562 MB; the vectors alone are 147 / 488 MB).
DEFAULT_TREES = 10

# search_k = max(k, MIN_CANDIDATES) * this.  With 10 trees, per-result budgets
# 50 / 100 / 200 / 400 / 800 / 1600 gave recall@10 0.861 / 0.911 / 0.945 / 0.984 / 1.000 / 1.000
# at p50 0.32 / 0.42 / 0.59 / 1.10 / 2.28 / 4.34 ms (dim 384), and 0.922 / 0.935 / 0.963 /
# 0.987 / 0.998 / 1.000 at p50 0.85 / 1.09 / 1.16 / 1.49 / 2.27 / 6.16 ms (dim 1280).
# 400 is the smallest that clears the 0.97 target in both; p99 1.9 ms / 2.9 ms.
# Trade speed for recall by passing search_k to VectorIndex.search (200 per result: ~0.95,
# about half the time; 800: ~1.0, about twice the time), or more trees at build time.
DEFAULT_SEARCH_K_PER_RESULT = 400

# Exact numpy p50 vs Annoy (defaults above) p50, single-threaded BLAS, in ms:
#   dim 384:  5k 0.27 vs 0.47, 8k 0.50 vs 0.74, 9k 0.79 vs 0.75, 10k 1.02 vs 0.80,
#             20k 2.30 vs 0.72, 100k 14.6 vs 0.96;
#   dim 1280: 5k 1.56 vs 1.74, 6k 1.92 vs 1.64, 8k 2.56 vs 2.22, 10k 3.33 vs 2.07,
#             20k 9.1 vs 1.9, 100k 32.1 vs 2.1.
# The crossover is ~9k rows at dim 384 and ~5.5k at dim 1280; 8k is between, and just
# below it exact search costs at most ~0.4 ms more while needing no build or index file.
# (With OpenBLAS's default 2 threads on this shared box, exact from ~20k rows got slower and
# noisier still: 4-12 ms at 20k rows.)
EXACT_BELOW = 8_000

# Annoy is asked for at least this many candidates, so a k=1 query gets the search budget
# that recall@10 was measured with.  Asking for more candidates than k gains nothing:
# Annoy already ranks every item it inspects by exact distance (100k x 384, search_k=4000:
# recall@10 0.984 with 10, 20 or 50 candidates re-scored).
MIN_CANDIDATES = 10

# An index in parts gives each part this many parts' shares of the search budget. bench/scale_query.py
# --part shards, 1M × 384, 16 parts against one index (k=10 p50 / recall@10; 300 candidates p50):
# clustered mixture, one index 1.19 ms / 0.791; 1.74 ms; 1 share 2.09 / 0.831; 3.16 ms; 2 shares
# 1.87 / 0.888; 3.01 ms; 3 shares 1.88 / 0.916; 3.53 ms. The fashion store repeated 100× with
# noise (a hard case): one index 0.710 recall, 2 shares 0.684, 3 shares 0.744 but 2.9× the
# latency. 2 keeps a 16-way fan-out within 2× of one index at about its recall.
PART_BUDGET = 2

# Fixed so that rebuilding the same vectors gives the same file.
_ANNOY_SEED = 1234


def _as_matrix(vectors: np.ndarray) -> np.ndarray:
    """The stored rows as a 2-D float32 array (no copy when already so)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"vectors must be 2-D (rows, dim), got shape {matrix.shape}")
    return matrix


def _valid_rows(vectors: np.ndarray) -> np.ndarray:
    """Boolean mask of rows that hold a vector (all-zero rows are 'no vector')."""
    return np.any(vectors != 0, axis=1)


def _unit_query(query: np.ndarray, dim: int) -> np.ndarray | None:
    """The query as a unit float32 vector, or None when it is all zeros.

    Normalising here keeps the returned scores true cosines even if a caller
    passes an unnormalised query; for a unit query it changes nothing.
    """
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    if q.shape[0] != dim:
        raise ValueError(f"query has dimension {q.shape[0]}, index has {dim}")
    norm = float(np.linalg.norm(q))
    return None if norm == 0.0 else q / np.float32(norm)


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)


def _best_first(rows: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (rows, sims) pairs, highest score first, ties by row id."""
    if k < len(rows):
        keep = np.argpartition(-sims, k - 1)[:k]
        rows, sims = rows[keep], sims[keep]
    order = np.lexsort((rows, -sims))
    return rows[order].astype(np.int64, copy=False), sims[order].astype(np.float32, copy=False)


def _save_annoy(vectors: np.ndarray, rows: np.ndarray, start: int, path: Path, trees: int) -> None:
    """Build an angular Annoy forest over ``rows`` and write it to ``path`` atomically.

    Item ids are the row numbers less ``start`` (the first row of this part), so skipped rows
    leave holes that Annoy never returns.  Rows go in as lists: measurably faster than numpy
    rows in add_item.
    """
    index = annoy.AnnoyIndex(vectors.shape[1], "angular")
    index.set_seed(_ANNOY_SEED)
    for row in rows.tolist():
        index.add_item(row - start, vectors[row].tolist())
    index.build(trees, n_jobs=-1)  # Annoy builds the trees of one part on every core
    with atomic_path(path) as tmp:
        if not index.save(str(tmp)):
            raise OSError(f"annoy could not write {tmp}")
        index.unload()  # release the mmap of tmp before it is renamed


def part_path(path: Path, part: int, parts: int) -> Path:
    """The file of one part of an index in parts: ``image.ann`` → ``image-03-of-16.ann``."""
    return path if parts == 1 else path.with_name(f"{path.stem}-{part:02d}-of-{parts:02d}{path.suffix}")


def part_bounds(rows: int, valid: int, wanted: int, min_part: int | None = None) -> np.ndarray:
    """Row boundaries of the parts: ``wanted`` contiguous slices of the rows, fewer where a part
    would hold under ``min_part`` vectors (default ``EXACT_BELOW``: one index is cheaper than a
    fan-out to tiny ones)."""
    floor = max(1, EXACT_BELOW if min_part is None else min_part)
    parts = max(1, min(int(wanted), valid // floor))
    return np.linspace(0, rows, parts + 1).round().astype(np.int64)


def build_index(
    vectors: np.ndarray,
    path: Path,
    *,
    trees: int | None = None,
    exact_below: int | None = None,
    parts: int = 1,
) -> dict[str, Any]:
    """Build what ``VectorIndex.load`` needs for ``vectors``; return its JSON-able description.

    With fewer than ``exact_below`` (default ``EXACT_BELOW``) non-zero rows nothing is written: exact search
    is faster there.  Otherwise Annoy indexes with ``trees`` trees (default
    ``DEFAULT_TREES``) replace ``path`` atomically: one, or with ``parts`` > 1 one per
    contiguous slice of the rows (``part_path``; ``parts`` in the result lists them). A query
    searches every part and merges them exactly (``VectorIndex``). ``rows`` in the result is
    ``len(vectors)``, so a later load can tell the index was built for other vectors.
    """
    matrix = _as_matrix(vectors)
    valid = _valid_rows(matrix)
    count = int(valid.sum())
    info: dict[str, Any] = {
        "method": "exact",
        "trees": 0,
        "count": count,
        "dim": int(matrix.shape[1]),
        "rows": int(matrix.shape[0]),
    }
    exact_below = EXACT_BELOW if exact_below is None else exact_below
    if count < exact_below:
        return info
    n_trees = DEFAULT_TREES if trees is None else int(trees)
    if n_trees < 1:
        raise ValueError(f"trees must be >= 1, got {n_trees}")
    bounds = part_bounds(len(matrix), count, parts, exact_below)
    listed = []
    for j, (start, stop) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
        file = part_path(Path(path), j, len(bounds) - 1)
        _save_annoy(matrix, start + np.flatnonzero(valid[start:stop]), start, file, n_trees)
        # size: checked at every open (a cut-short Annoy file is read past its end: a segfault);
        # sha256: checked by `imgsearch index`, which rebuilds what does not match
        size, digest = file.stat().st_size, file_sha256(file)
        listed.append({"file": file.name, "start": start, "stop": stop, "size": size, "sha256": digest})
    return {**info, "method": "annoy", "trees": n_trees, "parts": listed}


@dataclass(frozen=True)
class AnnOptions:
    """How ``imgsearch index`` builds the Annoy indexes of a store."""

    trees: int | None = None  # None: DEFAULT_TREES
    parts: int | None = None  # None: as many parts as the live index, else 1

    def parts_or(self, default: int) -> int:
        return self.parts if self.parts is not None else max(1, default)


@dataclass(frozen=True)
class _Part:
    """One Annoy index over the rows ``start`` to ``stop`` (its item ids are ``row - start``)."""

    annoy: annoy.AnnoyIndex
    start: int
    stop: int


class VectorIndex:
    """Top-k cosine search over the rows of one vector matrix.

    Holds the vectors (needed for exact scores on both paths) and, for large
    collections, memory-mapped Annoy indexes (one, or one per part of an index in parts)
    that propose candidates.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        parts: list[_Part] | None = None,
        *,
        all_present: bool = False,
        present: np.ndarray | None = None,
    ):
        self._vectors = _as_matrix(vectors)
        # the build recorded which rows hold a vector (all of them, or a stored mask): a cold query
        # need not read every vector once to find out (the whole matrix from disk: seconds at 1M)
        if present is not None:
            self._valid = np.asarray(present, bool)
        elif all_present:
            self._valid = np.ones(len(self._vectors), bool)
        else:
            self._valid = _valid_rows(self._vectors)
        self._all_valid = bool(self._valid.all())
        self._count = int(self._valid.sum())
        self._parts = parts or []

    @classmethod
    def load(
        cls, vectors: np.ndarray, path: Path | None, info: dict[str, Any], present: np.ndarray | None = None
    ) -> VectorIndex:
        """Open the index that ``build_index(vectors, path)`` described with ``info``.

        The Annoy files (``path``, or the parts listed in ``info`` beside it) are
        memory-mapped without prefaulting, so opening is instant and only the pages a
        query touches are read.  Raises ValueError when ``info`` does not match
        ``vectors`` (a stale index would miss new rows).
        """
        matrix = _as_matrix(vectors)
        _check_info(matrix, info)
        all_present = info.get("count") is not None and int(info["count"]) == len(matrix)
        if present is not None and (
            len(present) != len(matrix)
            or ("count" in info and int(np.count_nonzero(present)) != int(info["count"]))
        ):
            raise ValueError("the presence mask does not match the index; rebuild it")
        if info.get("method") != "annoy":
            return cls(matrix, all_present=all_present, present=present)
        if path is None:
            raise ValueError("info says 'annoy' but no index path was given")
        parts = []
        for start, stop, file in part_files(Path(path), info, len(matrix)):
            index = annoy.AnnoyIndex(matrix.shape[1], "angular")
            if not index.load(str(file), prefault=False):
                for part in parts:
                    part.annoy.unload()
                raise OSError(f"annoy could not load {file}")
            parts.append(_Part(index, start, stop))
        loaded = cls(matrix, parts, all_present=all_present, present=present)
        if info.get("count") is not None and int(info["count"]) != len(loaded):
            loaded.close()
            raise ValueError(f"index holds {info['count']} vectors, matrix has {len(loaded)}; rebuild it")
        return loaded

    @property
    def present(self) -> np.ndarray:
        """Boolean mask of the rows that have a vector in this space (non-zero rows)."""
        return self._valid

    @property
    def method(self) -> str:
        return "exact" if not self._parts else "annoy"

    @property
    def part_count(self) -> int:
        """How many Annoy indexes a search fans out to (0: exact search)."""
        return len(self._parts)

    def __len__(self) -> int:
        """Number of searchable (non-zero) rows."""
        return self._count

    def close(self) -> None:
        """Release the Annoy memory maps (searches fall back to exact afterwards)."""
        for part in self._parts:
            part.annoy.unload()
        self._parts = []

    def search(
        self, query: np.ndarray, k: int, *, search_k: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows most similar to ``query``: (row ids int64, cosines float32), best first.

        ``search_k`` is Annoy's node budget (ignored on the exact path); None means
        ``max(k, MIN_CANDIDATES) * DEFAULT_SEARCH_K_PER_RESULT``.  Raise it for
        recall, lower it for speed.  Fewer than ``k`` results come back only when
        fewer rows are searchable.
        """
        q = _unit_query(query, self._vectors.shape[1])
        if q is None or k <= 0 or self._count == 0:
            return _empty()
        if not self._parts:
            return self._search_exact(q, k)
        return self._search_annoy(q, k, search_k)

    def search_batch(
        self, queries: np.ndarray, k: int, *, search_k: int | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``search`` for each row of a 2-D ``queries`` array."""
        return [self.search(q, k, search_k=search_k) for q in np.atleast_2d(queries)]

    def scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosine of ``query`` with each of ``rows`` (float32, same order).

        Zero rows score 0.  Used to re-rank candidates coming from another space.
        """
        return cosines(self._vectors[np.asarray(rows, dtype=np.int64).reshape(-1)], query)

    def _search_exact(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = self._vectors @ q
        if self._all_valid:
            return _best_first(np.arange(len(sims)), sims, k)
        rows = np.flatnonzero(self._valid)
        return _best_first(rows, sims[rows], k)

    def _search_annoy(self, q: np.ndarray, k: int, search_k: int | None) -> tuple[np.ndarray, np.ndarray]:
        n = max(k, MIN_CANDIDATES)
        budget = n * DEFAULT_SEARCH_K_PER_RESULT if search_k is None else int(search_k)
        rows = self._merged_candidates(q.tolist(), n, _part_budget(budget, len(self._parts), n))
        rows = rows[self._valid[rows]]  # belt and braces: holes are never added
        return _best_first(rows, self._vectors[rows] @ q, k)

    def _merged_candidates(self, vector: list[float], n: int, budget: int) -> np.ndarray:
        """The ``n`` nearest of every part's ``n`` nearest, by Annoy's own distance (the same
        float32 vectors, so the same order as the cosines the caller then recomputes). One part
        gets the whole budget and returns at most ``n``: its candidates, as before indexes had parts."""
        found, distances = [], []
        for part in self._parts:
            ids, dist = part.annoy.get_nns_by_vector(vector, n, search_k=budget, include_distances=True)
            found.append(np.asarray(ids, np.int64) + part.start)
            distances.append(np.asarray(dist, np.float32))
        rows, dist = np.concatenate(found), np.concatenate(distances)
        if len(rows) > n:
            rows = rows[np.argpartition(dist, n - 1)[:n]]
        return rows


def cosines(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine of ``query`` with each row of unit ``vectors`` (0 for a zero query or row)."""
    q = _unit_query(query, vectors.shape[1])
    if q is None:
        return np.zeros(len(vectors), dtype=np.float32)
    return (np.asarray(vectors, np.float32) @ q).astype(np.float32, copy=False)


def part_count(info: dict[str, Any]) -> int:
    """How many Annoy indexes ``info`` describes: 0 for exact search, 1 for a store older than parts."""
    return len(info.get("parts") or [None]) if info.get("method") == "annoy" else 0


def _part_budget(budget: int, parts: int, n: int) -> int:
    """Annoy's node budget for each part of an index in parts: ``PART_BUDGET`` shares of the whole
    budget (never more than all of it, never under ``n``: a part must be able to return ``n``)."""
    if parts == 1:
        return budget  # one index: the caller's budget as given
    return max(n, min(budget, -(-PART_BUDGET * budget // parts)))


def part_files(path: Path, info: dict[str, Any], rows: int) -> list[tuple[int, int, Path]]:
    """(start, stop, file) of each Annoy part of the index ``build_index(..., path)`` described
    with ``info``; a store from before parts has one. Raises ValueError when they do not
    cover the ``rows`` in order."""
    parts = info.get("parts") or [{"file": path.name, "start": 0, "stop": rows}]
    out, expected = [], 0
    for part in parts:
        start, stop = int(part["start"]), int(part["stop"])
        if start != expected or stop < start:
            raise ValueError("index parts do not cover the rows in order; rebuild it")
        file = path.with_name(str(part["file"]))
        _check_size(file, part.get("size"))
        out.append((start, stop, file))
        expected = stop
    if expected != rows:
        raise ValueError("index parts do not cover every row; rebuild it")
    return out


def _check_size(file: Path, size: object) -> None:
    """Refuse an Annoy file whose size is not the one recorded when it was built (None: an index
    from before sizes were recorded). Annoy maps the file and trusts it: a truncated one is read
    past its end (SIGSEGV/SIGBUS), so this stat is what stands between damage and a crash."""
    if size is None:
        return
    try:
        found = file.stat().st_size
    except OSError:
        raise ValueError(f"{file.name} is missing") from None
    if found != size:
        raise ValueError(f"{file.name} is {found} bytes, {size} when it was built (damaged)")


def damaged_parts(path: Path, info: dict[str, Any], rows: int) -> list[str]:
    """Why each Annoy file of the index ``info`` describes does not match what was recorded when it
    was built (size, then sha256: reads every file whole, so `index` time, never query time); an
    index from before checksums were recorded is reported too, so it is rebuilt once with them."""
    if info.get("method") != "annoy":
        return []
    try:
        files = part_files(path, info, rows)
    except ValueError as exc:
        return [str(exc)]
    found = []
    for part, (_, _, file) in zip(info.get("parts") or [{}], files, strict=True):
        if not part.get("sha256"):
            found.append(f"{file.name} has no checksum (an index from before they were recorded)")
        elif file_sha256(file) != part["sha256"]:
            found.append(f"{file.name} does not match its checksum (damaged)")
    return found


def _check_info(vectors: np.ndarray, info: dict[str, Any]) -> None:
    """Refuse an ``info`` that was built for vectors of another shape."""
    dim = info.get("dim")
    if dim is not None and int(dim) != vectors.shape[1]:
        raise ValueError(f"index was built for dimension {dim}, vectors have {vectors.shape[1]}")
    rows = info.get("rows")
    if rows is not None and int(rows) != vectors.shape[0]:
        raise ValueError(f"index was built for {rows} rows, vectors have {vectors.shape[0]}; rebuild it")
