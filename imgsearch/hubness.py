"""Hubness correction for the shipped photo heads: a query bank and each item's bias.

In a space where sentences meet images, some images ("hubs") sit close to almost every sentence
and crowd the top of every text query. CSLS (Conneau et al. 2018) and query-bank normalisation
(Bogolin et al. 2022) take that out: an item's score is its cosine with the query minus
``beta`` × its mean cosine with its ``k`` nearest sentences of a fixed bank of typical queries.
The bias depends on the item alone, so ``index`` works it out once (``item_bias``) and the store
keeps it beside the space's vectors; a query only subtracts it, in the exact re-rank of the
candidates. An Annoy index still proposes its 300 nearest by cosine, which is enough: on the
Flickr8k hold-out the biases spread 0.16-0.24 (5-95 %), and for 500 captions no item of a
corrected top 10 ranked below 37th by cosine.

A shipped head names its bank and parameters in its manifest (``"query_bank": {"bank": NAME,
"k": 20, "beta": 0.5}``); banks are sentence vectors of the head's own training texts, in
``pretrained/banks/NAME.npy`` (``bench/query_bank.py`` writes them and chose k and beta on the
heads' validation splits).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from imgsearch.errors import UserError
from imgsearch.npyio import load_npy

BANKS = Path(__file__).parent / "pretrained" / "banks"
BLOCK = 4096  # rows per matmul: (4096 × 5000) float32 is 80 MB


@cache
def bank(name: str) -> np.ndarray:
    """The unit sentence vectors of bank ``name`` (float32)."""
    path = BANKS / f"{name}.npy"
    if not name.replace("-", "").isalnum() or not path.exists():
        raise UserError(f"the query bank {name!r} is missing from the package; reinstall imgsearch")
    return np.asarray(load_npy(path), np.float32)


def item_bias(head, outputs: np.ndarray) -> np.ndarray | None:
    """Each item's bias in ``head``'s space (``beta`` × mean cosine with its ``k`` nearest bank
    sentences), or None for a head without a query bank."""
    spec = head.info.get("query_bank")
    if not spec:
        return None
    return bias_against(bank(spec["bank"]), outputs, int(spec["k"]), float(spec["beta"]))


def bias_against(queries: np.ndarray, outputs: np.ndarray, k: int, beta: float) -> np.ndarray:
    out = np.zeros(len(outputs), np.float32)
    k = min(k, len(queries))
    for start in range(0, len(outputs), BLOCK):
        sims = np.asarray(outputs[start : start + BLOCK], np.float32) @ queries.T
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        out[start : start + len(sims)] = beta * top.mean(axis=1)
    return out
