"""Per-folder self-calibration at index time: can the shipped photo head be trusted on these photos?

A shipped photo head learnt its text space from one kind of photos (everyday Flickr photos; the
product-shot head also fashion products). On photos unlike those it still answers every query, and
with the fitted text weights (``pretrained/fusion.json``) it answers alone: on grocery photos
"banana" found mushrooms, although the auto tags read "banana" correctly (issue 24).

So at index time the folder's image features are compared with a sample of the head's own training
photos (``pretrained/trust.npz``): each of up to ``SAMPLE`` folder photos finds its most similar
training photo, and the median of those cosines is the folder's *familiarity* to the head. At or
above the threshold fitted by ``recipes/trust.py`` (``pretrained/trust.json``, fitted and judged
leave-one-domain-out) the fitted weights hold. Below it the folder is out of the head's domain, and
text queries weigh the evidence that does not depend on the head: the classifier's classes read
through WordNet and the auto tags' sentence vectors, equally (a rule, not a fit: the one domain
that falls back is the one it is judged on), with the colour words' fitted weight; the head gets
none. The decision, its numbers and the weights go into the manifest (``trust``), and ``query -f
json`` shows the weights each query used.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from imgsearch.shipped import PRETRAINED

FILE = PRETRAINED / "trust.json"
DEFAULT = True  # `index` calibrates unless --no-calibrate (bench/domains.py decided it)
SAMPLE = 500  # folder photos compared: the median settles well before this (and costs ~10 ms)
# Out of the head's domain: the classifier's evidence, read two ways, equally; the head none.
FALLBACK = {"wordnet": 1.0, "text": 1.0, "photo": 0.0, "lexical": 0.0}


@cache
def load(path: Path = FILE) -> dict | None:
    """The fitted threshold and the heads' training samples (None where not shipped)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        with np.load(path.with_suffix(".npz")) as data:
            refs = {name: data[name].astype(np.float32) for name in data.files}
    except FileNotFoundError:
        return None
    return {**info, "references": refs}


def stamp() -> str | None:
    """Which fit a store's record was made with (its date): a newer fit re-derives the record."""
    info = load()
    return None if info is None else info["provenance"]["date"]


def familiarity(image: np.ndarray, reference: np.ndarray) -> float:
    """Median over (a fixed sample of) the folder's photos of the cosine to the most similar
    training photo of the head: high where the folder looks like what the head learnt from."""
    rows = np.random.default_rng(0).permutation(len(image))[:SAMPLE]
    folder = _unit(np.asarray(image[np.sort(rows)], np.float32))
    return float(np.median((folder @ _unit(reference).T).max(axis=1)))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def decide(image: np.ndarray, head: str, kind: str, fitted: dict[str, float], image_id: str) -> dict | None:
    """The manifest's ``trust`` record for a folder whose text queries are ``kind`` and whose photo
    head is ``head`` (``photos`` or ``shots``): its familiarity, the threshold, and the weights its
    text queries get (``fitted``: the kind's weights from ``pretrained/fusion.json``). None where
    nothing is shipped for this image encoder, or the folder is empty."""
    info = load()
    if (
        info is None
        or info.get("image_encoder") != image_id
        or head not in info["references"]
        or not len(image)
    ):
        return None
    score = familiarity(image, info["references"][head])
    threshold = float(info["threshold"])
    record = {"kind": kind, "head": head, "familiarity": round(score, 4), "threshold": threshold}
    if score >= threshold:
        why = f"photos like the {head} head's training photos ({score:.3f} >= {threshold}): fitted weights"
        return {**record, "in_domain": True, "weights": dict(fitted), "why": why}
    weights = {**FALLBACK, "colour": fitted.get("colour", 0.0)}
    why = (
        f"photos unlike the {head} head's training photos ({score:.3f} < {threshold}): "
        "classes (wordnet) and auto tags (text) weigh equally, the head not at all"
    )
    return {**record, "in_domain": False, "weights": weights, "why": why}
