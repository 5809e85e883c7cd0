"""Hubness correction for the shipped photo heads: query banks and each item's biases.

In a space where sentences meet images, some images ("hubs") sit close to almost every query and
crowd the top of every text query. CSLS (Conneau et al. 2018) and query-bank normalisation
(Bogolin et al. 2022) take that out: an item's score is its cosine with the query minus
``beta`` × its mean cosine with its ``k`` nearest queries of a fixed bank of typical queries.
The bank must look like the query: a bank of captions helps caption-like queries and hurts
one- and two-word ones, which a bank of words helps (``bench/query_bank.py``). So a head has a
bank per kind of query, and each item one bias per bank.

The biases depend on the item alone, so ``index`` works them out once (``item_bias``) and the
store keeps them beside the space's vectors; a query only subtracts the column of its bank
(``column``), in the exact re-rank of the candidates. An Annoy index still proposes its 300
nearest by cosine, which is enough: on the Flickr8k hold-out the biases spread 0.16-0.24 (5-95 %),
and for 500 captions no item of a corrected top 10 ranked below 37th by cosine.

A shipped head names its banks and parameters in its manifest: ``"query_bank": {"banks":
[{"bank": "everyday-words", "max_words": 3}, {"bank": "everyday"}], "k": 20, "beta": 0.5}``
(the first bank whose ``max_words`` covers the query serves it). Banks are sentence vectors of
the head's own training texts, in ``pretrained/banks/NAME.npy``.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from imgsearch.errors import UserError
from imgsearch.npyio import load_npy
from imgsearch.shipped import PRETRAINED

BANKS = PRETRAINED / "banks"
BLOCK = 4096  # rows per matmul: (4096 × 5000) float32 is 80 MB


@cache
def bank(name: str) -> np.ndarray:
    """The sentence vectors of bank ``name`` (float32)."""
    path = BANKS / f"{name}.npy"
    if not name.replace("-", "").isalnum() or not path.exists():
        raise UserError(f"the query bank {name!r} is missing from the package; reinstall imgsearch")
    return np.asarray(load_npy(path), np.float32)


def item_bias(head, outputs: np.ndarray) -> np.ndarray | None:
    """(n, banks) biases of ``head``'s outputs, a column per bank of its manifest (None: a head
    without a query bank)."""
    spec = head.info.get("query_bank")
    if not spec:
        return None
    k, beta = int(spec["k"]), float(spec["beta"])
    return np.stack([bias_against(bank(b["bank"]), outputs, k, beta) for b in spec["banks"]], axis=1)


def bias_against(queries: np.ndarray, outputs: np.ndarray, k: int, beta: float) -> np.ndarray:
    """``beta`` × each output's mean cosine with its ``k`` nearest ``queries``."""
    out = np.zeros(len(outputs), np.float32)
    k = min(k, len(queries))
    for start in range(0, len(outputs), BLOCK):
        sims = np.asarray(outputs[start : start + BLOCK], np.float32) @ queries.T
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        out[start : start + len(sims)] = beta * top.mean(axis=1)
    return out


def column(spec: dict | None, texts: list[str]) -> int | None:
    """The bias column that serves a query of ``texts`` (its longest text's word count decides),
    or None: no bank covers it."""
    if not spec or not texts:
        return None
    words = max(len(t.split()) for t in texts)
    for i, b in enumerate(spec["banks"]):
        if b.get("max_words") is None or words <= b["max_words"]:
            return i
    return None
