"""What every encoder promises, so the rest of imgsearch never asks which model it has.

An encoder has a ``spec``: a stable id (name + weights hash), output dimension
and preprocessing description. The id goes into every manifest, so vectors
written by one model are never compared with another's.
"""

from __future__ import annotations

import shlex
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

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
    """What ``embed`` and ``query`` use: a spec, the input size, a batch size and ``encode``.

    Any object with these members is an encoder; tests inject small numpy ones.
    """

    spec: EncoderSpec
    image_size: int
    batch_size: int

    def encode(self, pixels: np.ndarray) -> ImageBatchOutput:
        """``pixels``: (n, size, size, 3) uint8 RGB, already resized by ``imgsearch.files.images``."""
        ...


class TextEncoder(Protocol):
    spec: EncoderSpec
    batch_size: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        ...


class ExportableImageEncoder(ImageEncoder, Protocol):
    """A Keras image encoder that ``litert_export.export_image`` can convert.

    ``model``: the Keras model whose variables the export carries. ``graph``: a
    ``tf.function`` from uint8 pixels (preprocessing inside) to pooled features, or to
    (features, class probabilities) — it is what the export traces.
    """

    model: Any
    graph: Callable[[Any], Any]


class ExportableTextEncoder(TextEncoder, Protocol):
    """A keras-hub BERT-family sentence encoder that ``litert_export.export_text`` can convert.

    ``backbone`` gives ``sequence_output`` for token ids; ``tokenizer`` has ``lowercase`` and
    ``get_vocabulary()``; the export masks and mean-pools like ``encode``.
    """

    backbone: Any
    tokenizer: Any


# Spec-id suffix of uncased text encoders that strip accents before WordPiece, as BERT-uncased and
# MiniLM were trained: keras-hub's tokenizer keeps them, so "Café crème" became [UNK] [UNK]. Vectors
# of the two differ for accented text, so stores made before carry the old id and are re-indexed.
ACCENTS_STRIPPED = "+noaccents"


def strip_accents(text: str) -> str:
    """ "Café Crème" → "Cafe Creme": NFD, combining marks removed, NFC (what BERT-uncased expects)."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def pad_ids(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token ids with 0 to the longest row; the mask marks real tokens."""
    width = max(len(x) for x in ids)
    tokens = np.zeros((len(ids), width), np.int32)
    mask = np.zeros((len(ids), width), np.int32)
    for i, row in enumerate(ids):
        tokens[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return tokens, mask


def encode_by_length(ids: list[list[int]], dim: int, batch_size: int, run) -> np.ndarray:
    """Encode token-id rows in batches of similar length, each padded only to its own longest row.

    Why: titles are 10-20 tokens; padding every batch to the model's 256/512 would make
    the text encoder ~20× slower. ``run(tokens, mask)`` returns the pooled (n, dim) vectors.
    """
    if not ids:
        return np.zeros((0, dim), np.float32)
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.zeros((len(ids), dim), np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        out[rows] = run(*pad_ids([ids[i] for i in rows]))
    return l2_normalise(out)


def pip_install(args: str) -> str:
    """The command that installs into the environment imgsearch runs in (a venv, pipx's, a clone's)."""
    return f"{shlex.quote(sys.executable)} -m pip install {args}"
