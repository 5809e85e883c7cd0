"""Query banks for the shipped photo heads' hubness correction (imgsearch/search/hubness.py): build,
measure on the validation splits, and (with --ship) install.

    python bench/query_bank.py [--image-encoder efficientnet-lite1] [--work DIR] [--ship]

Banks are MiniLM vectors of the heads' own training texts (so they serve every image encoder),
one for short queries (at most 3 words) and one for sentences, because a bank must look like the
queries it corrects (a bank of captions hurt one- and two-word queries):
- everyday heads: ``everyday-words`` = 5,000 content words of the Flickr8k training captions;
  ``everyday`` = 5,000 of those captions;
- product-shot heads (trained on both): ``products-short`` = 2,500 of those words + 2,500
  "<colour> <type>" phrases of the fashion training products; ``products`` = 2,500 captions +
  2,500 titles and phrases of those products.
Validation = the photo heads' own: the Flickr8k photos kept for early stopping (captions at 224 px
and as 200-px 4:3 thumbnails; one- and two-word queries, relevant = photos with at least 2 of
their 5 captions holding the words) and the 3,000 fashion products of bench/fit_fusion.py
("<colour> <type>" P@10 of the head alone); the held-out photos and the fashion test split are
never read. ``k`` and ``beta`` were chosen on the everyday head's validation (grid below).
--ship writes pretrained/banks/*.npy and names the banks in each shipped head of the image
encoder (its manifest's "query_bank"); ``index`` then re-derives the heads' spaces.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import photo_text_search
from common import FASHION, FLICKR, ROOT, fashion_dev_rows, flickr_split, machine, require, thumbnail_4_3
from photo_text_search import (
    FASHION_VAL,
    caption_vectors,
    captions_by_image,
    fashion_phrase,
    features_of,
    phrase_queries,
    precision_at_10,
    rank_of_truth,
)

from imgsearch.embed.job import EmbedOptions
from imgsearch.encoders import DEFAULT_IMAGE_ENCODER, load_text_encoder
from imgsearch.encoders.heads import Head
from imgsearch.indexing.build import embed_folder, head_root
from imgsearch.search import hubness
from imgsearch.store import Store

BANK_SIZE = 5000
SHORT = 3  # words: a query this short is served by the short bank
K, BETA = 20, 0.5  # chosen on the everyday head's validation (the grid this script prints)
GRID = [(k, beta) for k in (5, 20, 100) for beta in (0.25, 0.5, 0.75)]
BANKS = {"everyday": ("everyday-words", "everyday"), "shots": ("products-short", "products")}
_STOP_WORDS = (
    "a an the of in on at and with is are to his her their its for from by two three four one some "
    "other while as into up down out over near who that this it them there"
)
STOP = frozenset(_STOP_WORDS.split())


def spec(kind: str) -> dict:
    """A head manifest's ``query_bank`` entry (also written by bench/photo_text_search.py --ship)."""
    short, long = BANKS[kind]
    return {
        "banks": [{"bank": short, "max_words": SHORT}, {"bank": long}],
        "k": K,
        "beta": BETA,
        "chosen_by": "python bench/query_bank.py",
    }


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def content_words(texts: list[str]) -> list[str]:
    return [w for t in texts for w in words_of(t) if w not in STOP and len(w) > 2]


def build_banks(captions: list[str], caption_vecs: np.ndarray) -> dict[str, np.ndarray]:
    """The four banks, from the training captions (texts and their cached vectors) and the fashion
    training products (the ones the product-shot heads trained on)."""
    rng = np.random.default_rng(0)
    enc = load_text_encoder("minilm")
    half = BANK_SIZE // 2
    everyday = caption_vecs[np.sort(rng.permutation(len(caption_vecs))[:BANK_SIZE])]
    words = enc.encode(list(rng.choice(content_words(captions), BANK_SIZE, replace=False)))
    train = fashion_dev_rows()[FASHION_VAL:]
    titles = [r["productDisplayName"] or fashion_phrase(r) for r in train] + [
        fashion_phrase(r) for r in train
    ]
    phrases = [fashion_phrase(r) for r in train]
    return {
        "everyday": everyday,
        "everyday-words": words,
        "products": np.concatenate(
            [everyday[:half], enc.encode(list(rng.choice(titles, half, replace=False)))]
        ),
        "products-short": np.concatenate(
            [words[:half], enc.encode(list(rng.choice(phrases, half, replace=False)))]
        ),
    }


def word_queries(val_captions: list[list[str]]) -> dict[str, tuple[list[str], list[set[int]]]]:
    """One- and two-word queries from the validation photos' captions: words (and adjacent
    content-word pairs) that at least 2 captions of 8-120 photos (5+ for pairs) hold; relevant =
    those photos."""
    docs = [[set(words_of(c)) for c in caps] for caps in val_captions]

    def relevant(ws: tuple[str, ...]) -> set[int]:
        return {i for i, d in enumerate(docs) if sum(all(w in s for w in ws) for s in d) >= 2}

    counts = Counter(w for d in docs for w in set().union(*d) if sum(w in s for s in d) >= 2)
    vocab = sorted(w for w, c in counts.items() if 8 <= c <= 120 and w not in STOP and len(w) > 2)
    pairs = Counter(
        (a, b)
        for caps in val_captions
        for c in caps
        for a, b in zip(words_of(c), words_of(c)[1:], strict=False)
        if {a, b}.isdisjoint(STOP) and len(a) > 2 and len(b) > 2
    )
    two = [p for p, _ in pairs.most_common(400) if len(relevant(p)) >= 5][:80]
    return {
        "1 word": (vocab, [relevant((w,)) for w in vocab]),
        "2 words": ([" ".join(p) for p in two], [relevant(p) for p in two]),
    }


