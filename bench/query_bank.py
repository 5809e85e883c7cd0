"""Query banks for the shipped photo heads' hubness correction (imgsearch/hubness.py): build,
measure on the validation splits, and (with --ship) install.

    python bench/query_bank.py [--image-encoder efficientnet-lite1] [--work DIR] [--ship]

Banks are MiniLM sentence vectors of the heads' own training texts, so they serve every image
encoder: ``everyday`` = 5,000 captions of the Flickr8k training photos; ``products`` = 2,500 of
those + 2,500 titles and "<colour> <type>" phrases of the fashion training products (the heads
for product shots trained on both). Validation = the photo heads' own (the Flickr8k photos kept
for early stopping, at 224 px and as 200-px 4:3 thumbnails; the 3,000 fashion products of
bench/fit_fusion.py, "<colour> <type>" P@10 of the head alone); the held-out photos and the
fashion test split are never read. ``k`` and ``beta`` were chosen on the everyday head's
validation R@10 (grid below), then checked on the product-shot head.
--ship writes pretrained/banks/*.npy and names the bank in each shipped head of the image
encoder (its manifest's "query_bank"); ``index`` then re-derives the heads' spaces.
"""

from __future__ import annotations

import argparse
import json
import sys
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
)

from imgsearch import hubness
from imgsearch.build import embed_folder, head_root
from imgsearch.embed import EmbedOptions
from imgsearch.encoders import DEFAULT_IMAGE_ENCODER, load_text_encoder
from imgsearch.heads import Head
from imgsearch.store import Store

BANK_SIZE = 5000
K, BETA = 20, 0.5  # chosen on the everyday head's validation (the grid this script prints)
GRID = [(k, beta) for k in (5, 20, 100) for beta in (0.25, 0.5, 0.75)]


def spec(bank_name: str) -> dict:
    """A head manifest's ``query_bank`` entry (also written by bench/photo_text_search.py --ship)."""
    return {"bank": bank_name, "k": K, "beta": BETA, "chosen_by": "python bench/query_bank.py"}


def banks(work: Path, names: list[str], rows: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    captions = caption_vectors(work, names, captions_by_image())[rows].reshape(-1, 384)
    everyday = captions[np.sort(rng.permutation(len(captions))[:BANK_SIZE])]
    train = fashion_dev_rows()[FASHION_VAL:]  # the products the shots heads trained on
    enc = load_text_encoder("minilm")
    texts = [r["productDisplayName"] or fashion_phrase(r) for r in train] + [fashion_phrase(r) for r in train]
    picked = np.sort(rng.permutation(len(texts))[: BANK_SIZE // 2])
    products = np.concatenate([everyday[: BANK_SIZE // 2], enc.encode([texts[i] for i in picked])])
    return {"everyday": everyday, "products": products}


def recall10(queries: np.ndarray, gallery: np.ndarray, bias: np.ndarray) -> float:
    sims = queries @ gallery.T - bias[None]
    truth = np.repeat(np.arange(len(gallery)), len(queries) // len(gallery))
    ranks = (sims > sims[np.arange(len(sims)), truth][:, None]).sum(axis=1) + 1
    return float((ranks <= 10).mean())


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
    built = banks(work, names, rows)
    texts = caption_vectors(work, names, captions_by_image())
    queries = texts[val].reshape(-1, texts.shape[2])
    images = np.asarray(gen.vectors["image"], np.float32)[val]
    thumbs = features_of([paths[r] for r in val], thumbnail_4_3, work, "val-thumbnails")
    frows = fashion_dev_rows()
    fpaths = [FASHION / r["filename"] for r in frows]
    fashion = features_of(fpaths, lambda d: d, work, "fashion-dev")[:FASHION_VAL]
    pairs, truth = phrase_queries(frows[:FASHION_VAL])
    fq = load_text_encoder("minilm").encode(pairs)
    root = head_root(args.image_encoder)
    for folder, bank_name in ((root, "everyday"), (root / "shots", "products")):
        if not (folder / "photo.json").exists():
            continue
        head, bank = Head.load(folder, "photo"), built[bank_name]
        outs = {"224 px": head(images), "thumbnails": head(thumbs), "fashion": head(fashion)}
        where = folder.relative_to(ROOT)
        print(f"{where} with the {bank_name!r} bank (validation R@10 224 px / thumbnails; fashion P@10):")
        for k, beta in [(0, 0.0), *GRID]:
            bias = {n: hubness.bias_against(bank, o, max(k, 1), beta) for n, o in outs.items()}
            cells = [recall10(queries, outs[n], bias[n]) for n in ("224 px", "thumbnails")]
            cells.append(precision_at_10(fq @ outs["fashion"].T - bias["fashion"][None], truth))
            label = "none" if not k else f"k {k:3d} beta {beta:.2f}"
            mark = " <- shipped" if (k, beta) == (K, BETA) else ""
            print(f"  {label:18s} {cells[0]:.4f} / {cells[1]:.4f}; {cells[2]:.4f}{mark}")
        if args.ship:
            hubness.BANKS.mkdir(parents=True, exist_ok=True)
            np.save(hubness.BANKS / f"{bank_name}.npy", bank.astype(np.float16))
            # only the manifest changes: re-saving the head would widen its float16 weights
            meta = json.loads((folder / "photo.json").read_text())
            meta["query_bank"] = spec(bank_name)
            (folder / "photo.json").write_text(json.dumps(meta, indent=2))
            print(f"  shipped: {where}/photo.json names bank {bank_name!r} (k {K}, beta {BETA})")


if __name__ == "__main__":
    main()
