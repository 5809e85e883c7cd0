"""Train/test splits by product id, so a model is never measured on what it was trained on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from imgsearch.errors import UserError

SPLIT_MOD = 5
PARTS = ("test", "train", "all")


def is_test_item(path: str) -> bool:
    """Test split = numeric file stem (product id) mod 5 == 0; other names hash into it."""
    stem = Path(path).stem
    if stem.isdigit():
        return int(stem) % SPLIT_MOD == 0
    return int(hashlib.sha1(stem.encode("utf-8", "surrogateescape")).hexdigest(), 16) % SPLIT_MOD == 0


def split_rows(gen, part: str) -> np.ndarray:
    """Rows of a store generation in the ``part`` split (``test``, ``train`` or ``all``)."""
    if part == "all":
        return np.arange(gen.count)
    if part not in PARTS:
        raise UserError("--split must be test, train or all")
    want = part == "test"
    return np.array([r for r, item in enumerate(gen.items) if is_test_item(item.path) == want], np.int64)
