"""Relevance feedback with a simulated user, through the CLI only (``imgsearch query --batch``).

    python bench/feedback.py                 # index (once), tune on dev, report held-out
    python bench/feedback.py --prepare-only  # just build the four indexes

Data: ../shared/data/fashion. Two disjoint catalogs split by product id: *dev* (id mod 5 != 0,
a seeded sample of ``--limit`` photos) and *held-out* (id mod 5 == 0, every photo). Each is
indexed twice: *titled* (``--meta --text-columns productDisplayName``) and *untitled* (photos
only; auto tags).

Queries: "<colour> <articleType>" for every (baseColour, articleType) pair with at least 5
items in the catalog; relevant = same articleType and baseColour. The simulated user looks
at the top 10, likes the relevant ones and unlikes the others (by item id, as ``--format json``
prints it), and runs the query again; round 2 adds the judgements of round 1's new top 10.
P@10 counts the whole top 10, liked items included (they stay in the results on purpose).

β/γ (``IMGSEARCH_FEEDBACK=beta=B,gamma=G``) are chosen on dev by the mean one-round gain over
titled and untitled, then reported once on held-out.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, ROOT, fashion_dev_rows, machine, require

from imgsearch.train.splits import is_test_item

GRID = [(0.5, 0.25), (1.0, 0.25), (1.0, 0.5), (1.0, 1.0), (2.0, 1.0)]
MIN_RELEVANT = 5


def imgsearch(*args: str, stdin: str | None = None, env: dict | None = None) -> str:
    cmd = [sys.executable, "-m", "imgsearch", *args]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=full_env, check=False)
    if p.returncode not in (0, 1, 2) or (p.returncode == 2 and not p.stdout):
        sys.exit(f"FAILED {' '.join(args[:3])}: {p.stderr.strip()[-400:]}")
    return p.stdout


def catalog(work: Path, name: str, rows: list[dict]) -> tuple[Path, dict[str, dict]]:
    """A folder of symlinks to the photos, and a titles CSV for ``--meta``."""
    folder = work / name / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    by_name = {}
    for r in rows:
        file = Path(r["filename"]).name
        link = folder / file
        if not link.exists():
            link.symlink_to((FASHION / "images" / file).resolve())
        by_name[file] = r
    with open(work / name / "titles.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["filename", "title"])
        w.writerows([n, r["productDisplayName"]] for n, r in by_name.items())
    return folder, by_name


def build(work: Path, name: str, folder: Path, titled: bool) -> Path:
    store = work / name / ("titled" if titled else "untitled")
    # always, as a user would: incremental when up to date, and it re-derives the shipped heads
    # that a store made by an older imgsearch lacks (a skipped index measured stale stores)
    args = ["index", str(folder), "--out", str(store), "--quiet"]
    if titled:
        args += ["--meta", str(work / name / "titles.csv"), "--text-columns", "title"]
    t0 = time.perf_counter()
    imgsearch(*args)
    print(f"indexed {name}/{store.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return store


def queries(by_name: dict[str, dict]) -> list[tuple[str, str]]:
    pairs = Counter((r["baseColour"], r["articleType"]) for r in by_name.values())
    return sorted(p for p, c in pairs.items() if c >= MIN_RELEVANT and p[0])


def ask(store: Path, lines: list[dict], env: dict) -> list[list[dict]]:
    out = imgsearch(
        "query", "--batch", "-", "--format", "json", "--index", str(store),
        stdin="".join(json.dumps(x) + "\n" for x in lines), env=env,
    )  # fmt: skip
    answers = [json.loads(line) for line in out.splitlines() if line.strip()]
    bad = [a["error"] for a in answers if "error" in a]
    if bad:
        sys.exit(f"query error: {bad[0]}")
    return [a["results"] for a in answers]


def simulate(store: Path, by_name: dict, pairs: list, rounds: int, env: dict) -> list[float]:
    """P@10 before feedback and after each round of the simulated user's judgements."""
    texts = [f"{colour} {article}".lower() for colour, article in pairs]
    likes: list[set[str]] = [set() for _ in pairs]
    unlikes: list[set[str]] = [set() for _ in pairs]
    p10 = []
    for _ in range(rounds + 1):
        lines = [
            {"text": t, "k": 10, **({"like": sorted(lk), "unlike": sorted(un)} if lk or un else {})}
            for t, lk, un in zip(texts, likes, unlikes, strict=True)
        ]
        results = ask(store, lines, env)
        hits = 0
        for pair, res, lk, un in zip(pairs, results, likes, unlikes, strict=True):
            for r in res:
                row = by_name[Path(r["path"]).name]
                good = (row["baseColour"], row["articleType"]) == pair
                hits += good
                (lk if good else un).add(r["id"])
        p10.append(hits / (10 * len(pairs)))
    return p10


def fmt(p10: list[float]) -> str:
    return " → ".join(f"{x:.3f}" for x in p10) + f"  (+{p10[1] - p10[0]:.3f} after one round)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/imgsearch-feedback"))
    ap.add_argument("--limit", type=int, default=3000, help="dev catalog size (held-out: all id mod 5 == 0)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--prepare-only", action="store_true")
    args = ap.parse_args()
    with open(require(FASHION / "products.csv"), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if (FASHION / r["filename"]).exists()]
    heldout = [r for r in rows if is_test_item(r["filename"])]
    splits = {"dev": fashion_dev_rows(args.limit), "heldout": heldout}
    stores, cats = {}, {}
    for name, split_rows in splits.items():
        folder, cats[name] = catalog(args.work, name, split_rows)
        for titled in (True, False):
            stores[name, titled] = build(args.work, name, folder, titled)
    if args.prepare_only:
        return
    print(f"# {machine()}")
    report: dict = {"beta_gamma_dev": {}}
    best, best_gain = None, -1.0
    for beta, gamma in GRID:
        env = {"IMGSEARCH_FEEDBACK": f"beta={beta},gamma={gamma}"}
        pairs = queries(cats["dev"])
        res = {t: simulate(stores["dev", t], cats["dev"], pairs, 1, env) for t in (True, False)}
        gain = sum(r[1] - r[0] for r in res.values()) / 2
        report["beta_gamma_dev"][f"{beta},{gamma}"] = {"titled": res[True], "untitled": res[False]}
        print(f"dev β={beta} γ={gamma}: titled {fmt(res[True])}; untitled {fmt(res[False])}")
        if gain > best_gain:
            best, best_gain = (beta, gamma), gain
    assert best is not None
    env = {"IMGSEARCH_FEEDBACK": f"beta={best[0]},gamma={best[1]}"}
    report["chosen"] = {"beta": best[0], "gamma": best[1]}
    for split in ("dev", "heldout"):
        pairs = queries(cats[split])
        for titled in (True, False):
            p10 = simulate(stores[split, titled], cats[split], pairs, args.rounds, env)
            label = f"{split} {'titled' if titled else 'untitled'}"
            size = f"{len(pairs)} queries, {len(cats[split])} items"
            print(f"{label} ({size}), β={best[0]} γ={best[1]}: {fmt(p10)}")
            report[label] = {
                "queries": len(pairs),
                "items": len(cats[split]),
                "p10": [round(x, 3) for x in p10],
            }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
