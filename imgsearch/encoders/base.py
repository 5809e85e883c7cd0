"""What every encoder promises, so the rest of imgsearch never asks which model it has.

An encoder has a ``spec``: a stable id (name + weights hash), output dimension
and preprocessing description. The id goes into every manifest, so vectors
written by one model are never compared with another's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    id: str
    dim: int
    modality: str  # "image" or "text"
    preprocessing: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ImageBatchOutput:
    """Features for a batch; ``class_probs`` when the model has an ImageNet head (for tags)."""

    features: np.ndarray  # (n, dim) float32, L2-normalised
    class_probs: np.ndarray | None = None  # (n, 1000) float32


class ImageEncoder(Protocol):
    spec: EncoderSpec
    image_size: int
    batch_size: int

    def encode(self, pixels: np.ndarray) -> ImageBatchOutput:
        """``pixels``: (n, size, size, 3) uint8 RGB, already resized by ``imgsearch.images``."""
        ...


class TextEncoder(Protocol):
    spec: EncoderSpec
    batch_size: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
