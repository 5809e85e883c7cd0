"""Cross-type honesty for product shots: the product-shot head on article types it never saw.

    python bench/unseen_types.py [--work recipes/out/photo-head] [--leave-out 8]

Trains the product-shot head's recipe (``recipes/photo_head.py --augment 3 --fashion both
--fashion-copies 1``, one seed) with a seeded ``--leave-out`` of the 30 commonest article types
kept out of its fashion pairs and out of its early stopping. On the 3,000 development products
``recipes/fusion.py`` fits on (never trained on by either head), indexed without titles, it
scores "<colour> <type>" P@10 for the unseen and the seen types, with the shipped head and with
this one, fused as ``text@shots`` is (photo head 2 + colour 0.25) and with the ``wordnet`` space
added: does the classifier's vocabulary rescue types the head never saw (a new shop's products)?
Development figures (library functions over the dev store); caches are the ones of
``recipes/photo_head.py`` in --work.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, FLICKR, fashion_dev_rows, flickr_split, machine, require

from imgsearch.embed.job import EmbedOptions
from imgsearch.encoders import load_text_encoder
from imgsearch.indexing.build import embed_folder
from imgsearch.search.searcher import Searcher
from imgsearch.store import Store, find_store
from imgsearch.train import transfer as tr
from recipes import fusion as ff
from recipes import photo_head as pts
from recipes.cli import imgsearch

WORDNET = (0.0, 0.25, 0.5, 1.0)


def train_without(work: Path, unseen: set[str]):
    """The product-shot recipe, one seed, without the fashion pairs of ``unseen`` types."""
    st = Store(work / "store")
    embed_folder([str(FLICKR / "images")], st, EmbedOptions())
    gen = st.require()
    names = [Path(i.path).name for i in gen.items]
    paths = [Path(i.path) for i in gen.items]
    texts = pts.caption_vectors(work, names, pts.captions_by_image())
    rows, val, _ = flickr_split(names)
    images = np.asarray(gen.vectors["image"], np.float32)
    copies = pts.augmented_copies([paths[r] for r in rows], 3, work, "augment", 100)
    x = np.concatenate([images, *copies])
    t = np.concatenate([texts, *[texts[rows]] * 3])
    r = np.concatenate([rows, np.arange(len(images), len(x))])
    feats, ftexts, ftrain, fval, fval_rows, fcopies = pts.fashion_pairs(work, "both", 1)
    types = [row["articleType"] for row in fashion_dev_rows()]
    keep = np.array([types[p] not in unseen for p in ftrain])
    base = len(x)
    x = np.concatenate([x, feats, *[c[keep] for c in fcopies]])
    t = np.concatenate([t, ftexts, *[ftexts[ftrain[keep]]] * len(fcopies)])
    r = np.concatenate([r, base + ftrain[keep], np.arange(base + len(feats), len(x))])
    pairs, truth = pts.phrase_queries(fval_rows)
    seen = [i for i, p in enumerate(pairs) if not is_unseen(p, unseen)]  # early stopping sees none
    queries = np.concatenate([texts[val, 0], load_text_encoder("minilm").encode([pairs[i] for i in seen])])
    truths = [{i} for i in range(len(val))] + [{len(val) + j for j in truth[i]} for i in seen]
    cfg = tr.TrainConfig(epochs=40, hidden=1024, dropout=0.5, weight_decay=0.1, learning_rate=3e-4)
    fit = tr.fit_aligned(x, t, r, np.concatenate([val, base + fval]), queries, truths, cfg)
    return tr.to_head(fit.model, "aligned", "text", fit.mean, fit.std, {})


def is_unseen(query: str, unseen: set[str]) -> bool:
    return any(query.endswith(" " + u.lower()) for u in unseen)


def evaluate(searcher: Searcher, rows: list[dict], unseen: set[str], label: str) -> None:
    searcher.indexes.pop("photo", None)  # candidates by scanning the (replaced) photo rows
    queries, _ = ff.catalog_queries(searcher, rows, None)
    table = ff.score_table(searcher, queries, ff.KIND_SPACES["text@shots"])
    mask = np.array([is_unseen(q.texts[0][0], unseen) for q, _ in queries])
    for w in WORDNET:  # text, colour, lexical, photo, wordnet: text@shots' fitted weights + wordnet
        p = ff.per_combo(table, np.array([[0, 0.25, 0, 2.0, w]], np.float32), 5.0)[0]
        unseen_p, seen_p = (
            f"{p[mask].mean():.3f} ({mask.sum()} q)",
            f"{p[~mask].mean():.3f} ({(~mask).sum()} q)",
        )
        print(f"| {label} | {w} | {unseen_p} | {seen_p} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=pts.WORK / "photo-head")
    parser.add_argument("--leave-out", type=int, default=8, help="article types the head never sees")
    args = parser.parse_args()
    require(FASHION / "products.csv")
    require(FLICKR / "captions.csv")
    args.work.mkdir(parents=True, exist_ok=True)
    common = [t for t, _ in Counter(r["articleType"] for r in fashion_dev_rows()).most_common(30)]
    unseen = set(random.Random(7).sample(common, args.leave_out))
    print(f"# {machine()}\n# types the head never sees: {', '.join(sorted(unseen))}")
    head = train_without(args.work, unseen)
    folder, _, rows = ff.fashion_dev(3000)
    store_dir = ff.OUT / "fashion-dev" / "untitled"  # recipes/fusion.py's, incremental
    imgsearch("index", str(folder), "--quiet", "--out", str(store_dir))
    store = find_store(store_dir).require()
    searcher = Searcher(store, check_files=False)
    print("| product-shot head | wordnet weight | unseen types P@10 | seen types P@10 |\n|---|---|---|---|")
    evaluate(searcher, rows, unseen, "shipped (all types)")
    store.vectors["photo"] = head(np.asarray(store.vectors["image"], np.float32))
    searcher.heads["photo"] = head
    evaluate(searcher, rows, unseen, "without the unseen types")


if __name__ == "__main__":
    main()
