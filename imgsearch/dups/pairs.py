"""The pair table, built when ``imgsearch index`` publishes a generation (``dups.npz``): candidate
pairs proposed by the image vectors, pHash blocks and centre-thumbnail hashes, each with four
features (image cosine, lined-up thumbnail correlation, colour cosine, detail correlation) and the
logistic model that scores them (``pretrained/dups.json``)."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import functools
import itertools
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsearch.dups.signatures import DCT, THUMB
from imgsearch.shipped import PRETRAINED
from imgsearch.store import DamagedStore, Generation, Item

# The constants of this module are rules chosen by hand, each beside the development-half
# measurement that decided it (bench/dups.py); none is the output of a fit. The fitted numbers, the
# pair model's weights and default threshold, are read from pretrained/dups.json (MODEL_FILE).

# The centre thumbnail stands in for the whole one only when it lines up better by this much: a
# smooth picture lines up about as well zoomed in (0.9917 against 0.9915 for a resized copy in
# tests/test_dups_fresh.py), and the detail there is lost. bench/dups.py --originals 240,
# development half: margin 0 crop recall 0.958 precision 0.926, 0.005: 0.950 / 0.935, 0.01:
# 0.942 / 0.932.
CENTRE_MARGIN = 0.005

# Candidate proposal. The ANN asks for this many neighbours per item above a loose cosine: edited
# copies of one photo are among an item's nearest few (bench/dups.py: every family of 5 fits).
NEIGHBOURS = 8
CANDIDATE_COSINE = 0.70  # below it no duplicate pair was seen in bench/dups.py (1st pct 0.71)
ANNOY_SEARCH_K = 400  # node budget per item: near-duplicates share leaves, a small budget finds them
# pHash-proposed pairs further apart than this are not scored: the development-half duplicate
# pairs that only the pHash proposed were 0-6 bits apart (bench/dups.py; the bits of two such
# hashes differ in pairs); 8 added 9 % more pairs to scoring on the 10k index.
PHASH_CANDIDATE_BITS = 6
PHASH_BUCKET_CAP = 64  # a 16-bit block shared by more items (blank images...) proposes nothing
# Crop proposal (``_crop_pairs``): how far an item's centre-thumbnail hash may lie from another
# item's whole-thumbnail hash (bench/dups.py --originals 240, development half: the crop copies
# lie within 8 bits of their original for 114 of 120, 6 bits 101, 10 bits 119).
CROP_HASH_BITS = 8

# Logistic model: P(duplicate) = sigmoid(b0 + b·[cosine, aligned, colour, detail]) (FEATURE_NAMES),
# and the default threshold on that score. Both are fitted on the labelled set's development half
# (recipes/dups_set.py) by `python recipes/dups_model.py`, which writes them to this file.
MODEL_FILE = PRETRAINED / "dups.json"


def _load_model(path: Path = MODEL_FILE) -> tuple[tuple[float, ...], float]:
    """(weights, default threshold) from the shipped model file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if tuple(data["features"]) != FEATURE_NAMES or len(data["weights"]) != len(FEATURE_NAMES) + 1:
        raise ValueError(f"{path}: a duplicate model for other features; refit with recipes/dups_model.py")
    return tuple(float(w) for w in data["weights"]), float(data["threshold"])


# Crop/shift grid for lining up thumbnails: an edited copy may lose a few % at each edge.
_SCALES = (1.0, 0.95, 0.90)
_OFFSETS = 3  # positions per axis for each scale below 1


@dataclass
class PairTable:
    """Every candidate pair of a generation with its features, and the exact-duplicate pairs.

    Built by ``pair_table`` when ``imgsearch index`` publishes a generation (stored as
    ``dups.npz``), so ``dups`` itself only scores, links and prints: on 10,661 items the
    candidate search and the pair features take seconds, which is index-time work.
    """

    a: np.ndarray  # (n,) int32 rows, a < b
    b: np.ndarray
    features: np.ndarray  # (n, len(FEATURE_NAMES)) float32
    exact: np.ndarray  # (m, 2) int32: pairs of rows with the same file bytes

    def arrays(self) -> dict[str, np.ndarray]:
        return {"a": self.a, "b": self.b, "features": self.features, "exact": self.exact}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], count: int) -> PairTable | None:
        """The table, or None when the arrays do not check out (wrong shapes, rows out of range)."""
        try:
            a, b, f, e = (arrays[k] for k in ("a", "b", "features", "exact"))
        except KeyError:
            return None
        ok = (
            a.ndim == b.ndim == 1
            and len(a) == len(b) == len(f)
            and f.ndim == 2
            and f.shape[1] == len(FEATURE_NAMES)
            and e.ndim == 2
            and e.shape[1] == 2
            and all(x.dtype == np.int32 for x in (a, b, e))
            and f.dtype == np.float32
            and all(not len(x) or (int(x.min()) >= 0 and int(x.max()) < count) for x in (a, b, e))
            and bool(np.isfinite(f).all())
        )
        return cls(a, b, f, e) if ok else None


