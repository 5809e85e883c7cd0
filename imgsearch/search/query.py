"""A query as the user gave it: positives and negatives per modality, weights, k, filters; checked here."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from imgsearch import spaces
from imgsearch.errors import UserError
from imgsearch.search.filters import Filters

_WEIGHTED = re.compile(r"^\s*([+-]?\d+(?:\.\d*)?)\s*:(.*)$")


@dataclass
class Query:
    """What the user asked: positives and negatives per modality, each with a weight."""

    images: list[tuple[str, float]] = field(default_factory=list)  # path, or "-" for stdin bytes
    texts: list[tuple[str, float]] = field(default_factory=list)
    not_texts: list[tuple[str, float]] = field(default_factory=list)
    not_images: list[tuple[str, float]] = field(default_factory=list)
    k: int = 10
    weights: dict[str, float] = field(default_factory=dict)
    like: list[str] = field(default_factory=list)  # indexed items (id or path): relevance feedback
    unlike: list[str] = field(default_factory=list)
    filters: Filters | None = None  # EXIF filters (imgsearch/search/filters.py): rows kept before ranking

    def is_empty(self) -> bool:
        return not (self.images or self.texts or self.like)


def parse_weighted(value: str) -> tuple[str, float]:
    """rclip-style ``"2:red bag"`` → ("red bag", 2.0); plain text has weight 1."""
    match = _WEIGHTED.match(value)
    if match and match[2].strip():
        return match[2].strip(), float(match[1])
    return value.strip(), 1.0


def parse_space_weights(value: str | None) -> dict[str, float]:
    """``"image=0.3,text=0.7"`` → {"image": 0.3, "text": 0.7}."""
    weights: dict[str, float] = {}
    for part in (value or "").split(","):
        if not part.strip():
            continue
        name, _, number = part.partition("=")
        name = name.strip()
        try:
            weights[name] = float(number)
        except ValueError:
            raise UserError(f"--weight: {part.strip()!r} is not name=number") from None
    return check_weights(weights)


def check_weights(weights: object) -> dict[str, float]:
    """Space weights as given in a batch line or by ``parse_space_weights``: known spaces, finite numbers."""
    if not isinstance(weights, dict):
        raise UserError('weight must be an object such as {"image": 0.3, "text": 1}')
    checked = {}
    for name, value in weights.items():
        if name not in spaces.BY_NAME:
            raise UserError(f"--weight: unknown space {name!r}; use {spaces.help_text()}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise UserError(f"--weight: {name} must be a finite number, not {value!r}")
        if abs(value) > MAX_WEIGHT:
            raise UserError(f"--weight: {name}={value:g} is out of range (-{MAX_WEIGHT} to {MAX_WEIGHT})")
        checked[name] = float(value)
    return checked


# Weights are relative: spaces are standardised per query, so at 1000 to 1 the smaller weight
# has no say already. Far larger ones (1e40) overflowed the float32 scores to inf, and the
# search then blamed the index for scores that are not finite numbers.
MAX_WEIGHT = 1000


def build_query(
    images=(),
    texts=(),
    not_texts=(),
    not_images=(),
    k: int = 10,
    weights=None,
    like=(),
    unlike=(),
    filters: Filters | None = None,
) -> Query:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise UserError(f"-k/--top must be a whole number from 1 to {MAX_K}")
    q = Query(
        images=[_weighted(x, "image") for x in images],
        texts=[_weighted(x, "text") for x in texts],
        not_texts=[_weighted(x, "--not text") for x in not_texts],
        not_images=[_weighted(x, "--not-image") for x in not_images],
        k=k,
        weights=check_weights(weights) if isinstance(weights, dict) else parse_space_weights(weights),
        like=list(like),
        unlike=list(unlike),
        filters=filters,
    )
    if q.is_empty() and not filters:  # a filter alone lists its matches by date
        raise UserError(
            "empty query: give a query image, --text, --like and/or a filter such as --place "
            "(see `imgsearch query --help`)"
        )
    return q


MAX_K = 10_000  # a ranking deeper than this is an export, not a search


def _weighted(value: str, what: str) -> tuple[str, float]:
    text, weight = parse_weighted(value)
    if not text:
        raise UserError(f"empty {what}: give some words (or leave the option out)")
    if not math.isfinite(weight):
        raise UserError(f"{what} weight must be a finite number")
    if abs(weight) > MAX_WEIGHT:
        raise UserError(f"{what} weight {weight:g} is out of range (-{MAX_WEIGHT} to {MAX_WEIGHT})")
    return text, weight
