"""Exact and near-duplicate images in an index (``imgsearch dups``).

At embed time every file gets a small signature, computed from the bytes and the image that
``embed`` decodes anyway: a SHA-256 of the file bytes (exact duplicates), a 64-bit DCT
perceptual hash (pHash) and a 32×32 grayscale thumbnail (1 KB).

At ``dups`` time the image vectors only *propose* candidate pairs: each item's nearest
neighbours through the index (Annoy above ``index.EXACT_BELOW`` items, exact below), plus items
whose pHashes share a 16-bit block (a resized, recompressed copy can fall out of the vector
neighbourhood, since Lite0 sees the blur, while its pHash barely moves). Each pair is then
scored by a logistic model over four cheap features: the image cosine, the best correlation of
the two thumbnails over a small grid of crops and shifts (an edited copy lines up, a look-alike
product does not), the pHash distance and the colour-histogram cosine. Pairs at or above the
threshold are edges; groups are connected components.

Why not a cosine threshold alone: look-alike products on white backgrounds are as close in Lite0
space as edited copies of one photo (bench/dups.py: no cosine threshold reaches precision 0.5
at recall 0.5 there), while the thumbnails and hashes see the pixels.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from imgsearch.images import open_image, read_file, resize_center_crop
from imgsearch.store import Generation

THUMB = 32  # thumbnail side: 32×32 gray lined up separated copies from look-alikes as well as 32×32 RGB
_DCT_SIDE = 32  # pHash: 32×32 grayscale, DCT, the 8×8 lowest frequencies against their median

# Candidate proposal. The ANN asks for this many neighbours per item above a loose cosine: edited
# copies of one photo are among an item's nearest few (bench/dups.py: every family of 5 fits).
NEIGHBOURS = 8
CANDIDATE_COSINE = 0.70  # below it no duplicate pair was seen in bench/dups.py (1st pct 0.71)
ANNOY_SEARCH_K = 400  # node budget per item: near-duplicates share leaves, a small budget finds them
PHASH_CANDIDATE_BITS = 8  # pHash-proposed pairs further apart than this are not scored
PHASH_BUCKET_CAP = 64  # a 16-bit block shared by more items (blank images...) proposes nothing

# Logistic model: P(duplicate) = sigmoid(b0 + b·[cosine, aligned, phash_bits/64, colour]).
# Fitted by `python bench/dups.py --fit` on the development half's candidate pairs (1,487 pairs,
# 356 duplicates); the thumbnail alignment carries most of the weight.
WEIGHTS = (-93.81, 20.28, 76.94, -6.6, 5.71)
# Default threshold on that score: the best development-half F1 with precision ≥ 0.97 in
# bench/dups.py's sweep, with groups joined by average linkage (`_link`): 0.7, P 0.994 R 0.900
# (0.8 ties it; 0.9: 0.997 / 0.850; 0.5: 0.966 / 0.933).
DEFAULT_THRESHOLD = 0.7

# Crop/shift grid for lining up thumbnails: an edited copy may lose a few % at each edge.
_SCALES = (1.0, 0.95, 0.90)
_OFFSETS = 3  # positions per axis for each scale below 1


# --- embed time ---------------------------------------------------------------------------------


def decode_and_sign(source: str | bytes, size: int) -> tuple[np.ndarray, dict[str, str]]:
    """Model pixels (``size``×``size``×3 uint8) and the item's duplicate signature, one read
    (``source``: a path, or the file's bytes already read, e.g. by a Beam worker)."""
    data = source if isinstance(source, bytes) else read_file(source)
    img = open_image(data, min_size=size)
    pixels = np.asarray(resize_center_crop(img, size), dtype=np.uint8)
    return pixels, signature(data, img)


def signature(data: bytes, img: Image.Image) -> dict[str, str]:
    """``sha256`` of the bytes, ``phash`` (16 hex digits), ``thumb`` (base64 32×32 gray)."""
    gray = img.convert("L")
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "phash": f"{phash(gray):016x}",
        "thumb": base64.b64encode(thumbnail_gray(gray).tobytes()).decode("ascii"),
    }


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    d[0] /= np.sqrt(2.0)
    return d


_DCT = _dct_matrix(_DCT_SIDE)


