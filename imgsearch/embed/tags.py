"""Auto tags: text an image gets from its own pixels when it has no title.

Two sources, both stored with the item so users can see why it matched:
the top ImageNet classes of the image encoder's classifier head (with
confidences) and the dominant colour names of the foreground.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from imgsearch.embed import colors
from imgsearch.shipped import DATA

TOP_CLASSES = 5
MIN_CLASS_PROB = 0.02
TEXT_CLASSES = 3  # how many class names go into the embedded text
TEXT_MIN_PROB = 0.05


@cache
def imagenet_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names (keras-hub's, underscores as spaces), shipped as a text
    file so that queries never import keras-hub for them."""
    path = DATA / "imagenet_classes.txt"
    return tuple(path.read_text(encoding="utf-8").splitlines())


@cache
def imagenet_ids() -> dict[str, int]:
    return {name: i for i, name in enumerate(imagenet_names())}


def class_arrays(items: list) -> tuple[np.ndarray, np.ndarray]:
    """Sparse top-k class vectors of items: (ids (n, TOP_CLASSES) int32, sqrt-probs float32).

    sqrt of probabilities (the Hellinger embedding) makes the dot product of two class
    distributions their Bhattacharyya coefficient: "do they show the same kind of thing",
    largely independent of colour, which image features are not.
    """
    ids = np.zeros((len(items), TOP_CLASSES), np.int32)
    vals = np.zeros((len(items), TOP_CLASSES), np.float32)
    lookup = imagenet_ids()
    for row, item in enumerate(items):
        for j, (name, prob) in enumerate(item.tags.get("classes", [])[:TOP_CLASSES]):
            ids[row, j] = lookup.get(name, 0)
            vals[row, j] = np.sqrt(prob)
    norms = np.linalg.norm(vals, axis=1, keepdims=True)
    return ids, vals / np.maximum(norms, 1e-9)


def class_tags(probs: np.ndarray) -> list[tuple[str, float]]:
    names = imagenet_names()
    order = np.argsort(-probs)[:TOP_CLASSES]
    return [(names[i], round(float(probs[i]), 3)) for i in order if probs[i] >= MIN_CLASS_PROB]


def image_tags(colour_hist: np.ndarray, probs: np.ndarray | None) -> dict:
    tags: dict = {"colours": [(n, round(s, 3)) for n, s in colors.names_from_histogram(colour_hist)]}
    if probs is not None:
        tags["classes"] = class_tags(probs)
    return tags


def tag_text(tags: dict) -> str:
    """The sentence embedded for an untitled image, e.g. ``"red black purse, mailbag"``."""
    colour_words = " ".join(name for name, _ in tags.get("colours", []))
    classes = [n for n, p in tags.get("classes", []) if p >= TEXT_MIN_PROB][:TEXT_CLASSES]
    if not classes and tags.get("classes"):
        classes = [tags["classes"][0][0]]
    return " ".join(part for part in (colour_words, ", ".join(classes)) if part)