def recall10(queries: np.ndarray, gallery: np.ndarray, bias: np.ndarray) -> float:
    sims = queries @ gallery.T - bias[None]
    truth = np.repeat(np.arange(len(gallery)), len(queries) // len(gallery))
    return float((rank_of_truth(sims, truth) <= 10).mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image-encoder", default=DEFAULT_IMAGE_ENCODER)
    parser.add_argument("--work", type=Path, default=None, help="bench/photo_text_search.py's cache dir")
    parser.add_argument("--ship", action="store_true")
    args = parser.parse_args()
    require(FLICKR)
    require(FASHION / "products.csv")
    photo_text_search.IMAGE_ENCODER = args.image_encoder
    suffix = "" if args.image_encoder == DEFAULT_IMAGE_ENCODER else f"-{args.image_encoder}"
    work = args.work or ROOT / "bench" / "out" / f"photo-head{suffix}"
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}\nimage encoder: {args.image_encoder}")
    st = Store(work / "store")
    embed_folder([str(FLICKR / "images")], st, EmbedOptions(image_encoder=args.image_encoder))
    gen = st.require()
    names = [Path(i.path).name for i in gen.items]
    paths = [Path(i.path) for i in gen.items]
    rows, val, _ = flickr_split(names)
    by_image = captions_by_image()
    texts = caption_vectors(work, names, by_image)
    built = build_banks([c for r in rows for c in by_image[names[r]][:5]], texts[rows].reshape(-1, 384))
    enc = load_text_encoder("minilm")
    captions = texts[val].reshape(-1, texts.shape[2])
    short = {
        n: (enc.encode(q), rel) for n, (q, rel) in word_queries([by_image[names[r]][:5] for r in val]).items()
    }
    images = np.asarray(gen.vectors["image"], np.float32)[val]
    thumbs = features_of([paths[r] for r in val], thumbnail_4_3, work, "val-thumbnails")
    frows = fashion_dev_rows()
    fpaths = [FASHION / r["filename"] for r in frows]
    fashion = features_of(fpaths, lambda d: d, work, "fashion-dev")[:FASHION_VAL]
    pairs, truth = phrase_queries(frows[:FASHION_VAL])
    fq = enc.encode(pairs)
    root = head_root(args.image_encoder)
    for folder, kind in ((root, "everyday"), (root / "shots", "shots")):
        if not (folder / "photo.json").exists():
            continue
        head = Head.load(folder, "photo")
        short_bank, long_bank = (built[b] for b in BANKS[kind])
        g224, gthumb, gfashion = head(images), head(thumbs), head(fashion)
        where = folder.relative_to(ROOT)
        print(
            f"{where} (validation; captions R@10 224 px / thumbnails with the {BANKS[kind][1]!r} bank; "
            f"1-word, 2-word and fashion P@10 with the {BANKS[kind][0]!r} bank):"
        )
        for k, beta in [(0, 0.0), *GRID]:

            def bias(out: np.ndarray, bank: np.ndarray, k=k, beta=beta) -> np.ndarray:
                return hubness.bias_against(bank, out, k, beta) if k else np.zeros(len(out), np.float32)

            cells = [
                recall10(captions, g224, bias(g224, long_bank)),
                recall10(captions, gthumb, bias(gthumb, long_bank)),
            ]
            for q, rel in short.values():
                cells.append(precision_at_10(q @ g224.T - bias(g224, short_bank)[None], rel))
            cells.append(precision_at_10(fq @ gfashion.T - bias(gfashion, short_bank)[None], truth))
            label = "none" if not k else f"k {k:3d} beta {beta:.2f}"
            mark = " <- shipped" if (k, beta) == (K, BETA) else ""
            print(
                f"  {label:18s} {cells[0]:.4f} / {cells[1]:.4f}; "
                f"{cells[2]:.3f}, {cells[3]:.3f}, {cells[4]:.3f}{mark}"
            )
        if args.ship:
            hubness.BANKS.mkdir(parents=True, exist_ok=True)
            for name in BANKS[kind]:
                np.save(hubness.BANKS / f"{name}.npy", built[name].astype(np.float16))
            # only the manifest changes: re-saving the head would widen its float16 weights
            meta = json.loads((folder / "photo.json").read_text())
            meta["query_bank"] = spec(kind)
            (folder / "photo.json").write_text(json.dumps(meta, indent=2))
            print(f"  shipped: {where}/photo.json names banks {BANKS[kind]} (k {K}, beta {BETA})")


if __name__ == "__main__":
    main()