FEATURE_NAMES = ("cosine", "aligned", "colour", "detail")
# Stored with the table: a table made with other features or candidates is rebuilt on the fly (and
# by the next `imgsearch index`), never scored with the wrong weights. dups-3: centre-hash pairs.
FEATURES = "dups-3:" + ",".join(FEATURE_NAMES)
WEIGHTS, DEFAULT_THRESHOLD = _load_model()


def pair_table(
    items: Sequence[Item],
    image: np.ndarray,
    colour: np.ndarray | None,
    annoy_parts: list[tuple[int, int, Path]] | None,
    *,
    previous: tuple[Sequence[Item], PairTable] | None = None,
) -> PairTable:
    """Candidates and their features. ``annoy_parts``: the image space's Annoy index over ``image``
    (``index.part_files``; None: exact neighbours, as for collections under
    ``index.EXACT_BELOW``). ``previous``: the items and table of the generation this one replaces,
    made from the same image encoder: pairs of unchanged files keep their features, so adding a
    few files to a large index lines up only the new pairs."""
    sig = Signatures(items)
    exact = np.array(_exact_pairs(items), np.int32).reshape(-1, 2)
    image = np.asarray(image, np.float32)
    colour = None if colour is None else unit_rows(colour)
    a, b = candidate_pairs(image, sig, annoy_parts)

    def features_of(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty((len(a), len(FEATURE_NAMES)), np.float32)
        known = _previous_features(items, previous, a, b, out)
        todo = np.flatnonzero(~known)
        out[todo] = pair_features(image, colour, sig, a[todo], b[todo])
        return out

    with _blas_single_threaded():
        features = features_of(a, b)
        # Close the triangles of likely pairs: when x–y and y–z may be duplicates, x–z is what
        # `_link` asks about when it merges their groups, and a pair missing from the table
        # counts 0 there (bench/dups.py, development half: a small copy whose pair with the crop
        # was never proposed kept the two apart, and with them most of the missed pairs).
        ca, cb = _closing_pairs(a, b, duplicate_score(features) >= CLOSE_FROM)
        if len(ca):
            a, b = np.concatenate([a, ca]), np.concatenate([b, cb])
            features = np.concatenate([features, features_of(ca, cb)])
    order = np.lexsort((b, a))
    return PairTable(
        a[order].astype(np.int32), b[order].astype(np.int32), features[order].astype(np.float32), exact
    )


def _previous_features(
    items: Sequence[Item],
    previous: tuple[Sequence[Item], PairTable] | None,
    a: np.ndarray,
    b: np.ndarray,
    out: np.ndarray,
) -> np.ndarray:
    """Fill ``out`` with the previous table's features of pairs whose two files are unchanged
    (same path, size, mtime and bytes); return which rows were filled."""
    known = np.zeros(len(a), bool)
    if previous is None or not len(a):
        return known
    old_items, old = previous
    old_row = {(*item.fingerprint(), item.sha256): r for r, item in enumerate(old_items)}
    before = np.array([old_row.get((*item.fingerprint(), item.sha256), -1) for item in items], np.int64)
    index = {pair: i for i, pair in enumerate(zip(old.a.tolist(), old.b.tolist(), strict=True))}
    oa, ob = before[a], before[b]
    for i, (x, y) in enumerate(zip(np.minimum(oa, ob).tolist(), np.maximum(oa, ob).tolist(), strict=True)):
        at = index.get((x, y)) if x >= 0 else None
        if at is not None:
            out[i] = old.features[at]
            known[i] = True
    return known


# A pair this likely (at the current WEIGHTS) takes part in closing triangles (`_closing_pairs`);
# a node with more likely partners than CLOSE_CAP closes none (a huge cluster of look-alikes).
CLOSE_FROM = 0.05
CLOSE_CAP = 16


def _closing_pairs(a: np.ndarray, b: np.ndarray, likely: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (x, z), x < z, not among (a, b), such that x–y and y–z are both ``likely``."""
    partners: dict[int, list[int]] = {}
    for x, y in zip(a[likely].tolist(), b[likely].tolist(), strict=True):
        partners.setdefault(x, []).append(y)
        partners.setdefault(y, []).append(x)
    have = set(zip(a.tolist(), b.tolist(), strict=True))
    new: set[tuple[int, int]] = set()
    for near in partners.values():
        if len(near) <= CLOSE_CAP:
            for x, z in itertools.combinations(sorted(near), 2):
                if (x, z) not in have:
                    new.add((x, z))
    if not new:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    arr = np.array(sorted(new), np.int64)
    return arr[:, 0], arr[:, 1]


def table_of(gen: Generation) -> PairTable:
    """The generation's stored table, else one computed now (stores from `embed`, or older ones)."""
    info = gen.manifest.get("dups") or {}
    if info.get("features") == FEATURES:
        table = PairTable.from_arrays(gen.dup_arrays(), gen.count)
        if table is None:
            raise DamagedStore(f"{gen.dir}: damaged dups.npz; run `imgsearch index` on its folder")
        return table
    return pair_table(gen.items, gen.vectors["image"], gen.vectors.get("colour"), image_index_parts(gen))


def image_index_parts(gen: Generation) -> list[tuple[int, int, Path]] | None:
    """The Annoy parts of the generation's image index (None: it is searched exactly, or stale)."""
    from imgsearch.indexing.ann import part_files

    info, path = gen.index_info("image")
    if info.get("method") != "annoy" or path is None or info.get("rows") != gen.count:
        return None
    try:
        return part_files(path, info, gen.count)
    except ValueError:
        return None


@contextlib.contextmanager
def _blas_single_threaded():
    """OpenBLAS on one thread (for this thread) while the pair features are made: they are many
    small products, and splitting each across threads cost more than it saved (10,661 items on
    2 busy cores: the thumbnail grid took 20 s with OpenBLAS's default threads, 2.8 s on one).
    A no-op where numpy's BLAS is not the OpenBLAS of the numpy wheel."""
    set_threads = _openblas_set_threads_local()
    if set_threads is None:
        yield
        return
    before = set_threads(1)
    try:
        yield
    finally:
        set_threads(before)


@functools.cache
def _openblas_set_threads_local():
    for lib in sorted((Path(np.__file__).resolve().parent.parent / "numpy.libs").glob("*openblas*")):
        try:
            fn = ctypes.CDLL(str(lib)).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


class Signatures:
    """Signature columns of some items (all, or the rows asked for): pHash, thumbnails."""

    def __init__(self, items: Sequence[Item], rows: np.ndarray | None = None) -> None:
        self.rows = np.arange(len(items)) if rows is None else np.asarray(rows)
        chosen = [items[r] for r in self.rows.tolist()]
        self.has = np.array([i.sha256 is not None and i.thumb is not None for i in chosen], bool)
        self.phash = np.array([int(i.phash, 16) if i.phash else 0 for i in chosen], np.uint64)
        blank = bytes(THUMB * THUMB)
        thumbs = (base64.b64decode(i.thumb) if h else blank for i, h in zip(chosen, self.has, strict=True))
        raw = b"".join(thumbs)
        self.thumbs = np.frombuffer(raw, np.uint8).reshape(len(chosen), THUMB, THUMB).astype(np.float32)
        self.plain = _normalise(self.thumbs).reshape(len(chosen), -1)
        # items signed before the centre thumbnail existed use their whole one: features as before
        self.centre = self.thumbs.copy()
        self.has_centre = np.zeros(len(chosen), bool)
        for k, (item, has) in enumerate(zip(chosen, self.has, strict=True)):
            raw_centre = base64.b64decode(item.centre) if has and item.centre else b""
            if len(raw_centre) == THUMB * THUMB:
                self.centre[k] = np.frombuffer(raw_centre, np.uint8).reshape(THUMB, THUMB)
                self.has_centre[k] = True

    def local(self, rows: np.ndarray) -> np.ndarray:
        """Positions of item rows among this object's rows."""
        contiguous = not len(self.rows) or len(self.rows) == self.rows[-1] + 1  # all rows: themselves
        return rows if contiguous else np.searchsorted(self.rows, rows)

    def warps(self, local: np.ndarray) -> np.ndarray:
        """(len(local), grid size, THUMB²): every crop/shift of the grid, normalised."""
        w = _WARP_Y[None] @ self.thumbs[local][:, None] @ _WARP_XT[None]
        return _normalise(w.reshape(-1, THUMB, THUMB)).reshape(len(local), len(_WARP_Y), -1)


class _Stack:
    """Thumbnails for ``aligned_features`` to line up: the whole ones, then the centre ones."""

    def __init__(self, sig: Signatures) -> None:
        self.thumbs = np.concatenate([sig.thumbs, sig.centre])
        self.plain = _normalise(self.thumbs).reshape(len(self.thumbs), -1)

    warps = Signatures.warps


def unit_rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
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


def _warp_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ys, xs, params = [], [], []
    for s in _SCALES:
        span = THUMB * s
        offsets = [0.0] if s == 1.0 else np.linspace(0, THUMB - span, _OFFSETS)
        for oy in offsets:
            for ox in offsets:
                ys.append(_resample(THUMB, oy, span))
                xs.append(_resample(THUMB, ox, span).T)
                params.append((s, oy, ox))
    return np.stack(ys), np.stack(xs), np.array(params, np.float32)


_WARP_Y, _WARP_XT, _WARP_PARAMS = _warp_grid()


def _coarse_alignment(sig: Signatures, a: np.ndarray, b: np.ndarray):
    """Per pair (local rows), the best correlation over the grid with either image warped: (best,
    grid index, whether ``b`` was the warped one).

    One pass over the rows in blocks of ``_BLOCK``: a row's warped thumbnails are made once and
    matched against all its partners, whichever side of the pair it is on, so memory stays
    bounded however many pairs there are.
    """
    best = np.full(len(a), -1.0, np.float32)
    arg = np.zeros(len(a), np.intp)
    b_warped = np.zeros(len(a), bool)
    warped_side = np.concatenate([a, b])
    other_side = np.concatenate([b, a])
    pair = np.concatenate([np.arange(len(a)), np.arange(len(a))])
    order = np.argsort(warped_side, kind="stable")
    firsts, starts = np.unique(warped_side[order], return_index=True)
    bounds = [*starts.tolist(), len(order)]
    for k in range(0, len(firsts), _BLOCK):
        warps = sig.warps(firsts[k : k + _BLOCK])
        for i, warped in enumerate(warps):  # one small BLAS product per row: no per-pair copies
            entries = order[bounds[k + i] : bounds[k + i + 1]]
            corr = warped @ sig.plain[other_side[entries]].T  # (grid, partners)
            top = corr.argmax(axis=0)
            value = corr[top, np.arange(len(entries))]
            rows = pair[entries]  # distinct: a row is on one side of each of its pairs
            better = value > best[rows]
            best[rows[better]] = value[better]
            arg[rows[better]] = top[better]
            b_warped[rows[better]] = entries[better] >= len(a)
    return best, arg, b_warped


_BLOCK = 64


def _warp(img: np.ndarray, params: np.ndarray) -> np.ndarray:
    """(n, THUMB, THUMB) images sampled bilinearly on a per-image square window: params (n, 3) =
    (scale, top, left) in pixels, the window THUMB·scale wide. As two batched products with
    bilinear resampling matrices: 4× faster than gathering the four neighbours."""
    k = np.arange(THUMB, dtype=np.float32) + 0.5

    def resampling(start: np.ndarray) -> np.ndarray:
        c = np.clip(start[:, None] + k[None] * params[:, :1] - 0.5, 0, THUMB - 1)
        lo = np.minimum(np.floor(c).astype(np.intp), THUMB - 2)
        frac = (c - lo).astype(np.float32)[:, :, None]
        m = np.zeros((len(params), THUMB, THUMB), np.float32)
        np.put_along_axis(m, lo[:, :, None], 1 - frac, 2)
        np.put_along_axis(m, lo[:, :, None] + 1, frac, 2)
        return m

    return resampling(params[:, 1]) @ img @ resampling(params[:, 2]).transpose(0, 2, 1)


def _refine(moving: np.ndarray, fixed: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Newton steps on (scale, top, left) from the grid's best window, keeping the best
    correlation seen (so never below the grid's): a 5-8 % crop falls between grid points, and
    lining it up to a fraction of a pixel lifted the duplicate pairs' correlation (bench/dups.py,
    development half: 1st percentile 0.920 → 0.952) more than the look-alikes'."""
    params = params.copy()
    k = np.arange(THUMB, dtype=np.float32) + 0.5
    best = np.full(len(moving), -2.0, np.float32)
    best_params = params.copy()
    for step in range(_REFINE_STEPS + 1):
        w = _warp(moving, params)
        wc = (w - w.mean(axis=(1, 2), keepdims=True)).reshape(len(w), -1)
        norm = np.maximum(np.linalg.norm(wc, axis=1), 1e-6)
        corr = np.einsum("nk,nk->n", wc, fixed) / norm
        better = corr > best
        best[better], best_params[better] = corr[better], params[better]
        if step == _REFINE_STEPS:
            break
        gi, gj = np.gradient(w, axis=(1, 2))
        gy, gx = gi / params[:, :1, None], gj / params[:, :1, None]  # per source pixel
        jac = np.empty((len(w), 3, THUMB, THUMB), np.float32)  # d(warped)/d(scale, top, left)
        np.add(gy * k[None, :, None], gx * k[None, None, :], out=jac[:, 0])
        jac[:, 1], jac[:, 2] = gy, gx
        jac = jac.reshape(len(w), 3, -1)
        jac -= jac.mean(axis=2, keepdims=True)
        hess = jac @ jac.transpose(0, 2, 1) + 1e-3 * np.eye(3, dtype=np.float32)  # batched: BLAS
        rhs = jac @ (norm[:, None] * fixed - wc)[:, :, None]
        delta = np.linalg.solve(hess, rhs)[..., 0]
        params += np.clip(delta, -_MAX_STEP, _MAX_STEP)
        params[:, 0] = np.clip(params[:, 0], _MIN_SCALE, 1.0)
        params[:, 1:] = np.clip(params[:, 1:], 0, THUMB * (1 - params[:, :1]))
    return best, best_params


# Only pairs whose grid correlation reaches this are refined (most of the index-time cost): every
# development-half duplicate pair had ≥ 0.908 on the grid (bench/dups.py), and refining lifts a
# pair by at most ~0.07.
REFINE_FROM = 0.88
_REFINE_STEPS = 2  # bench/dups.py dev half: 1 step got most of it, 4 and 8 no more than 2
_MAX_STEP = np.array([0.03, 1.5, 1.5], np.float32)  # scale, pixels: stay near the grid's window
_MIN_SCALE = 0.84


def _high_pass(stack: np.ndarray) -> np.ndarray:
    """Each image minus its 3×3 box blur: the detail (stitching, buckles, print) that tells two
    look-alike products apart once their silhouettes line up."""
    p = np.pad(stack, ((0, 0), (1, 1), (1, 1)), mode="edge")
    blur = sum(p[:, i : i + THUMB, j : j + THUMB] for i in range(3) for j in range(3)) / 9.0
    return stack - blur


def aligned_features(sig: Signatures, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of local rows: the lined-up thumbnail correlation and the detail correlation at
    that alignment (see ``_refine`` and ``_high_pass``)."""
    aligned = np.empty(len(a), np.float32)
    detail = np.empty(len(a), np.float32)
    if not len(a):
        return aligned, detail
    coarse, arg, b_warped = _coarse_alignment(sig, a, b)
    moving, fixed = np.where(b_warped, b, a), np.where(b_warped, a, b)
    params = _WARP_PARAMS[arg]
    aligned[:] = coarse
    refine = np.flatnonzero(coarse >= REFINE_FROM)

    def refine_chunk(at: np.ndarray) -> None:
        with _blas_single_threaded():
            aligned[at], params[at] = _refine(sig.thumbs[moving[at]], sig.plain[fixed[at]], params[at])

    def detail_chunk(at: slice) -> None:
        m, f = moving[at], fixed[at]
        with _blas_single_threaded():
            lined = _normalise(_high_pass(_warp(sig.thumbs[m], params[at]))).reshape(len(m), -1)
        target = _normalise(_high_pass(sig.thumbs[f])).reshape(len(f), -1)
        detail[at] = np.einsum("nk,nk->n", lined, target)

    # chunks of whole-array numpy work, which releases the GIL: one thread per core
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(refine_chunk, [refine[k : k + 4096] for k in range(0, len(refine), 4096)]))
        list(pool.map(detail_chunk, [slice(k, k + 4096) for k in range(0, len(a), 4096)]))
    return aligned, detail


def crop_aligned_features(sig: Signatures, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``aligned_features`` of the two whole thumbnails, or of one's whole thumbnail against the
    other's centre thumbnail where that lines up better by CENTRE_MARGIN: a copy cropped about
    CROP_KEEP lines up with its original's centre as it is, detail and all (see ``centre_crop``)."""
    aligned, detail = aligned_features(sig, a, b)
    crop = np.flatnonzero(sig.has_centre[a] | sig.has_centre[b])
    if not len(crop):
        return aligned, detail
    stack, n = _Stack(sig), len(sig.thumbs)
    for ca, cb in ((a[crop], b[crop] + n), (a[crop] + n, b[crop])):
        al, de = aligned_features(stack, ca, cb)
        better = al > aligned[crop] + CENTRE_MARGIN
        aligned[crop[better]], detail[crop[better]] = al[better], de[better]
    return aligned, detail


def pair_features(
    image: np.ndarray, colour: np.ndarray | None, sig: Signatures, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """(n, 4) float32 for item rows a, b: image cosine, aligned thumbnail correlation, colour
    cosine (``colour``: unit rows, or None), detail correlation."""
    cos = np.concatenate(
        [
            np.einsum("ij,ij->i", image[a[k : k + 8192]], image[b[k : k + 8192]])
            for k in range(0, len(a), 8192)
        ]
        or [np.empty(0, np.float32)]
    )
    aligned, detail = crop_aligned_features(sig, sig.local(a), sig.local(b))
    col = np.einsum("ij,ij->i", colour[a], colour[b]) if colour is not None else np.ones(len(a))
    return np.column_stack([cos, aligned, col, detail]).astype(np.float32)


def duplicate_score(features: np.ndarray) -> np.ndarray:
    b0, *b = WEIGHTS
    return 1.0 / (1.0 + np.exp(-(b0 + np.asarray(features, np.float64) @ np.asarray(b))))


def _exact_pairs(items: Sequence[Item]) -> list[tuple[int, int]]:
    first: dict[str, int] = {}
    pairs = []
    for row, item in enumerate(items):
        if item.sha256 is None:
            continue
        if item.sha256 in first:
            pairs.append((first[item.sha256], row))
        else:
            first[item.sha256] = row
    return pairs


def candidate_pairs(
    image: np.ndarray, sig: Signatures, annoy_parts: list[tuple[int, int, Path]] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (a < b) worth scoring: vector neighbours, pHash and centre-hash block matches."""
    pairs = _vector_pairs(image, annoy_parts) | _phash_pairs(sig) | _crop_pairs(sig)
    pairs = {(a, b) for a, b in pairs if sig.has[a] and sig.has[b]}
    if not pairs:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    arr = np.array(sorted(pairs), np.int64)
    return arr[:, 0], arr[:, 1]


def _vector_pairs(
    vectors: np.ndarray, annoy_parts: list[tuple[int, int, Path]] | None
) -> set[tuple[int, int]]:
    """Each item's NEIGHBOURS nearest items above CANDIDATE_COSINE, through the store's index. With a
    index in parts (``imgsearch index --parts``) an item's neighbours come from its own part: a
    search of every part per item would cost the shard count over; pHash buckets still cross parts."""
    pairs: set[tuple[int, int]] = set()
    if annoy_parts is not None:
        for start, stop, file in annoy_parts:
            _part_pairs(pairs, vectors.shape[1], start, stop, file)
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


def _part_pairs(pairs: set, dim: int, start: int, stop: int, file: Path) -> None:
    import annoy

    index = annoy.AnnoyIndex(dim, "angular")
    if not index.load(str(file), prefault=False):
        raise OSError(f"annoy could not load {file}")

    def neighbours(rows: range) -> list[tuple[list[int], list[float]]]:
        return [
            index.get_nns_by_item(r - start, NEIGHBOURS + 1, search_k=ANNOY_SEARCH_K, include_distances=True)
            for r in rows
        ]

    # Annoy releases the GIL while it searches: one thread per core, each over a slice of rows
    # (a future per row cost more in the pool than in Annoy). Rows without a vector are not in
    # the index (Annoy returns nothing for them).
    workers = max(1, min(4, os.cpu_count() or 1))
    step = max(1, -(-(stop - start) // workers))
    slices = [range(s, min(s + step, stop)) for s in range(start, stop, step)]
    with ThreadPoolExecutor(workers) as pool:
        for rows, found in zip(slices, pool.map(neighbours, slices), strict=True):
            for row, (near, dist) in zip(rows, found, strict=True):
                near_rows = np.asarray(near, np.int64) + start
                _add_close(pairs, row, near_rows, 1.0 - np.square(np.asarray(dist)) / 2.0)  # angular → cosine
    index.unload()


def _add_close(pairs: set, row: int, found: np.ndarray, sims: np.ndarray) -> None:
    for other, s in zip(found.tolist(), sims.tolist(), strict=True):
        if other != row and s >= CANDIDATE_COSINE:
            pairs.add((min(row, other), max(row, other)))


def _phash_pairs(sig: Signatures) -> set[tuple[int, int]]:
    """Pairs whose pHashes differ in few bits (``_near_pairs``)."""
    rows = np.flatnonzero(sig.has)
    hashes = sig.phash[rows]
    return _near_pairs(rows, hashes, rows, hashes, PHASH_CANDIDATE_BITS)


def _near_pairs(
    rows_a: np.ndarray, hashes_a: np.ndarray, rows_b: np.ndarray, hashes_b: np.ndarray, bits: int
) -> set[tuple[int, int]]:
    """Pairs (low row, high row) of a row of ``rows_a`` and another of ``rows_b`` whose 64-bit
    hashes differ in at most ``bits``, found through the four 16-bit blocks they may share.

    Pigeonhole: hashes at most 3 bits apart always share a block; most at 4-8 bits do too. A block
    held by more than PHASH_BUCKET_CAP rows (blank images...) proposes nothing.
    """
    pairs: set[tuple[int, int]] = set()
    for shift in (0, 16, 32, 48):
        buckets: dict[int, list[tuple[int, int]]] = {}
        for row, h in zip(rows_b.tolist(), hashes_b.tolist(), strict=True):
            buckets.setdefault((h >> shift) & 0xFFFF, []).append((row, h))
        for a, ha in zip(rows_a.tolist(), hashes_a.tolist(), strict=True):
            bucket = buckets.get((ha >> shift) & 0xFFFF, ())
            if len(bucket) > PHASH_BUCKET_CAP:
                continue
            for b, hb in bucket:
                if b != a and (ha ^ hb).bit_count() <= bits:
                    pairs.add((min(a, b), max(a, b)))
    return pairs


def thumb_hash(thumbs: np.ndarray) -> np.ndarray:
    """64-bit DCT hashes (as ``phash``) of THUMB×THUMB thumbnails: (n,) uint64."""
    low = (DCT @ thumbs @ DCT.T)[:, :8, :8].reshape(len(thumbs), 64)
    bits = low > np.median(low[:, 1:], axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8")[:, 0].astype(np.uint64)


def _crop_pairs(sig: Signatures) -> set[tuple[int, int]]:
    """Pairs where one item's centre-thumbnail hash is within CROP_HASH_BITS of the other's
    whole-thumbnail hash (``_near_pairs``). A copy with some 6 % cut off each side *is* its
    original's centre: its whole pHash lies 12 bits from the original's at the median and its
    image cosine falls to 0.64 (bench/dups.py, development half), so neither may propose it,
    while the original's centre hash lies 4 bits from it."""
    rows = np.flatnonzero(sig.has)
    centred = rows[sig.has_centre[rows]]
    whole, centre = thumb_hash(sig.thumbs[rows]), thumb_hash(sig.centre[centred])
    return _near_pairs(centred, centre, rows, whole, CROP_HASH_BITS)