def phash(gray: Image.Image) -> int:
    """64-bit perceptual hash: signs of the 8×8 lowest DCT frequencies against their median."""
    small = gray.resize((_DCT_SIDE, _DCT_SIDE), Image.Resampling.LANCZOS)
    low = (_DCT @ np.asarray(small, np.float64) @ _DCT.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])  # the DC term says only how bright, not what
    return int("".join("1" if b else "0" for b in bits), 2)


def thumbnail_gray(gray: Image.Image) -> np.ndarray:
    """The whole image squeezed to THUMB×THUMB (aspect ignored, as an edited copy keeps it)."""
    return np.asarray(gray.resize((THUMB, THUMB), Image.Resampling.BOX), np.uint8)


# --- dups time ----------------------------------------------------------------------------------


@dataclass
class Group:
    rows: list[int]  # item rows, the largest file first
    similarity: list[float]  # each member's duplicate score against the first (first: 1.0)


class _Signatures:
    """Signature columns of a generation; thumbnails decoded only for the rows that need them."""

    def __init__(self, gen: Generation) -> None:
        self.items = gen.items
        self.has = np.array([i.sha256 is not None and i.thumb is not None for i in gen.items], bool)
        self.phash = np.array([int(i.phash, 16) if i.phash else 0 for i in gen.items], np.uint64)
        colour = np.asarray(gen.vectors["colour"], np.float32) if "colour" in gen.vectors else None
        self.colour = None if colour is None else _unit_rows(colour)

    def thumbs(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), THUMB, THUMB) float32 thumbnails."""
        raw = b"".join(base64.b64decode(self.items[r].thumb or "") for r in rows.tolist())
        return np.frombuffer(raw, np.uint8).reshape(len(rows), THUMB, THUMB).astype(np.float32)

    def plain(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), THUMB²) zero-mean unit-norm thumbnails."""
        return _normalise(self.thumbs(rows)).reshape(len(rows), -1)

    def warps(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), grid size, THUMB²): every crop/shift of the grid, normalised."""
        w = _WARP_Y[None] @ self.thumbs(rows)[:, None] @ _WARP_XT[None]
        return _normalise(w.reshape(-1, THUMB, THUMB)).reshape(len(rows), len(_WARP_Y), -1)


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def _normalise(stack: np.ndarray) -> np.ndarray:  # (n, THUMB, THUMB)
    """Zero mean, unit norm per image: correlation ignores brightness and contrast changes."""
    centred = stack - stack.mean(axis=(1, 2), keepdims=True)
    return centred / np.maximum(np.sqrt((centred**2).sum(axis=(1, 2), keepdims=True)), 1e-6)


def _resample(n: int, start: float, length: float) -> np.ndarray:
    """Bilinear resampling matrix: n samples spread over [start, start + length) of an n-grid."""
    x = np.clip(start + (np.arange(n) + 0.5) * length / n - 0.5, 0, n - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    m = np.zeros((n, n), np.float32)
    np.add.at(m, (np.arange(n), lo), 1 - (x - lo))
    np.add.at(m, (np.arange(n), hi), x - lo)
    return m


def _warp_grid() -> tuple[np.ndarray, np.ndarray]:
    ys, xs = [], []
    for s in _SCALES:
        span = THUMB * s
        offsets = [0.0] if s == 1.0 else np.linspace(0, THUMB - span, _OFFSETS)
        for oy in offsets:
            for ox in offsets:
                ys.append(_resample(THUMB, oy, span))
                xs.append(_resample(THUMB, ox, span).T)
    return np.stack(ys), np.stack(xs)


_WARP_Y, _WARP_XT = _warp_grid()


def aligned_correlation(sig: _Signatures, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair, the best thumbnail correlation with either image cropped and shifted over the grid.

    Pairs are taken in blocks of ``_BLOCK`` distinct first rows, so the warped thumbnails of a
    block are made once and memory stays bounded however many pairs there are.
    """
    best = np.full(len(a), -1.0)
    rows = np.unique(np.concatenate([a, b]))
    plain = np.concatenate([sig.plain(rows[k : k + 4096]) for k in range(0, len(rows), 4096)] or [[]])
    for x, y in ((a, b), (b, a)):
        y_plain = np.searchsorted(rows, y)
        order = np.argsort(x, kind="stable")
        firsts, starts = np.unique(x[order], return_index=True)
        bounds = [*starts.tolist(), len(order)]
        for k in range(0, len(firsts), _BLOCK):
            warps = sig.warps(firsts[k : k + _BLOCK])
            for i, warped in enumerate(warps):  # one small BLAS product per row: no per-pair copies
                pairs = order[bounds[k + i] : bounds[k + i + 1]]
                corr = (warped @ plain[y_plain[pairs]].T).max(axis=0)
                best[pairs] = np.maximum(best[pairs], corr)
    return best


