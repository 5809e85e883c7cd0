"""Before → after table for `imgsearch train` on the fashion catalog, all figures on the test split.

    imgsearch index ../shared/data/fashion/images --out /tmp/fashion-meta \
        --meta ../shared/data/fashion/products.csv --text-columns productDisplayName
    python bench/train_eval.py --index /tmp/fashion-meta

Test split = product id mod 5 == 0, never trained on. Rows:
- image → image, relevant = same articleType, and = same articleType + baseColour:
  off-the-shelf Lite0 features vs the metric head (mAP@10, P@10);
- text → image with item texts hidden, "<colour> <articleType>" queries, relevant = both match:
  auto tags (tag text + colour) vs the aligned head vs both fused (R@10, mAP@10);
- training time on this machine.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, machine, require

from imgsearch.encoders.heads import load_heads
from imgsearch.search.query import build_query
from imgsearch.search.searcher import QueryEncoder, Searcher
from imgsearch.store import find_store
from imgsearch.train import evaluate as ev
from imgsearch.train import transfer as tr
from imgsearch.train.splits import split_rows


def attributes(gen) -> list[dict]:
    with open(FASHION / "products.csv", encoding="utf-8") as f:
        rows = {Path(r["filename"]).stem: r for r in csv.DictReader(f)}
    return [rows.get(Path(i.path).stem, {"articleType": "", "baseColour": ""}) for i in gen.items]


def colour_type_queries(attrs: list[dict], test: np.ndarray, min_items: int) -> list[tuple[str, str, str]]:
    counts = Counter((attrs[r]["baseColour"], attrs[r]["articleType"]) for r in test)
    pairs = sorted((c, t) for (c, t), n in counts.items() if n >= min_items and c and t and c != "Multi")
    return [(f"{c.lower()} {t.lower()}", t, c) for c, t in pairs]


def relevant_sizes(queries, attrs, test: np.ndarray) -> list[int]:
    return [
        sum(1 for r in test if attrs[r]["articleType"] == t and attrs[r]["baseColour"] == c)
        for _, t, c in queries
    ]


def text_eval(searcher: Searcher, queries, attrs, test: np.ndarray, weights: dict) -> ev.Metrics:
    allowed = set(test.tolist())
    runs = []
    for text, article, colour in queries:
        rel = {r for r in allowed if attrs[r]["articleType"] == article and attrs[r]["baseColour"] == colour}
        hits = searcher.search(build_query(texts=[text], k=10, weights=weights), within=test)
        runs.append(([h.row for h in hits], rel))
    return ev.mean_metrics(runs, ks=(10,))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--hidden", type=int, default=0)
    parser.add_argument("--min-items", type=int, default=5, help="test items a colour+type pair needs")
    args = parser.parse_args()
    require(FASHION)
    gen = find_store(args.index).require()
    attrs = attributes(gen)
    test = split_rows(gen, "test")
    print(f"machine: {machine()}\nindex: {gen.dir} ({gen.count} items, {len(test)} in the test split)")

    cfg = tr.TrainConfig(hidden=args.hidden)
    t = time.perf_counter()
    metric, _ = tr.train_metric(gen, [a["articleType"] or None for a in attrs], cfg)
    t_metric = time.perf_counter() - t
    t = time.perf_counter()
    aligned, _ = tr.train_aligned(gen, cfg)
    t_aligned = time.perf_counter() - t

    type_colour = [f"{a['articleType']}|{a['baseColour']}" if a["articleType"] else None for a in attrs]
    t = time.perf_counter()
    metric_tc, _ = tr.train_metric(gen, type_colour, cfg)
    t_metric_tc = time.perf_counter() - t
    image = np.asarray(gen.vectors["image"])
    print("\n| image → image (test split) | off-the-shelf mAP@10 | P@10 | metric head mAP@10 | P@10 |")
    print("|---|---|---|---|---|")
    for name, labels, head in (
        ("same articleType", [a["articleType"] or None for a in attrs], metric),
        ("same articleType + baseColour", type_colour, metric_tc),
    ):
        before = ev.image_to_image(image, labels, sample=None, rows=test, ks=(10,))
        after = ev.image_to_image(head(image), labels, sample=None, rows=test, ks=(10,))
        cells = [
            before.values["mAP"][10],
            before.values["precision"][10],
            after.values["mAP"][10],
            after.values["precision"][10],
        ]
        print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")

    queries = colour_type_queries(attrs, test, args.min_items)
    encoder = QueryEncoder(gen.manifest)
    shipped = load_heads(gen.dir)
    gen.vectors["text"] = ev.autotag_text_vectors(gen, encoder.text())
    gen.vectors["aligned"] = aligned(image)
    hidden = Searcher(gen, encoder, heads={**shipped, "aligned": aligned})
    title = f"text → image, item text hidden, {len(queries)} '<colour> <type>' queries"
    print(f"\n| {title} | R@10 | mAP@10 | P@10 | hit@10 |")
    print("|---|---|---|---|---|")
    for name, weights in (
        ("auto tags (tag text + colour)", {"aligned": 0}),
        ("shipped photo head (no training)", {"text": 0, "colour": 0, "aligned": 0, "photo": 1}),
        ("aligned head alone", {"text": 0, "colour": 0}),
        ("aligned head + colour", {"text": 0}),
        ("aligned head + auto tags", {}),
    ):
        m = text_eval(hidden, queries, attrs, test, weights)
        cells = " | ".join(f"{m.values[key][10]:.3f}" for key in ("recall", "mAP", "precision", "hit"))
        print(f"| {name} | {cells} |")
    ceiling = np.mean([min(10, n) / n for n in relevant_sizes(queries, attrs, test)])
    print(f"(R@10 = hits in the top 10 / all relevant; with these relevant-set sizes at most {ceiling:.3f})")
    print(
        f"\ntraining time (2-core CPU, frozen features): metric heads {t_metric:.1f} s (type), "
        f"{t_metric_tc:.1f} s (type + colour), "
        f"({metric.info['validation']['epochs']} epochs), aligned head {t_aligned:.1f} s "
        f"({aligned.info['validation']['epochs']} epochs)"
    )


if __name__ == "__main__":
    main()
