"""Helpers shared by the benchmarks: where the shared data is, its development splits, and what
machine this is. The splits are the recipes' (``recipes/splits.py``): one definition of what the
shipped artifacts were fitted on, so a benchmark measures on what they never saw."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first, not the project root
    sys.path.insert(1, str(ROOT))

from recipes.provenance import machine  # noqa: E402
from recipes.splits import (  # noqa: E402
    FASHION,
    FLICKR,
    FLICKR_HOLDOUT,
    SHARED,
    fashion_dev_rows,
    flickr_holdout,
    flickr_split,
    require,
    thumbnail_4_3,
)

__all__ = [
    "FASHION",
    "FLICKR",
    "FLICKR_HOLDOUT",
    "ROOT",
    "SHARED",
    "fashion_dev_rows",
    "flickr_holdout",
    "flickr_split",
    "machine",
    "require",
    "thumbnail_4_3",
]
