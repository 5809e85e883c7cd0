"""Search quality on the fashion catalog (../shared/data/fashion), for an index built from it.

    imgsearch index ../shared/data/fashion/images --out /tmp/fashion-meta \
        --meta ../shared/data/fashion/products.csv --text-columns productDisplayName
    imgsearch index ../shared/data/fashion/images --out /tmp/fashion-auto   # no metadata: auto tags
    python bench/search_quality.py --index /tmp/fashion-meta --index /tmp/fashion-auto

Prints, per index: text-only precision@10 (relevant = same articleType and baseColour) on
fixed queries; image-only precision@10 (same articleType, query excluded) on 200 seeded
random queries; and the fused "non-red handbag photo + text 'red'" share of red handbags.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, machine, require

from imgsearch.search.query import build_query
from imgsearch.search.searcher import Searcher
from imgsearch.store import find_store
from imgsearch.train.evaluate import image_to_image

TEXT_QUERIES = [
    ("red handbag", "Handbags", "Red"),
    ("black watch", "Watches", "Black"),
    ("white sports shoes", "Sports Shoes", "White"),
    ("blue jeans", "Jeans", "Blue"),
    ("black backpack", "Backpacks", "Black"),
    ("brown wallet", "Wallets", "Brown"),
    ("white tshirt", "Tshirts", "White"),
    ("blue shirt", "Shirts", "Blue"),
    ("black heels", "Heels", "Black"),
    ("pink top", "Tops", "Pink"),
    ("black sunglasses", "Sunglasses", "Black"),
    ("brown belt", "Belts", "Brown"),
    ("grey tshirt", "Tshirts", "Grey"),
    ("black casual shoes", "Casual Shoes", "Black"),
    ("red tshirt", "Tshirts", "Red"),
    ("white shirt", "Shirts", "White"),
    ("navy blue tshirt", "Tshirts", "Navy Blue"),
    ("black flip flops", "Flip Flops", "Black"),
]


def load_rows() -> dict[str, dict[str, str]]:
    with open(FASHION / "products.csv", encoding="utf-8") as f:
        return {Path(r["filename"]).stem: r for r in csv.DictReader(f)}


def text_precision(searcher: Searcher, attrs: list[dict], weights: str = "") -> list[tuple[str, float, int]]:
    out = []
    for text, article, colour in TEXT_QUERIES:
        hits = searcher.search(build_query(texts=[text], k=10, weights=weights))
        good = sum(
            1 for h in hits if attrs[h.row]["articleType"] == article and attrs[h.row]["baseColour"] == colour
        )
        total = sum(1 for a in attrs if a["articleType"] == article and a["baseColour"] == colour)
        out.append((text, good / 10, total))
    return out


def image_precision(searcher: Searcher, attrs: list[dict], n: int = 200, seed: int = 0) -> float:
    gen = searcher.gen
    labelled = [r for r, a in enumerate(attrs) if a["articleType"]]
    scores = []
    for row in random.Random(seed).sample(labelled, n):
        hits = searcher.search(build_query([gen.items[row].path], k=10), exclude={row})
        scores.append(sum(1 for h in hits if attrs[h.row]["articleType"] == attrs[row]["articleType"]) / 10)
    return sum(scores) / len(scores)


def fused_red_handbags(searcher: Searcher, attrs: list[dict], n: int = 20, seed: int = 0) -> float:
    gen = searcher.gen
    bags = [r for r, a in enumerate(attrs) if a["articleType"] == "Handbags" and a["baseColour"] != "Red"]
    shares = []
    for row in random.Random(seed).sample(bags, n):
        q = build_query([gen.items[row].path], ["red"], k=10)
        hits = searcher.search(q, exclude={row})
        shares.append(
            sum(
                1
                for h in hits
                if attrs[h.row]["articleType"] == "Handbags" and attrs[h.row]["baseColour"] == "Red"
            )
            / 10
        )
    return sum(shares) / len(shares)


def report(index: Path, rows: dict[str, dict[str, str]]) -> None:
    gen = find_store(index).require()
    attrs = [rows.get(Path(i.path).stem, {"articleType": "", "baseColour": ""}) for i in gen.items]
    searcher = Searcher(gen)
    source = gen.manifest["text_source"]
    print(f"\n== {index} ({gen.count} items; text: {source.get('columns') or 'auto tags'})")
    t = time.perf_counter()
    per_query = text_precision(searcher, attrs)
    for text, p, total in per_query:
        print(f"  text  P@10 {p:4.2f}  {text!r} ({total} relevant)")
    mean_text = sum(p for _, p, _ in per_query) / len(per_query)
    print(f"  text-only mean P@10 over {len(per_query)} queries: {mean_text:.3f}")
    if "photo" in gen.vectors:
        for weights in ("photo=0", "photo=1,text=1"):
            alt = text_precision(searcher, attrs, weights)
            print(f"    with --weight {weights}: {sum(p for _, p, _ in alt) / len(alt):.3f}")
    labels = [a["articleType"] or None for a in attrs]
    m = image_to_image(gen.vectors["image"], labels, sample=200, seed=0, ks=(10,))
    print(
        f"  image-only P@10 (same articleType, 200 random queries), image vectors alone: "
        f"{m.values['precision'][10]:.3f}; through `query`: "
        f"{image_precision(searcher, attrs):.3f}"
    )
    print(
        f"  fused handbag photo (not red) + 'red': share of red handbags in top 10 = "
        f"{fused_red_handbags(searcher, attrs):.3f} (mean over 20 photos)"
    )
    print(f"  ({time.perf_counter() - t:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, action="append", required=True)
    args = parser.parse_args()
    require(FASHION)
    print(f"machine: {machine()}")
    rows = load_rows()
    for index in args.index:
        report(index, rows)


if __name__ == "__main__":
    main()
