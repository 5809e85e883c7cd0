"""Queries against collection size and shard count: cold `imgsearch query` at 10k / 100k / 1M items,
and one space's search latency and recall with 1, 4 and 16 index shards over 1M items.

    python bench/scale_query.py --index /tmp/fashion-meta --work /tmp/scale [--sizes 10000,100000,1000000]
    python bench/scale_query.py --index /tmp/fashion-meta --work /tmp/scale --part shards [--space text]

The stores are synthetic but shaped like a real catalog: every item is an item of the real fashion
index (``--index``, made with ``imgsearch index ../shared/data/fashion/images --meta ...``) repeated
with its vectors jittered (gaussian noise of 0.05 per dimension before re-normalising, so repeats
are near, not equal), its title, colour, classes and the same heads; written through store.py's
GenerationWriter and indexed by index.py as `imgsearch index` would. The repeats point at the
real photo files, so the CLI shows them like any hit.

--part cold: for each size, the median of --runs cold runs (a new process each, as from a shell;
the files are in the page cache unless --drop-caches, which needs root) of a text query, an image
query and both, through the installed `imgsearch` with --timings.
--part shards: 1M vectors (--data clustered: bench/query_latency.py's mixture; --data store: one
space of the largest store) indexed with 1, 4 and 16 shards, each part searched with 1, 2 or 3
shares of the budget: build time and disk, then 200 held-out queries, each timed on every layout
in turn: p50/p95 latency and recall@10 against exact search, for a k=10 search and for the fused
re-rank's 300-candidate gathering.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, machine, require
from query_latency import exact_topk, synth

from imgsearch import spaces
from imgsearch.indexing import ann
from imgsearch.search import searcher as search
from imgsearch.store import Generation, Store

BIN = Path(sys.executable).with_name("imgsearch")
NOISE = 0.05


def jittered(base: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` rows: the base rows repeated, each repeat after the first with fresh noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), np.float32)
    for start in range(0, n, len(base)):
        block = np.array(base[: min(len(base), n - start)], np.float32)
        if start:
            present = np.any(block != 0, axis=1)
            block[present] += rng.normal(0, NOISE, block[present].shape).astype(np.float32)
            block[present] /= np.linalg.norm(block[present], axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def write_store(real: Generation, n: int, root: Path, shards: int) -> Path:
    """A store of ``n`` items shaped like ``real`` (see the module doc), indexed with ``shards`` parts."""
    st = Store(root)
    if st.current_dir() is not None and st.require().count == n:
        return root
    items = [real.items[i % real.count] for i in range(n)]
    heads = real.heads()
    ids, vals = real.class_arrays()
    reps = -(-n // real.count)
    with st.building() as writer:
        writer.start(real.encoders, real.manifest["text_source"], items, list(real.manifest.get("roots", [])))
        writer.add_lexical([item.text for item in items])
        writer.add_classes(np.tile(ids, (reps, 1))[:n], np.tile(vals, (reps, 1))[:n])
        for space, base in real.vectors.items():
            if space == "colour":
                arr = np.tile(np.asarray(base), (reps, 1))[:n]
            else:
                arr = jittered(base, n, seed=spaces.NAMES.index(space))
            writer.add_space(space, arr, heads.get(space))
            del arr
            if space in spaces.INDEXED:
                mapped = np.load(writer.dir / f"{space}.npy", mmap_mode="r")
                writer.add_index(space, ann.build_index(mapped, writer.index_path(space), parts=shards))
        writer.write_skipped([])
    return root


def cold(cmd: list[str], runs: int, drop: bool) -> tuple[float, str]:
    times, err = [], ""
    for _ in range(runs):
        if drop:
            subprocess.run(["sync"], check=True)
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed: {done.stderr.strip()[-300:]}")
        err = done.stderr
    return statistics.median(times), next((x for x in err.splitlines() if x.startswith("timings:")), "")


def part_cold(real: Generation, args: argparse.Namespace) -> None:
    photo = str(FASHION / "images" / "10000.jpg")
    cases = {
        "text 'red bag'": ["--text", "red bag"],
        "image": [photo],
        "image + text 'red'": [photo, "--text", "red"],
    }
    caches = "page cache dropped before each run" if args.drop_caches else "files in the page cache"
    print(f"cold `imgsearch query -k 10 --timings`, median of {args.runs} runs, {caches}")
    print("| items | " + " | ".join(cases) + " |")
    print("|---|" + "---|" * len(cases))
    for n in args.sizes:
        root = write_store(real, n, args.work / f"store-{n}", args.shards)
        row = []
        for words in cases.values():
            seconds, steps = cold(
                [str(BIN), "query", *words, "--index", str(root), "--timings"], args.runs, args.drop_caches
            )
            row.append(f"{seconds:.2f} s")
            print(f"  {n} {words[-1]}: {seconds:.2f} s  {steps}", file=sys.stderr)
        print(f"| {n:,} | " + " | ".join(row) + " |", flush=True)


def part_shards(real: Generation, args: argparse.Namespace) -> None:
    n = max(args.sizes)
    if args.data == "store":
        root = write_store(real, n, args.work / f"store-{n}", args.shards)
        vectors = Store(root).require().vectors[args.space]
        rng = np.random.default_rng(7)
        queries = np.array(vectors[rng.choice(n, 200, replace=False)], np.float32)
        queries += rng.normal(0, NOISE, queries.shape).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        what = f"the {args.space} space of the {n:,}-item store"
    else:  # the clustered mixture of bench/query_latency.py, 200 held-out points as queries
        data = synth(n + 200, args.dim, seed=11)
        vectors, queries = data[:n], data[n:]
        what = f"{n:,} clustered synthetic vectors (bench/query_latency.py)"
    truth = exact_topk(np.asarray(vectors), queries, 10)
    cand = max(search.CANDIDATES_PER_SPACE, 10)
    print(f"{what} × {vectors.shape[1]} dims, {ann.DEFAULT_TREES} trees; 200 queries")
    print(
        "| shards | budget shares per part | build s | index MB | k=10 p50 ms | p95 ms | recall@10 "
        "| 300 candidates p50 ms | recall@10 in them |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    layouts = []
    for shards in args.shard_counts:
        path = args.work / f"{args.data}-shards-{shards}" / f"{args.space}.ann"
        path.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        info = ann.build_index(vectors, path, parts=shards)
        build = time.perf_counter() - t
        size = sum((path.parent / p["file"]).stat().st_size for p in info["parts"]) / 1e6
        index = ann.VectorIndex.load(vectors, path, info)
        for share in [ann.SHARD_BUDGET] if shards == 1 else args.budget_shares:
            layouts.append((info, share, build, size, index))
    # each query on every layout in turn: the shared machine's load falls on all of them alike
    runs = {(j, k): ([], [0]) for j in range(len(layouts)) for k in (10, cand)}
    for q, want in zip(queries, truth, strict=True):
        for j, (_, share, _, _, index) in enumerate(layouts):
            ann.SHARD_BUDGET = share
            for k, budget in ((10, None), (cand, search.CANDIDATE_SEARCH_K * cand)):
                t = time.perf_counter()
                rows, _ = index.search(q, k, search_k=budget)
                runs[j, k][0].append(time.perf_counter() - t)
                runs[j, k][1][0] += len(np.intersect1d(rows, want))
    for j, (info, share, build, size, _) in enumerate(layouts):
        (t10, f10), (t300, f300) = runs[j, 10], runs[j, cand]
        parts = len(info["parts"])
        print(
            f"| {parts} × {n // parts:,} | {share if parts > 1 else '-'} | {build:.0f} | {size:.0f} | "
            f"{np.percentile(t10, 50) * 1e3:.2f} | {np.percentile(t10, 95) * 1e3:.2f} | "
            f"{f10[0] / 2000:.3f} | {np.percentile(t300, 50) * 1e3:.2f} | {f300[0] / 2000:.3f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, required=True, help="a real index of the fashion set")
    parser.add_argument("--work", type=Path, required=True, help="where the synthetic stores go (GBs at 1M)")
    parser.add_argument("--part", choices=("cold", "shards", "all"), default="all")
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000, 1_000_000]
    )
    parser.add_argument("--shards", type=int, default=1, help="index shards of the cold-query stores")
    parser.add_argument("--shard-counts", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16])
    parser.add_argument("--space", default="text", help="--data store: the space of --part shards")
    parser.add_argument("--data", choices=("clustered", "store"), default="clustered", help="--part shards")
    parser.add_argument("--dim", type=int, default=384, help="--data clustered: dimensions")
    parser.add_argument(
        "--budget-shares",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 3],
        help="--part shards",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--drop-caches", action="store_true", help="truly cold: drop the page cache (root)")
    args = parser.parse_args()
    require(FASHION)
    real = Store(args.index / ".imgsearch" if (args.index / ".imgsearch").is_dir() else args.index).require()
    print(f"machine: {machine()}; base: {real.count:,} real fashion items, repeated with noise {NOISE}")
    if args.part in ("cold", "all"):
        part_cold(real, args)
    if args.part in ("shards", "all"):
        part_shards(real, args)


if __name__ == "__main__":
    main()
