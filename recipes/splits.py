"""Where the shared data sets are, and the development splits the shipped artifacts are fitted on.

One definition for the recipes (which fit on these splits) and for ``bench/`` (which measures on
what they never saw): the fashion test split is the products with id mod 5 == 0
(``imgsearch.train.splits``), the Flickr8k hold-out is ``bench/flickr8k_holdout.txt``, grocery's
val split is never fitted on.
"""

from __future__ import annotations

import csv
import io
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FASHION = SHARED / "fashion"
FLICKR = SHARED / "flickr8k"
GROCERY = SHARED / "grocery"
FLICKR_HOLDOUT = ROOT / "bench" / "flickr8k_holdout.txt"


def require(path: Path) -> Path:
    """``path``, or exit with one line saying it is not there (the shared data sets are optional)."""
    if not path.exists():
        sys.exit(f"skipped: {path} is not present (shared data set)")
    return path


def fashion_dev_rows(n: int | None = None) -> list[dict]:
    """Rows of the shared fashion catalog outside the test split (id mod 5 != 0) whose photo exists,
    shuffled with seed 0; the first ``n`` are the fusion-fitting sample of ``recipes/fusion.py``
    (and the fashion validation part of ``recipes/photo_head.py``, which never trains on them)."""
    from imgsearch.train.splits import is_test_item

    with open(FASHION / "products.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if not is_test_item(r["filename"])]
    rows = [r for r in rows if (FASHION / r["filename"]).exists()]
    random.Random(0).shuffle(rows)
    return rows if n is None else rows[:n]


def flickr_holdout() -> set[str]:
    """The Flickr8k photos nothing is trained, fitted or chosen on (``bench/flickr8k_holdout.txt``)."""
    lines = FLICKR_HOLDOUT.read_text(encoding="utf-8").splitlines()
    return {n.strip() for n in lines if n.strip() and not n.startswith("#")}


def flickr_names() -> list[str]:
    """The Flickr8k photos' names in sorted order (the order ``flickr_split`` positions refer to)."""
    return sorted(p.name for p in (FLICKR / "images").glob("*.jpg"))


def flickr_split(names: list[str]):
    """Positions in ``names`` (the Flickr8k photos in sorted order): (training, validation,
    held-out). Validation is a seeded 10 % of the photos outside the hold-out list: the photo
    head's early stopping (``recipes/photo_head.py``) and ``recipes/fusion.py``'s photos."""
    import numpy as np

    holdout = flickr_holdout()
    test = np.array([i for i, n in enumerate(names) if n in holdout])
    perm = np.random.default_rng(0).permutation([i for i, n in enumerate(names) if n not in holdout])
    return np.sort(perm[len(perm) // 10 :]), np.sort(perm[: len(perm) // 10]), test


def thumbnail_4_3(data: bytes) -> bytes:
    """The held-out thumbnail condition: a 200-px-wide 4:3 JPEG thumbnail (quality 85)."""
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB").resize((200, 150))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()
