"""Auto tags: text an image gets from its own pixels when it has no title.

Two sources, both stored with the item so users can see why it matched:
the top ImageNet classes of the image encoder's classifier head (with
confidences) and the dominant colour names of the foreground.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from imgsearch import colors

TOP_CLASSES = 5
MIN_CLASS_PROB = 0.02
TEXT_CLASSES = 3  # how many class names go into the embedded text
TEXT_MIN_PROB = 0.05


@cache
def imagenet_names() -> tuple[str, ...]:
    from keras_hub.src.utils.imagenet.imagenet_utils import imagenet_id_to_name

    return tuple(imagenet_id_to_name(i).replace("_", " ") for i in range(1000))


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
