"""How per-space scores become one ranking: calibration, and weights fitted per query kind.

Each space's raw score is standardised per query against a fixed sample of the collection
(``search.Searcher._standardise``: z = (s - mean) / std). Those z-scores have heavy tails in
some spaces — a colour word matched by a rare colour, a rare word in BM25 — where one space
would swamp the others (colour z = 11.6 against photo z = 1.1 for a caption naming "pink").
``calibrate`` bounds them with a soft clip, ``c · tanh(z / c)``: monotonic, so each space's own
ranking is unchanged, and no space can add more than ``c`` times its weight.

The weights per query kind (``text@titled``, ``text@shots``, ``text@photos``, ``image``,
``image+text``) are fitted by ``recipes/fusion.py`` on development splits of the shared
labelled sets and shipped in ``pretrained/fusion.json`` with their provenance (with ``compose``,
how much a query photo counts beside the words in a text head's query); a space or kind
that file does not cover falls back to the measured rules in ``Searcher.default_weight``. A folder
without titles whose photos are unlike the photo head's training photos gets its own text weights
at index time (``imgsearch.indexing.trust``, recorded in the manifest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from imgsearch.shipped import PRETRAINED

FILE = PRETRAINED / "fusion.json"


# With a query photo, a text head's query is the unit text vector plus ``compose`` times the photo's
# unit projection (``Searcher._head_query``). Where no fit names it: 1, the two in equal parts.
EQUAL_PARTS = 1.0


@dataclass(frozen=True)
class Fusion:
    clip: float | None = None  # None: raw z-scores (no calibration)
    weights: dict[str, dict[str, float]] = field(default_factory=dict)  # kind → space → weight
    provenance: dict = field(default_factory=dict)
    compose: float = EQUAL_PARTS  # the photo's part in a photo + words head query, chosen with the weights

    def calibrate(self, z: np.ndarray) -> np.ndarray:
        if not self.clip:
            return z
        return (self.clip * np.tanh(np.asarray(z, np.float32) / self.clip)).astype(np.float32)

    def weight(self, kind: str, space: str) -> float | None:
        """The fitted weight of ``space`` for queries of ``kind``; None where none was fitted."""
        return self.weights.get(kind, {}).get(space)

    def to_json(self) -> dict:
        return {
            "clip": self.clip,
            "compose": self.compose,
            "weights": self.weights,
            "provenance": self.provenance,
        }


@cache
def load(path: Path = FILE) -> Fusion:
    """The shipped fusion table (an empty one, i.e. the rules alone, if the file is absent)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Fusion()
    compose = data.get("compose", EQUAL_PARTS)
    return Fusion(data.get("clip"), data.get("weights") or {}, data.get("provenance") or {}, compose)


CALIBRATION_SAMPLE = 1000
SAMPLE_EXACT_BELOW = 100_000  # up to here the sample costs a few ms and stays what it always was


def calibration_sample(n: int) -> np.ndarray:
    """The rows whose scores calibrate each space, fixed for a collection: ``CALIBRATION_SAMPLE``
    distinct rows (all of a small one); above ``SAMPLE_EXACT_BELOW`` rows drawn with replacement,
    duplicates dropped (drawing without replacement permutes all ``n`` rows: 60 ms at 1M items)."""
    rng = np.random.default_rng(0)
    if n <= SAMPLE_EXACT_BELOW:
        return np.sort(rng.choice(n, size=min(n, CALIBRATION_SAMPLE), replace=False))
    return np.unique(rng.integers(0, n, CALIBRATION_SAMPLE))
