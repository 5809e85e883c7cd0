"""Recipe: imgsearch/pretrained/trust.{json,npz}, the familiarity threshold of
``imgsearch/indexing/trust.py`` fitted leave-one-domain-out, and the heads' reference photos.

    python -m recipes trust              # or: python recipes/trust.py
    python recipes/trust.py --dry-run    # fit and print the familiarities and folds; write nothing

References (what each shipped photo head trained on, ``pretrained/fusion.json``'s provenance): a
seeded 200 of the fashion development products outside ``recipes/fusion.py``'s 3,000 (``shots`` head) and a
seeded 200 of the Flickr8k training images (both heads). Development folders, one per domain, each
a seeded 300 never used by the held-out tables: fashion products from the fusion recipe's 3,000 (the
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
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: the project root on the path, as for `-m recipes`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imgsearch.indexing import trust
from imgsearch.store import find_store
from recipes import provenance
from recipes.cli import WORK, imgsearch
from recipes.splits import FASHION, FLICKR, FLICKR_HOLDOUT, GROCERY, SHARED, fashion_dev_rows, flickr_split

OUT = WORK / "trust"
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
    imgsearch("index", str(folder), "--quiet")
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
    dev_fashion = fashion_dev_rows(3000)  # recipes/fusion.py's sample: the shots head never trained on it
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
    parser.add_argument("--dry-run", action="store_true", help="fit and print; write nothing")
    args = parser.parse_args()
    provenance.shared_or_skip(FASHION / "products.csv", FLICKR / "captions.csv", GROCERY / "items.csv")
    vectors, image_id, chosen = {}, None, sources()
    for name, files in chosen.items():
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
    fitted = threshold(scores, DOMAINS)
    print(f"threshold (all three): {fitted}")
    if not args.dry_run:
        write(refs, image_id, fitted, folds, scores, chosen)


def write(refs: dict, image_id: str | None, fitted: float, folds: dict, scores: dict, chosen: dict) -> None:
    info = {
        "image_encoder": image_id,
        "threshold": fitted,
        "folds": folds,
        "development": {f"{d}/{h}": round(s, 4) for (d, h), s in scores.items()},
        "provenance": {
            "fitted_by": "python recipes/trust.py",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": provenance.machine(),
            "references": f"photos: {REFERENCE} seeded Flickr8k training images; shots: those and "
            f"{REFERENCE} seeded fashion development products outside fit_fusion's 3,000",
            "data": f"development folders of {DEV} seeded photos each: fashion products from "
            "fit_fusion's 3,000, Flickr8k validation images, grocery train photos",
            "never_used": "fashion products with id mod 5 == 0; bench/flickr8k_holdout.txt; grocery val",
            "in_domain": sorted(f"{d}/{h}" for d, h in IN_DOMAIN),
        },
    }
    npz = trust.FILE.with_suffix(".npz")
    # "fitted_by" named the bench script before the recipe existed: the same fit, not a new one
    written = {
        trust.FILE.name: provenance.write_json(
            trust.FILE, info, volatile=provenance.VOLATILE | {"fitted_by"}
        ),
        npz.name: provenance.write_npz(npz, {h: r.astype(np.float16) for h, r in refs.items()}),
    }
    provenance.record(
        trust.FILE.parent,
        "trust",
        [trust.FILE, npz],
        inputs=provenance.inputs_of(
            {
                "products": FASHION / "products.csv",
                "captions": FLICKR / "captions.csv",
                "items": GROCERY / "items.csv",
                "holdout": FLICKR_HOLDOUT,
            },
            {
                **{str(FASHION / "images"): provenance.folder_input(FASHION / "images")},
                **{str(FLICKR / "images"): provenance.folder_input(FLICKR / "images")},
                **{str(GROCERY / "images"): provenance.folder_input(GROCERY / "images")},
                **{
                    f"{name}: the {len(files)} chosen photos": provenance.listing(files, SHARED)
                    for name, files in chosen.items()
                },
            },
        ),
        development={
            "threshold": fitted,
            "folds": folds,
            "familiarity": {f"{d}/{h}": round(s, 4) for (d, h), s in scores.items()},
            "image_encoder": image_id,
        },
        written=written,
    )


if __name__ == "__main__":
    main()
