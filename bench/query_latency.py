"""Measure imgsearch.indexing.ann: Annoy build/size/latency/recall and where exact search stops winning.

This is the measurement behind DEFAULT_TREES, DEFAULT_SEARCH_K_PER_RESULT and
EXACT_BELOW in imgsearch/indexing/ann.py.  Data is synthetic but clustered like real
embeddings (a shared mean direction, 50 super-clusters, 1000 Zipf-sized clusters,
noise), L2-normalised and seeded; queries are held-out points of the same mixture.

    .venv/bin/python bench/query_latency.py            # full run, ~3-5 min on 2 cores
    .venv/bin/python bench/query_latency.py --quick    # ~30 s smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from imgsearch.indexing.ann import (
    DEFAULT_SEARCH_K_PER_RESULT,
    DEFAULT_TREES,
    MIN_CANDIDATES,
    VectorIndex,
    build_index,
)

K = 10
TREES_GRID = (10, 25, 50)
SEARCH_K_PER_RESULT_GRID = (50, 100, 200, 400, 800, 1600)
EXACT_SIZES = (1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 50_000, 100_000)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synth(n: int, dim: int, seed: int, centres: int = 1000, noise: float = 0.8) -> np.ndarray:
    """``n`` clustered unit vectors; noise 0.8 puts a query's 10th neighbour near cosine 0.65.

    ``centres=0`` gives plain gaussian directions: no structure, Annoy's worst case.
    """
    rng = np.random.default_rng(seed)
    if centres == 0:
        return _unit(rng.standard_normal((n, dim), dtype=np.float32))

    def gauss(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(dim))

    mean = _unit(gauss(dim))
    supers = _unit(gauss(50, dim))
    centre = _unit(supers[rng.integers(0, 50, centres)] + 0.7 * gauss(centres, dim))
    weights = 1.0 / np.arange(1, centres + 1) ** 0.7
    labels = rng.choice(centres, n, p=weights / weights.sum())
    return _unit(0.5 * mean + centre[labels] + noise * gauss(n, dim))


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ground truth: ids of the k best rows per query, by brute force."""
    sims = queries @ vectors.T
    return np.argpartition(-sims, k - 1, axis=1)[:, :k]


def timed(fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], queries: np.ndarray):
    """Run fn on each query; return (results, p50 ms, p99 ms).  First 5 queries warm up."""
    for q in queries[:5]:
        fn(q)
    results, times = [], []
    for q in queries:
        t0 = time.perf_counter_ns()
        results.append(fn(q)[0])
        times.append((time.perf_counter_ns() - t0) / 1e6)
    p50, p99 = np.percentile(times, [50, 99])
    return results, float(p50), float(p99)


def recall(results: list[np.ndarray], truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(r[:K], t)) for r, t in zip(results, truth, strict=True))
    return hits / truth.size


def build(vectors: np.ndarray, path: Path, trees: int) -> tuple[VectorIndex, float, int]:
    t0 = time.perf_counter()
    info = build_index(vectors, path, trees=trees, exact_below=0)
    seconds = time.perf_counter() - t0
    return VectorIndex.load(vectors, path, info), seconds, path.stat().st_size


def grid(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, tmp: Path, trees_grid) -> None:
    """Recall@10 and latency for each (trees, search_k) pair at full size."""
    print(
        f"  {'trees':>5} {'build s':>8} {'size MiB':>8} {'sk/result':>9} {'search_k':>8} "
        f"{'recall@10':>9} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for trees in trees_grid:
        index, seconds, size = build(vectors, tmp / f"t{trees}.ann", trees)
        for per in SEARCH_K_PER_RESULT_GRID:
            sk = K * per
            found, p50, p99 = timed(lambda q, sk=sk, index=index: index.search(q, K, search_k=sk), queries)
            print(
                f"  {trees:>5} {seconds:>8.1f} {size / 2**20:>8.1f} {per:>9} {sk:>8} "
                f"{recall(found, truth):>9.3f} {p50:>7.2f} {p99:>7.2f}",
                flush=True,
            )
        index.close()


def crossover(vectors: np.ndarray, queries: np.ndarray, tmp: Path, sizes) -> None:
    """Exact numpy vs Annoy (module defaults) latency as the collection grows."""
    print(
        f"  {'rows':>7} {'exact p50':>9} {'exact p99':>9} {'annoy p50':>9} {'annoy p99':>9} "
        f"{'annoy recall':>12} {'build s':>7}"
    )
    for n in sizes:
        sub = vectors[:n]
        truth = exact_topk(sub, queries, K)
        exact = VectorIndex(sub)
        _, e50, e99 = timed(lambda q, exact=exact: exact.search(q, K), queries)
        index, seconds, _ = build(sub, tmp / f"n{n}.ann", DEFAULT_TREES)
        found, a50, a99 = timed(lambda q, index=index: index.search(q, K), queries)
        index.close()
        print(
            f"  {n:>7} {e50:>9.2f} {e99:>9.2f} {a50:>9.2f} {a99:>9.2f} "
            f"{recall(found, truth):>12.3f} {seconds:>7.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="collection size (default 100000)")
    parser.add_argument("--dims", default="384,1280", help="comma-separated dimensions")
    parser.add_argument("--queries", type=int, default=200, help="held-out queries per measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", choices=("clustered", "gaussian"), default="clustered")
    parser.add_argument("--only", choices=("grid", "crossover"), help="run just one of the two sections")
    parser.add_argument("--quick", action="store_true", help="n=20000, dim 384, 2 tree counts, 50 queries")
    args = parser.parse_args()
    if args.quick:
        args.n, args.dims, args.queries = min(args.n, 20_000), "384", min(args.queries, 50)
    trees_grid = TREES_GRID[:2] if args.quick else TREES_GRID
    blas_threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"
    print(machine())
    print(f"BLAS threads: {blas_threads}; data: {args.data}")
    print(
        f"numpy {np.__version__}; defaults: trees={DEFAULT_TREES} "
        f"search_k=max(k,{MIN_CANDIDATES})*{DEFAULT_SEARCH_K_PER_RESULT}; k={K}"
    )
    with tempfile.TemporaryDirectory(prefix="imgsearch-bench-") as name:
        tmp = Path(name)
        for dim in (int(d) for d in args.dims.split(",")):
            centres = 1000 if args.data == "clustered" else 0
            data = synth(args.n + args.queries, dim, args.seed + dim, centres=centres)
            vectors, queries = data[: args.n], data[args.n :]
            if args.only != "crossover":
                print(f"\n== dim {dim}, {args.n} rows, {args.queries} queries ==")
                grid(vectors, queries, exact_topk(vectors, queries, K), tmp, trees_grid)
            if args.only != "grid":
                print(f"\n-- exact vs annoy (defaults) by size, dim {dim} --")
                crossover(vectors, queries, tmp, [s for s in EXACT_SIZES if s <= args.n])


if __name__ == "__main__":
    main()