_BLOCK = 64


def pair_features(gen: Generation, sig: _Signatures, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 4): image cosine, aligned thumbnail correlation, pHash bits / 64, colour cosine."""
    image = np.asarray(gen.vectors["image"], np.float32)  # once into memory: fancy indexing a memmap is slow
    cos = np.concatenate(
        [
            np.einsum("ij,ij->i", image[a[k : k + 8192]], image[b[k : k + 8192]])
            for k in range(0, len(a), 8192)
        ]
        or [np.empty(0, np.float32)]
    )
    aligned = aligned_correlation(sig, a, b)
    bits = np.array([(int(x) ^ int(y)).bit_count() for x, y in zip(sig.phash[a], sig.phash[b], strict=True)])
    colour = (
        np.einsum("ij,ij->i", sig.colour[a], sig.colour[b]) if sig.colour is not None else np.ones(len(a))
    )
    return np.column_stack([cos, aligned, bits / 64.0, colour]).astype(np.float64)


def duplicate_score(features: np.ndarray) -> np.ndarray:
    b0, *b = WEIGHTS
    return 1.0 / (1.0 + np.exp(-(b0 + features @ np.asarray(b))))


def find_groups(
    gen: Generation, threshold: float = DEFAULT_THRESHOLD, *, exact_only: bool = False
) -> list[Group]:
    """Duplicate groups of ``gen``: exact (same bytes) and, unless ``exact_only``, near ones."""
    sig = _Signatures(gen)
    parent = list(range(gen.count))
    for a, b in _exact_pairs(gen):
        _union(parent, a, b)
    if not exact_only:
        a, b = candidate_pairs(gen, sig)
        if len(a):
            scores = duplicate_score(pair_features(gen, sig, a, b))
            _link(gen, sig, parent, a, b, scores, threshold)
    members: dict[int, list[int]] = {}
    for row in range(gen.count):
        members.setdefault(_find(parent, row), []).append(row)
    groups = [_ordered(gen, sig, rows) for rows in members.values() if len(rows) > 1]
    return sorted(groups, key=lambda g: (-len(g.rows), gen.items[g.rows[0]].path))


def _link(
    gen: Generation,
    sig: _Signatures,
    parent: list[int],
    a: np.ndarray,
    b: np.ndarray,
    scores: np.ndarray,
    threshold: float,
) -> None:
    """Join pairs above ``threshold``, strongest first; two groups merge only when their members
    score ``threshold`` on average across the groups. Plain connected components let one
    look-alike edge chain two products' groups into one (bench/dups.py: a 13-image group, most
    of the held-out false pairs)."""
    members: dict[int, list[int]] = {}
    for row in range(gen.count):  # exact duplicates are joined already
        members.setdefault(_find(parent, row), []).append(row)
    # scores already known (every candidate pair); cross pairs of a merge are mostly among them
    known = dict(zip(zip(a.tolist(), b.tolist(), strict=True), scores.tolist(), strict=True))
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] < threshold:
            break
        ra, rb = _find(parent, int(a[i])), _find(parent, int(b[i]))
        if ra == rb:
            continue
        left, right = members[ra], members[rb]
        if (len(left) > 1 or len(right) > 1) and _cross_mean(known, left, right) < threshold:
            continue
        _union(parent, ra, rb)
        root = _find(parent, ra)
        members[root] = left + right


def _cross_mean(known: dict, left: list[int], right: list[int]) -> float:
    """Mean score over every pair across two groups. A pair that was never a candidate (not among
    each other's nearest image vectors above cosine 0.70, no shared pHash block) counts 0: scoring
    such pairs cost most of `dups`'s time on 10k items and they are not duplicates."""
    pairs = [(min(x, y), max(x, y)) for x, y in itertools.product(left, right)]
    return float(np.mean([known.get(p, 0.0) for p in pairs]))


def _exact_pairs(gen: Generation) -> list[tuple[int, int]]:
    first: dict[str, int] = {}
    pairs = []
    for row, item in enumerate(gen.items):
        if item.sha256 is None:
            continue
        if item.sha256 in first:
            pairs.append((first[item.sha256], row))
        else:
            first[item.sha256] = row
    return pairs


def candidate_pairs(gen: Generation, sig: _Signatures) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (a < b) worth scoring: vector neighbours and pHash block matches."""
    pairs = _vector_pairs(gen) | _phash_pairs(sig)
    pairs = {(a, b) for a, b in pairs if sig.has[a] and sig.has[b]}
    if not pairs:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    arr = np.array(sorted(pairs), np.int64)
    return arr[:, 0], arr[:, 1]


def _vector_pairs(gen: Generation) -> set[tuple[int, int]]:
    """Each item's NEIGHBOURS nearest items above CANDIDATE_COSINE, through the store's index."""
    vectors = np.asarray(gen.vectors["image"], np.float32)
    info = gen.manifest["spaces"].get("image", {}).get("index") or {}
    pairs: set[tuple[int, int]] = set()
    if info.get("method") == "annoy" and info.get("rows") == len(vectors):
        import annoy

        index = annoy.AnnoyIndex(vectors.shape[1], "angular")
        if not index.load(str(gen.dir / info["file"]), prefault=False):
            raise OSError(f"annoy could not load {gen.dir / info['file']}")

        def neighbours(row: int) -> tuple[list[int], list[float]]:
            return index.get_nns_by_item(row, NEIGHBOURS + 1, search_k=ANNOY_SEARCH_K, include_distances=True)

        # Annoy releases the GIL while it searches: two threads use both cores (10,661 items: 2.6 s
        # on one thread, bench/dups.py's large index)
        with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
            for row, (found, dist) in enumerate(pool.map(neighbours, range(len(vectors)), chunksize=256)):
                _add_close(pairs, row, np.asarray(found), 1.0 - np.square(dist) / 2.0)  # angular → cosine
        index.unload()
        return pairs
    # exact: the index itself is exact here (under index.EXACT_BELOW rows), so blocks of rows
    # against all rows, with BLAS, cost about what as many exact queries would
    for start in range(0, len(vectors), 512):
        sims = vectors[start : start + 512] @ vectors.T
        k = min(NEIGHBOURS + 1, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for offset, found in enumerate(top):
            _add_close(pairs, start + offset, found, sims[offset, found])
    return pairs


def _add_close(pairs: set, row: int, found: np.ndarray, sims: np.ndarray) -> None:
    for other, s in zip(found.tolist(), sims.tolist(), strict=True):
        if other != row and s >= CANDIDATE_COSINE:
            pairs.add((min(row, other), max(row, other)))


def _phash_pairs(sig: _Signatures) -> set[tuple[int, int]]:
    """Pairs whose pHashes agree on one of four 16-bit blocks and differ in few bits overall.

    Pigeonhole: hashes at most 3 bits apart always share a block; most at 4-8 bits do too.
    """
    pairs: set[tuple[int, int]] = set()
    rows = np.flatnonzero(sig.has)
    for shift in (0, 16, 32, 48):
        buckets: dict[int, list[int]] = {}
        blocks = ((sig.phash[rows] >> np.uint64(shift)) & np.uint64(0xFFFF)).tolist()
        for row, block in zip(rows.tolist(), blocks, strict=True):
            buckets.setdefault(block, []).append(row)
        for bucket in buckets.values():
            if 1 < len(bucket) <= PHASH_BUCKET_CAP:
                for i, a in enumerate(bucket):
                    for b in bucket[i + 1 :]:
                        if (int(sig.phash[a]) ^ int(sig.phash[b])).bit_count() <= PHASH_CANDIDATE_BITS:
                            pairs.add((a, b))
    return pairs


def _find(parent: list[int], x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def _union(parent: list[int], a: int, b: int) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)


def _ordered(gen: Generation, sig: _Signatures, rows: list[int]) -> Group:
    """Largest file first (the one to keep, usually); each member scored against it."""
    rows = sorted(rows, key=lambda r: (-gen.items[r].size, gen.items[r].path))
    first = rows[0]
    rest = np.array(rows[1:], np.int64)
    scores = np.ones(len(rest))
    same = np.array([gen.items[r].sha256 == gen.items[first].sha256 for r in rest], bool)
    scorable = ~same & sig.has[rest] & bool(sig.has[first])
    if scorable.any():
        others = rest[scorable]
        firsts = np.full(len(others), first, np.int64)
        scores[scorable] = duplicate_score(pair_features(gen, sig, firsts, others))
    scores[~same & ~scorable] = 0.0
    return Group(rows, [1.0, *(round(float(s), 4) for s in scores)])
