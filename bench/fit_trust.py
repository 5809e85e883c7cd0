"""Fit the familiarity threshold of ``imgsearch/indexing/trust.py``, leave-one-domain-out; ship it with its
provenance.

    python bench/fit_trust.py            # fit, print the familiarities and each fold's threshold
    python bench/fit_trust.py --ship     # also write imgsearch/pretrained/trust.{json,npz}

References (what each shipped photo head trained on, ``pretrained/fusion.json``'s provenance): a
seeded 200 of the fashion development products outside fit_fusion's 3,000 (``shots`` head) and a
seeded 200 of the Flickr8k training images (both heads). Development folders, one per domain, each
a seeded 300 never used by the held-out tables: fashion products from fit_fusion's 3,000 (the
shots head never trained on them), Flickr8k validation images (the heads' early stopping), grocery
*train* photos. All indexed through the CLI; their image vectors read from the stores.

A (folder, head) pair is in the head's domain where the head trained on photos of that domain:
fashion-shots, flickr-shots, flickr-photos; fashion-photos and grocery with either head are out.
A threshold is the highest out-of-domain familiarity among the pairs of the domains it is fitted
on: the head keeps its fitted weights unless a folder is at least as unlike its training photos as
a domain known to be foreign to it. (The first rule tried, the midpoint between the lowest
in-domain and the highest out-of-domain familiarity, failed its own leave-one-out check on these
development folders: fitted on fashion and grocery, where the only in-domain pair is the uniform
product shots at 0.80, it put the threshold at 0.63, above the everyday photos' 0.54. Product
shots resemble each other far more than everyday photos do, so the in-domain side says little.)
Each fold (one domain left out) gets its
own threshold, printed with the left-out domain's development familiarity; ``bench/domains.py``
checks that the left-out domain's held-out folder gets the same decision from its fold's
threshold as from the shipped one (fitted on all three), so its CLI figures are leave-one-out ones.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, FLICKR, ROOT, SHARED, fashion_dev_rows, flickr_split, machine, require

from imgsearch.indexing import trust
from imgsearch.store import find_store

OUT = ROOT / "bench" / "out" / "trust"
GROCERY = SHARED / "grocery"
IMGSEARCH = os.environ.get("IMGSEARCH", str(ROOT / ".venv" / "bin" / "imgsearch"))
DOMAINS = ("fashion", "flickr", "grocery")
HEADS = ("shots", "photos")
IN_DOMAIN = {("fashion", "shots"), ("flickr", "shots"), ("flickr", "photos")}
REFERENCE, DEV = 200, 300


def folder_of(name: str, sources: list[Path]) -> Path:
    """A folder of symlinks to ``sources``, indexed through the CLI (kept between runs)."""
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    for src in sources:
        link = folder / src.name
        if not link.exists():
            link.symlink_to(src.resolve())
    subprocess.run([IMGSEARCH, "index", str(folder), "--quiet"], check=True)
    return folder


def image_vectors(folder: Path) -> tuple[np.ndarray, str]:
    gen = find_store(folder / ".imgsearch").require()
    return np.asarray(gen.vectors["image"], np.float32), gen.encoders["image"]["id"]


def flickr_names() -> tuple[list[str], list[str]]:
    """(training, validation) Flickr8k image names, as the photo heads split them."""
    names = sorted(p.name for p in (FLICKR / "images").glob("*.jpg"))
    train, val, _ = flickr_split(names)
    return [names[i] for i in train], [names[i] for i in val]


def sources() -> dict[str, list[Path]]:
    dev_fashion = fashion_dev_rows(3000)  # fit_fusion's sample: the shots head never trained on it
    trained_fashion = fashion_dev_rows()[3000:]
    train, val = flickr_names()
    with open(GROCERY / "items.csv", encoding="utf-8") as f:
        grocery = [GROCERY / r["path"] for r in csv.DictReader(f) if r["split"] == "train"]
    pick = lambda xs, n: random.Random(0).sample(xs, n)  # noqa: E731
    return {
        "ref-fashion": [FASHION / r["filename"] for r in pick(trained_fashion, REFERENCE)],
        "ref-flickr": [FLICKR / "images" / n for n in pick(train, REFERENCE)],
        "dev-fashion": [FASHION / r["filename"] for r in pick(dev_fashion, DEV)],
        "dev-flickr": [FLICKR / "images" / n for n in pick(val, DEV)],
        "dev-grocery": pick(grocery, DEV),
    }


def threshold(scores: dict[tuple[str, str], float], domains: tuple[str, ...]) -> float:
    """The highest out-of-domain familiarity of the pairs of ``domains`` (rounded up: a folder at
    least that unfamiliar is out)."""
    high_out = max(scores[p] for p in scores if p[0] in domains and p not in IN_DOMAIN)
    return float(np.ceil(high_out * 1e4) / 1e4)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ship", action="store_true", help="write imgsearch/pretrained/trust.{json,npz}")
    args = parser.parse_args()
    for path in (FASHION / "products.csv", FLICKR / "captions.csv", GROCERY / "items.csv"):
        require(path)
    vectors, image_id = {}, None
    for name, files in sources().items():
        vectors[name], image_id = image_vectors(folder_of(name, files))
    refs = {
        "photos": vectors["ref-flickr"],
        "shots": np.vstack([vectors["ref-fashion"], vectors["ref-flickr"]]),
    }
    scores = {(d, h): trust.familiarity(vectors[f"dev-{d}"], refs[h]) for d in DOMAINS for h in HEADS}
    for (d, h), s in scores.items():
        print(f"{d:8} {h:7} familiarity {s:.4f} {'in' if (d, h) in IN_DOMAIN else 'out'}")
    folds = {}
    for left_out in DOMAINS:
        fitted_on = tuple(d for d in DOMAINS if d != left_out)
        folds[left_out] = {"fitted_on": list(fitted_on), "threshold": threshold(scores, fitted_on)}
        print(f"left out {left_out}: threshold {folds[left_out]['threshold']} (fitted on {fitted_on})")
    shipped = threshold(scores, DOMAINS)
    print(f"shipped threshold (all three): {shipped}")
    if args.ship:
        ship(refs, image_id, shipped, folds, scores)


def ship(refs: dict, image_id: str | None, shipped: float, folds: dict, scores: dict) -> None:
    info = {
        "image_encoder": image_id,
        "threshold": shipped,
        "folds": folds,
        "development": {f"{d}/{h}": round(s, 4) for (d, h), s in scores.items()},
        "provenance": {
            "fitted_by": "python bench/fit_trust.py --ship",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "references": f"photos: {REFERENCE} seeded Flickr8k training images; shots: those and "
            f"{REFERENCE} seeded fashion development products outside fit_fusion's 3,000",
            "data": f"development folders of {DEV} seeded photos each: fashion products from "
            "fit_fusion's 3,000, Flickr8k validation images, grocery train photos",
            "never_used": "fashion products with id mod 5 == 0; bench/flickr8k_holdout.txt; grocery val",
            "in_domain": sorted(f"{d}/{h}" for d, h in IN_DOMAIN),
        },
    }
    trust.FILE.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    np.savez_compressed(trust.FILE.with_suffix(".npz"), **{h: r.astype(np.float16) for h, r in refs.items()})
    print(f"wrote {trust.FILE} and its .npz")


if __name__ == "__main__":
    main()
