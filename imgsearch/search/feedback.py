"""Relevance feedback: move a query towards items the user liked and away from ones they did not.

Rocchio on the stored vectors (nothing is embedded again): in every space the index stores
item vectors for, the query vector becomes

    unit(query) + β · unit(mean(liked)) − γ · unit(mean(unliked))

Each part is unit length so β and γ mean the same whatever the space and however many
items were judged. A space the query itself did not reach (the image space of a text query)
gets the feedback alone, ``unit(liked) − γ/β · unit(unliked)``: searching fuses per-space
z-scores, so only the direction of a vector matters there. This is how "more like these"
(``--like`` with no text or image) works: the liked items' image, text and colour vectors
become the query.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from imgsearch.errors import UserError
from imgsearch.shipped import PRETRAINED
from imgsearch.store import Item

# Spaces with one stored vector per item (``Generation.vectors``); "classes" is scored from tags.
FEEDBACK_SPACES = ("image", "text", "colour", "aligned", "metric", "photo")
# β and γ, chosen on a development split with a simulated user by recipes/feedback.py (with its
# provenance); bench/feedback.py measures them on held-out products
FILE = PRETRAINED / "feedback.json"
ENV = "IMGSEARCH_FEEDBACK"  # "beta=B,gamma=G": for tuning (recipes/feedback.py), not for everyday use


@dataclass(frozen=True)
class Rocchio:
    beta: float
    gamma: float

    @classmethod
    def shipped(cls) -> Rocchio:
        return _shipped()

    @classmethod
    def from_env(cls) -> Rocchio:
        """The shipped setting, or the one ``IMGSEARCH_FEEDBACK`` names (either part may be left out)."""
        value = os.environ.get(ENV, "").strip()
        if not value:
            return cls.shipped()
        try:
            parts = {k: float(v) for k, v in (p.split("=", 1) for p in value.split(","))}
        except ValueError:
            raise UserError(f"{ENV}={value!r}: use beta=B,gamma=G") from None
        if {"beta", "gamma"} <= set(parts):  # the recipe that makes the shipped file sets both
            return cls(parts["beta"], parts["gamma"])
        shipped = cls.shipped()
        return cls(parts.get("beta", shipped.beta), parts.get("gamma", shipped.gamma))


@cache
def _shipped() -> Rocchio:
    data = json.loads(FILE.read_text(encoding="utf-8"))
    return Rocchio(float(data["beta"]), float(data["gamma"]))


class ItemRows:
    """Finds an item's row by its id or its path (as ``--format json`` prints them)."""

    def __init__(self, items: list[Item]) -> None:
        self._rows: dict[str, int] = {}
        for row, item in enumerate(items):
            self._rows.setdefault(item.path, row)
            self._rows.setdefault(item.id, row)

    def get(self, ref: str) -> int | None:
        row = self._rows.get(ref)
        if row is None and ref:
            row = self._rows.get(os.path.abspath(ref))
        if row is None and ref:
            row = self._rows.get(str(Path(ref).resolve()))
        return row

    def resolve(self, refs: list[str], option: str) -> list[int]:
        rows = []
        for ref in refs:
            row = self.get(ref)
            if row is None:
                raise UserError(
                    f"{option} {ref}: not an item of this index "
                    "(give an id or path as `--format json` prints it)"
                )
            rows.append(row)
        return rows


def _unit(vec: np.ndarray) -> np.ndarray | None:
    norm = float(np.linalg.norm(vec))
    return None if norm == 0.0 else (vec / norm).astype(np.float32)


def _mean_direction(vectors: np.ndarray, rows: list[int]) -> np.ndarray | None:
    """Unit mean of the rows that have a vector here (an all-zero row means 'none in this space')."""
    if not rows:
        return None
    picked = np.asarray(vectors[np.asarray(rows)], np.float32)
    picked = picked[np.any(picked != 0, axis=1)]
    return _unit(picked.mean(axis=0)) if len(picked) else None


def rocchio(
    query: np.ndarray | None, liked: np.ndarray | None, unliked: np.ndarray | None, params: Rocchio
) -> np.ndarray | None:
    """The moved query vector from unit-length parts; None when nothing is left to search with."""
    q = _unit(query) if query is not None else None
    if q is None:
        if liked is None or not params.beta:
            return None  # unlikes alone say what not to find, not what to find
        return liked if unliked is None else _unit(liked - params.gamma / params.beta * unliked)
    out = q.copy()
    if liked is not None:
        out += params.beta * liked
    if unliked is not None:
        out -= params.gamma * unliked
    return out


def apply_feedback(
    vectors: dict[str, np.ndarray],
    stored: dict[str, np.ndarray],
    liked: list[int],
    unliked: list[int],
    params: Rocchio,
) -> dict[str, np.ndarray]:
    """``vectors`` (the query's, per space) moved by the judged rows of ``stored`` in every space."""
    out = dict(vectors)
    for space in FEEDBACK_SPACES:
        if space not in stored:
            continue
        moved = rocchio(
            vectors.get(space),
            _mean_direction(stored[space], liked),
            _mean_direction(stored[space], unliked),
            params,
        )
        if moved is not None:
            out[space] = moved
    return out
