"""The query banks of the shipped photo heads' hubness correction (imgsearch/search/hubness.py),
measured on the validation splits: each head with no correction and with each (k, beta) of a grid.

    python bench/query_bank.py [--image-encoder efficientnet-lite1] [--work DIR]

The banks measured are the shipped ones (``pretrained/banks``, built by ``recipes/banks.py``).
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
their 5 captions holding the words) and the 3,000 fashion products of recipes/fusion.py
("<colour> <type>" P@10 of the head alone); the held-out photos and the fashion test split are
never read. ``k`` and ``beta`` were chosen on the everyday head's validation by this grid; the
recipes write them into each head's manifest ("query_bank").
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, FLICKR, ROOT, fashion_dev_rows, flickr_split, machine, require, thumbnail_4_3

from imgsearch.embed.job import EmbedOptions
from imgsearch.encoders import DEFAULT_IMAGE_ENCODER, load_text_encoder
from imgsearch.encoders.heads import Head
from imgsearch.indexing.build import embed_folder, head_root
from imgsearch.search import hubness
from imgsearch.store import Store
from recipes import photo_head
from recipes.banks import BANKS, BETA, GRID, STOP, K, caption_vectors, captions_by_image, words_of
from recipes.cli import WORK
from recipes.photo_head import FASHION_VAL, features_of, phrase_queries, precision_at_10, rank_of_truth


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
    parser.add_argument("--work", type=Path, default=None, help="recipes/photo_head.py's cache dir")
    args = parser.parse_args()
    require(FLICKR)
    require(FASHION / "products.csv")
    photo_head.IMAGE_ENCODER = args.image_encoder
    suffix = "" if args.image_encoder == DEFAULT_IMAGE_ENCODER else f"-{args.image_encoder}"
    work = args.work or WORK / f"photo-head{suffix}"
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}\nimage encoder: {args.image_encoder}")
    st = Store(work / "store")
    embed_folder([str(FLICKR / "images")], st, EmbedOptions(image_encoder=args.image_encoder))
    gen = st.require()
    names = [Path(i.path).name for i in gen.items]
    paths = [Path(i.path) for i in gen.items]
    _, val, _ = flickr_split(names)
    by_image = captions_by_image()
    texts = caption_vectors(work, names, by_image)
    built = {name: hubness.bank(name) for kind in BANKS.values() for name in kind}  # the shipped banks
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


if __name__ == "__main__":
    main()
