"""Relevance feedback with a simulated user, through the CLI only (``imgsearch query --batch``).

    python bench/feedback.py                 # index (once), measure dev and held-out
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

β and γ are the shipped ones, chosen on the dev split by ``recipes/feedback.py`` (whose simulated
user, catalogs and indexes this script reuses); the dev rows are a development figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, fashion_dev_rows, machine, require

from imgsearch.search.feedback import Rocchio
from imgsearch.train.splits import is_test_item
from recipes.feedback import build, catalog, queries, simulate


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
    shipped = Rocchio.shipped()
    print(f"# {machine()}; shipped β={shipped.beta} γ={shipped.gamma} (recipes/feedback.py)")
    report: dict = {"beta": shipped.beta, "gamma": shipped.gamma}
    for split in ("dev", "heldout"):
        pairs = queries(cats[split])
        for titled in (True, False):
            p10 = simulate(stores[split, titled], cats[split], pairs, args.rounds)
            label = f"{split} {'titled' if titled else 'untitled'}"
            print(f"{label} ({len(pairs)} queries, {len(cats[split])} items): {fmt(p10)}")
            report[label] = {
                "queries": len(pairs),
                "items": len(cats[split]),
                "p10": [round(x, 3) for x in p10],
            }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
