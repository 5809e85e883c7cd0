"""Recipe: imgsearch/pretrained/banks/*.npy, the query banks of the shipped photo heads' hubness
correction (``imgsearch/search/hubness.py``), and the ``query_bank`` entry each head names them by.

    python -m recipes banks          # or: python recipes/banks.py (--dry-run: build, write nothing)

Banks are MiniLM vectors of the heads' own training texts (so they serve every image encoder),
one for short queries (at most ``SHORT`` words) and one for sentences, because a bank must look
like the queries it corrects (a bank of captions hurt one- and two-word queries):
- everyday heads: ``everyday-words`` = 5,000 content words of the Flickr8k training captions;
  ``everyday`` = 5,000 of those captions;
- product-shot heads (trained on both): ``products-short`` = 2,500 of those words + 2,500
  "<colour> <type>" phrases of the fashion training products; ``products`` = 2,500 captions +
  2,500 titles and phrases of those products.
Only texts are encoded (no photo): a few minutes on 2 cores, most of it the 31,080 captions
(cached in ``recipes/out/photo-head/captions.npy``, shared with ``recipes/photo_head.py``).
``K`` and ``BETA`` were chosen on the everyday head's validation photos by the grid that
``bench/query_bank.py`` prints (the held-out photos never read); they are written into each
head's manifest (``query_bank``), which is where ``imgsearch`` reads them.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: the project root on the path, as for `-m recipes`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imgsearch.encoders import load_text_encoder
from recipes import provenance
from recipes.cli import WORK
from recipes.splits import FASHION, FLICKR, FLICKR_HOLDOUT, fashion_dev_rows, flickr_names, flickr_split

BANK_SIZE = 5000
SHORT = 3  # words: a query this short is served by the short bank
K, BETA = 20, 0.5  # chosen on the everyday head's validation (the grid bench/query_bank.py prints)
GRID = [(k, beta) for k in (5, 20, 100) for beta in (0.25, 0.5, 0.75)]
BANKS = {"everyday": ("everyday-words", "everyday"), "shots": ("products-short", "products")}
_STOP_WORDS = (
    "a an the of in on at and with is are to his her their its for from by two three four one some "
    "other while as into up down out over near who that this it them there"
)
STOP = frozenset(_STOP_WORDS.split())
FASHION_VAL = 3000  # recipes/fusion.py's sample: the product-shot heads never trained on it
# A rebuilt bank within this of the shipped one (every value) is the same bank: two float16 steps
# at the largest entries of a unit 384-d vector; a rebuild on another machine differed by one.
ATOL = 5e-4


def spec(kind: str) -> dict:
    """A head manifest's ``query_bank`` entry (written by recipes/photo_head.py and this recipe)."""
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


def captions_by_image() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with open(FLICKR / "captions.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["image"], []).append(row["caption"])
    return out


def caption_vectors(work: Path, names: list[str], captions: dict[str, list[str]]) -> np.ndarray:
    """(n, 5, 384) MiniLM vectors, cached."""
    cache = work / "captions.npy"
    if cache.exists():
        vecs = np.load(cache)
        if vecs.shape[0] == len(names):
            return vecs
    enc = load_text_encoder("minilm")
    flat = [c for name in names for c in captions[name][:5]]
    t = time.perf_counter()
    vecs = enc.encode(flat).reshape(len(names), 5, -1)
    print(f"encoded {len(flat)} captions in {time.perf_counter() - t:.0f} s")
    np.save(cache, vecs)
    return vecs


def fashion_phrase(row: dict) -> str:
    """The attribute phrasing of a product, "<baseColour> <articleType>" in lower case."""
    return f"{row['baseColour']} {row['articleType']}".lower()


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


def training_banks() -> dict[str, np.ndarray]:
    """The banks built from the Flickr8k training captions (vectors cached with the photo heads')."""
    names = flickr_names()
    rows, _, _ = flickr_split(names)
    by_image = captions_by_image()
    texts = caption_vectors(WORK / "photo-head", names, by_image)
    return build_banks(
        [c for r in rows for c in by_image[names[r]][:5]], texts[rows].reshape(-1, texts.shape[2])
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="build and print; write nothing")
    args = parser.parse_args()
    provenance.shared_or_skip(FLICKR / "captions.csv", FASHION / "products.csv")
    from imgsearch.search import hubness

    (WORK / "photo-head").mkdir(parents=True, exist_ok=True)
    built = training_banks()
    for name, bank in built.items():
        print(f"{name}: {bank.shape[0]} x {bank.shape[1]}")
    if args.dry_run:
        return
    banks = {name: bank.astype(np.float16) for name, bank in built.items()}
    diffs = {n: provenance.max_abs_diff(hubness.BANKS / f"{n}.npy", bank) for n, bank in banks.items()}
    written = {
        f"{name}.npy": provenance.write_npy(hubness.BANKS / f"{name}.npy", bank, atol=ATOL)
        for name, bank in banks.items()
    }
    stale = stale_heads()
    provenance.record(
        hubness.BANKS,
        "banks",
        [hubness.BANKS / f"{name}.npy" for name in built],
        inputs=provenance.inputs_of(
            {
                "captions": FLICKR / "captions.csv",
                "products": FASHION / "products.csv",
                "holdout": FLICKR_HOLDOUT,
            }
        ),
        development={
            "bank_size": BANK_SIZE,
            "short_words": SHORT,
            "k": K,
            "beta": BETA,
            "banks": {kind: list(names) for kind, names in BANKS.items()},
        },
        written=written,
        tolerance=f"float16 values within {ATOL} of the file on disk (largest difference per bank: "
        + ", ".join(f"{n} {d:.2e}" if d is not None else f"{n} new" for n, d in diffs.items())
        + "): MiniLM's float32 output differs in its last bits with the batch, library versions and machine",
    )
    for line in stale:
        print(line)


def stale_heads() -> list[str]:
    """A line for each shipped head whose manifest names other banks or parameters than ``spec``
    (``recipes/photo_head.py`` writes the entry with the head)."""
    import json

    from imgsearch.shipped import PRETRAINED

    lines = []
    for manifest in sorted(PRETRAINED.rglob("photo.json")):
        kind = "shots" if manifest.parent.name == "shots" else "everyday"
        if json.loads(manifest.read_text(encoding="utf-8")).get("query_bank") != spec(kind):
            lines.append(
                f"{manifest}: its query_bank is not {spec(kind)}: rebuild it (recipes/photo_head.py)"
            )
    return lines


if __name__ == "__main__":
    main()
