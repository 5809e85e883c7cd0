"""imgsearch.indexing.ann: exact and Annoy nearest-neighbour search over unit vectors."""

from __future__ import annotations

from pathlib import Path

import annoy
import numpy as np
import pytest

from imgsearch.indexing import ann as index_mod
from imgsearch.indexing.ann import VectorIndex, build_index


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int = 48, centres: int = 40, seed: int = 0) -> np.ndarray:
    """Unit vectors around a few centres, so neighbours are meaningful (like real embeddings)."""
    rng = np.random.default_rng(seed)
    centre = unit(rng.standard_normal((centres, dim)))
    labels = rng.integers(0, centres, n)
    return unit(centre[labels] + 0.6 * unit(rng.standard_normal((n, dim))))


def true_topk(vectors: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    sims = vectors @ q
    sims[~np.any(vectors != 0, axis=1)] = -np.inf
    return np.argsort(-sims, kind="stable")[:k]


def annoy_index(vectors: np.ndarray, path: Path, **kw) -> VectorIndex:
    info = build_index(vectors, path, exact_below=0, **kw)
    assert info["method"] == "annoy"
    index = VectorIndex.load(vectors, path, info)
    assert index.method == "annoy"
    return index


def test_small_collection_is_exact_and_writes_nothing(tmp_path: Path) -> None:
    vectors = clustered(300)
    path = tmp_path / "space.ann"
    info = build_index(vectors, path, exact_below=1000)
    assert info == {"method": "exact", "trees": 0, "count": 300, "dim": 48, "rows": 300}
    assert not path.exists()
    assert VectorIndex.load(vectors, None, info).method == "exact"


def test_exact_search_returns_true_topk_with_cosines(tmp_path: Path) -> None:
    vectors = clustered(500, seed=1)
    index = VectorIndex.load(vectors, None, build_index(vectors, tmp_path / "x.ann"))
    for q in clustered(20, seed=2):
        rows, scores = index.search(q, 7)
        assert rows.dtype == np.int64 and scores.dtype == np.float32
        np.testing.assert_array_equal(rows, true_topk(vectors, q, 7))
        np.testing.assert_allclose(scores, vectors[rows] @ q, rtol=0, atol=1e-6)
        assert np.all(np.diff(scores) <= 0)


def test_annoy_recall_and_exact_scores(tmp_path: Path) -> None:
    vectors = clustered(4000, seed=3)
    index = annoy_index(vectors, tmp_path / "x.ann")
    queries = clustered(50, seed=4)
    hits = 0
    for q in queries:
        rows, scores = index.search(q, 10)
        assert len(rows) == 10 and len(set(rows.tolist())) == 10
        hits += len(np.intersect1d(rows, true_topk(vectors, q, 10)))
        np.testing.assert_allclose(scores, vectors[rows] @ q, rtol=0, atol=1e-6)
        assert np.all(np.diff(scores) <= 0)
    assert hits / (10 * len(queries)) >= 0.9


def test_annoy_candidates_are_rescored_with_stored_vectors(tmp_path: Path) -> None:
    """Scores and order come from the vectors given to load, not from Annoy's own distances.

    Annoy's distances are close to exact, so to tell the two apart the index is
    opened over slightly different vectors (same shape, same zero rows).
    """
    built = clustered(2000, seed=14)
    info = build_index(built, tmp_path / "x.ann", exact_below=0)
    stored = unit(built + 0.05 * clustered(2000, seed=15))
    index = VectorIndex.load(stored, tmp_path / "x.ann", info)
    for q in clustered(10, seed=16):
        rows, scores = index.search(q, 10)
        np.testing.assert_allclose(scores, stored[rows] @ q, rtol=0, atol=1e-6)
        assert np.all(np.diff(scores) <= 0)


def test_annoy_search_k_trades_recall(tmp_path: Path) -> None:
    """A tiny node budget must do worse than the default: search_k is really passed on."""
    vectors = clustered(4000, dim=64, centres=4, seed=5)
    index = annoy_index(vectors, tmp_path / "x.ann", trees=2)
    queries = clustered(30, dim=64, centres=4, seed=6)

    def recall(**kw) -> float:
        hits = [len(np.intersect1d(index.search(q, 10, **kw)[0], true_topk(vectors, q, 10))) for q in queries]
        return sum(hits) / (10 * len(queries))

    assert recall(search_k=10) < recall()


@pytest.mark.parametrize("method", ["exact", "annoy"])
def test_zero_rows_never_returned(tmp_path: Path, method: str) -> None:
    vectors = clustered(2000, seed=7)
    zero = np.arange(0, 2000, 3)
    queries = vectors[zero[:20]].copy()  # each query's best match is a row about to be zeroed
    vectors[zero] = 0.0
    info = build_index(vectors, tmp_path / "x.ann", exact_below=0 if method == "annoy" else 10**9)
    assert info["method"] == method and info["count"] == 2000 - len(zero)
    index = VectorIndex.load(vectors, tmp_path / "x.ann", info)
    for q in queries:
        rows, _ = index.search(q, 50)
        assert len(rows) == 50
        assert not np.isin(rows, zero).any()


@pytest.mark.parametrize("method", ["exact", "annoy"])
def test_k_larger_than_count(tmp_path: Path, method: str) -> None:
    vectors = clustered(40, seed=8)
    vectors[[0, 5, 39]] = 0.0
    info = build_index(vectors, tmp_path / "x.ann", exact_below=0 if method == "annoy" else 10**9)
    index = VectorIndex.load(vectors, tmp_path / "x.ann", info)
    rows, scores = index.search(clustered(1, seed=9)[0], 100)
    assert sorted(rows.tolist()) == sorted(set(range(40)) - {0, 5, 39})
    assert np.all(np.diff(scores) <= 0)
    assert len(index) == 37


def test_empty_and_degenerate_queries() -> None:
    vectors = clustered(50)
    index = VectorIndex(vectors)
    assert index.search(np.zeros(48, np.float32), 5)[0].size == 0
    assert index.search(vectors[0], 0)[0].size == 0
    assert VectorIndex(np.zeros((3, 48), np.float32)).search(vectors[0], 5)[0].size == 0
    with pytest.raises(ValueError):
        index.search(np.ones(47, np.float32), 5)


def test_unnormalised_query_gives_cosines() -> None:
    vectors = clustered(200)
    index = VectorIndex(vectors)
    q = vectors[3]
    rows, scores = index.search(7.5 * q, 5)
    np.testing.assert_array_equal(rows, index.search(q, 5)[0])
    assert rows[0] == 3 and scores[0] == pytest.approx(1.0, abs=1e-6)


def test_search_batch_matches_single_queries(tmp_path: Path) -> None:
    vectors = clustered(1000)
    index = annoy_index(vectors, tmp_path / "x.ann")
    queries = clustered(5, seed=10)
    for (rows, scores), q in zip(index.search_batch(queries, 4), queries, strict=True):
        single = index.search(q, 4)
        np.testing.assert_array_equal(rows, single[0])
        np.testing.assert_array_equal(scores, single[1])


def test_scores_match_dot_products() -> None:
    vectors = clustered(300)
    vectors[10] = 0.0
    index = VectorIndex(vectors)
    q = clustered(1, seed=11)[0]
    rows = np.array([5, 10, 299, 5, 0])
    got = index.scores(q, rows)
    assert got.dtype == np.float32 and got.shape == (5,)
    np.testing.assert_allclose(got, vectors[rows] @ q, rtol=0, atol=1e-6)
    assert got[1] == 0.0
    assert index.scores(q, np.array([], dtype=np.int64)).shape == (0,)


def test_save_replaces_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "space.ann"
    first = clustered(500, seed=12)
    build_index(first, path, exact_below=0)
    inode = path.stat().st_ino
    second = clustered(800, seed=13)
    info = build_index(second, path, exact_below=0)
    assert path.stat().st_ino != inode  # a new file renamed over the old, not rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["space.ann"]
    rows, _ = VectorIndex.load(second, path, info).search(second[700], 1)
    assert rows.tolist() == [700]


def test_failed_save_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "space.ann"
    build_index(clustered(500), path, exact_below=0)
    before = path.read_bytes()

    class BrokenAnnoy(annoy.AnnoyIndex):
        def save(self, fn: str, prefault: bool = False) -> bool:
            Path(fn).write_bytes(b"half an index")
            raise OSError("disk full")

    monkeypatch.setattr(index_mod.annoy, "AnnoyIndex", BrokenAnnoy)
    with pytest.raises(OSError, match="disk full"):
        build_index(clustered(600, seed=1), path, exact_below=0)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["space.ann"]


def test_load_refuses_mismatched_vectors(tmp_path: Path) -> None:
    vectors = clustered(600)
    path = tmp_path / "x.ann"
    info = build_index(vectors, path, exact_below=0)
    with pytest.raises(ValueError, match="rows"):
        VectorIndex.load(np.vstack([vectors, vectors[:1]]), path, info)
    with pytest.raises(ValueError, match="dimension"):
        VectorIndex.load(vectors[:, :32], path, info)
    # a space where some items have no vector (text): the loader counts them and compares
    holes = vectors.copy()
    holes[5] = 0.0
    info = build_index(holes, path, exact_below=0)
    changed = holes.copy()
    changed[0] = 0.0
    with pytest.raises(ValueError, match="rebuild"):
        VectorIndex.load(changed, path, info)
    # when the build saw a vector in every row, a cold load trusts that instead of reading them all
    full = build_index(vectors, tmp_path / "full.ann", exact_below=0)
    assert len(VectorIndex.load(vectors, tmp_path / "full.ann", full)) == len(vectors)


def test_a_sharded_index_merges_to_the_exact_top_k(tmp_path: Path) -> None:
    """Every part searched and the best kept by exact cosine: with a budget that lets Annoy see
    every item, a 4-part index returns what exact search returns, scores included."""
    vectors = clustered(3000, seed=21)
    vectors[[7, 1500, 2999]] = 0.0  # items without a vector, one at a part's edge
    path = tmp_path / "x.ann"
    info = build_index(vectors, path, exact_below=0, parts=4)
    assert [p["file"] for p in info["parts"]] == [f"x-{j:02d}-of-04.ann" for j in range(4)]
    bounds = [(p["start"], p["stop"]) for p in info["parts"]]
    assert bounds == [(0, 750), (750, 1500), (1500, 2250), (2250, 3000)]
    assert sorted(f.name for f in tmp_path.iterdir()) == [p["file"] for p in info["parts"]]
    sharded = VectorIndex.load(vectors, path, info)
    exact = VectorIndex(vectors)
    assert sharded.part_count == 4 and len(sharded) == 2997
    for q in clustered(25, seed=22):
        rows, scores = sharded.search(q, 10, search_k=len(vectors) * 10)
        want_rows, want_scores = exact.search(q, 10)
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-6)  # BLAS order: last bits
        assert not set(rows.tolist()) & {7, 1500, 2999}


