"""Small numpy encoders and heads that stand in for the real models in fast logic tests.

They honour the encoder protocol (``imgsearch.encoders.base``): a spec, an input size, a batch
size and ``encode``. Their vectors are deterministic functions of the pixels/words, so a store
built twice from the same files is the same store.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from imgsearch.encoders.base import EncoderSpec, ImageBatchOutput, l2_normalise
from imgsearch.encoders.heads import Head

IMAGE_ID, TEXT_ID = "tiny-image@1", "tiny-text@1"


class TinyImageEncoder:
    """4×4 blocks of a 16-px image, centred: 48-d features that tell images apart."""

    image_size = 16
    batch_size = 8
    spec = EncoderSpec("tiny-image", IMAGE_ID, 48, "image")

    def encode(self, pixels: np.ndarray) -> ImageBatchOutput:
        x = np.asarray(pixels, np.float32).reshape(len(pixels), 4, 4, 4, 4, 3).mean(axis=(2, 4))
        x = x.reshape(len(pixels), 48)
        return ImageBatchOutput(l2_normalise(x - x.mean(axis=1, keepdims=True) + 1e-3))


class TinyTextEncoder:
    """Hashed bag of words, 16-d."""

    batch_size = 16
    spec = EncoderSpec("tiny-text", TEXT_ID, 16, "text")

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 16), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                digest = hashlib.sha1(word.encode("utf-8", "surrogateescape")).digest()
                out[i, digest[0] % 16] += 1.0 if digest[1] % 2 else -1.0
        return l2_normalise(out + 1e-3)


def tiny_searcher(gen, **kw):
    """A ``Searcher`` over the generation ``gen`` that encodes queries with the small encoders."""
    from imgsearch.search.searcher import QueryEncoder, Searcher

    return Searcher(gen, QueryEncoder(gen.manifest, TinyImageEncoder(), TinyTextEncoder()), **kw)


def tiny_head(name: str, seed: int, target: str = "text") -> Head:
    """A linear head from tiny-image features into a 16-d space, as `train` would save it."""
    rng = np.random.default_rng(seed)
    layers = [(rng.standard_normal((48, 16)).astype(np.float32), np.zeros(16, np.float32), "linear")]
    info = {"encoders": {"image": IMAGE_ID, "text": TEXT_ID}}
    return Head(name, "image", target, np.zeros(48, np.float32), np.ones(48, np.float32), layers, info)


def write_model(directory: Path, seed: int = 1) -> Path:
    """A model dir with an aligned and a metric head (what `imgsearch train` writes)."""
    directory.mkdir(parents=True, exist_ok=True)
    tiny_head("aligned", seed).save(directory)
    tiny_head("metric", seed + 1, target="metric").save(directory)
    return directory


def write_image(path: Path, seed: int, size: tuple[int, int] = (24, 20)) -> None:
    """A small random-blocks PNG (distinct per seed)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST)
    img.save(path, format="PNG")


def use_tiny_models(monkeypatch) -> None:
    """The command line (``conftest.run_cli``) and the API with these encoders in place of the
    models they would load, to embed and to encode queries (``encoders.open_for_index``)."""
    from imgsearch.embed import job as embed

    def open_encoder(role, *args, **kwargs):
        return TinyImageEncoder() if role == "image" else TinyTextEncoder()

    monkeypatch.setattr(embed, "open_encoder", open_encoder)
    monkeypatch.setattr(embed, "cheap_id", lambda *args, **kwargs: None)  # ids come from the encoders
    monkeypatch.setattr(embed.Encoders, "_announce_export", lambda *args: None)  # nothing is exported
    monkeypatch.setattr("imgsearch.encoders.open_for_index", lambda role, *args, **kwargs: open_encoder(role))