def test_a_sharded_index_keeps_recall_at_the_default_budget(tmp_path: Path) -> None:
    vectors = clustered(8000, seed=23)
    info = build_index(vectors, tmp_path / "x.ann", exact_below=0, parts=4)
    sharded = VectorIndex.load(vectors, tmp_path / "x.ann", info)
    queries = clustered(40, seed=24)
    found = sum(len(np.intersect1d(sharded.search(q, 10)[0], true_topk(vectors, q, 10))) for q in queries)
    assert found / (10 * len(queries)) >= 0.9


def test_parts_never_shrink_below_the_exact_threshold() -> None:
    assert index_mod.part_bounds(20_000, 20_000, 16).tolist() == [0, 10_000, 20_000]
    assert index_mod.part_bounds(20_000, 5_000, 4).tolist() == [0, 20_000]
    assert index_mod.part_bounds(10, 10, 3, min_part=1).tolist() == [0, 3, 7, 10]


def test_parts_that_do_not_cover_the_rows_are_refused(tmp_path: Path) -> None:
    vectors = clustered(1200, seed=25)
    info = build_index(vectors, tmp_path / "x.ann", exact_below=0, parts=2)
    gap = {**info, "parts": [info["parts"][0], {**info["parts"][1], "start": 601}]}
    with pytest.raises(ValueError, match="cover"):
        VectorIndex.load(vectors, tmp_path / "x.ann", gap)
    short = {**info, "parts": info["parts"][:1]}
    with pytest.raises(ValueError, match="cover"):
        VectorIndex.load(vectors, tmp_path / "x.ann", short)
