"""LiteRT (TF-Lite) runtimes for the image and text encoders: queries without importing TensorFlow.

``import tensorflow`` alone costs ~6 s, more than a whole query. The index
step (which loads TensorFlow anyway) exports each encoder once to a
``.tflite`` file under ``cache_dir()/litert`` (see ``litert_export``); a later
query loads it here with only numpy, ``ai_edge_litert`` and ``tokenizers``.
Nothing in this module may import tensorflow or keras, even lazily: a test
checks ``sys.modules`` after encoding.

Outputs match the Keras encoders (cosine ≥ 0.999 at fp32, tested), so vectors
from either runtime live in the same index under the same spec id.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

from imgsearch.cache import cache_dir
from imgsearch.encoders.base import (
    EncoderSpec,
    ImageBatchOutput,
    encode_by_length,
    l2_normalise,
    strip_accents,
)
from imgsearch.quiet import quiet_stderr

CONVERTER_TAG = "c1"  # bump when the export recipe changes: old files are then never loaded
PRECISIONS = ("fp32", "fp16", "int8", "int8-full")
MAX_TOKENS = 256  # == bert.MAX_TOKENS; all-MiniLM-L6-v2's max_seq_length
SIGNATURE = "serving_default"
IMAGE_INPUT, FEATURES, CLASS_PROBS = "pixels", "features", "class_probs"
TOKEN_IDS, PADDING_MASK, EMBEDDING = "token_ids", "padding_mask", "embedding"
# bench/litert_speed.py, 2 shared cores: Lite0 fp32 runs as fast one image per invoke as in batches of
# 4-32 (within noise), and a query image is a batch of 1, so the shape never changes and never costs a
# re-plan (~5 ms). MiniLM titles: batch 32 ≈ 64 and 2-3× batch 1 (padding is per batch).
IMAGE_BATCH = 1
TEXT_BATCH = 32


def litert_dir() -> Path:
    return cache_dir() / "litert"


def _safe(spec_id: str) -> str:
    """Spec ids may hold ``/`` or ``:`` (hub handles); file names may not. A hash keeps them distinct."""
    safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", spec_id)
    if safe == spec_id:
        return safe
    return f"{safe}-{hashlib.sha256(spec_id.encode()).hexdigest()[:8]}"


def cached_path(spec_id: str, precision: str = "fp32") -> Path:
    """Where the ``.tflite`` of ``spec_id`` at ``precision`` lives (whether or not it exists yet).

    The converter tag is part of the name, so a changed export recipe never
    reuses a file written by the old one.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return litert_dir() / f"{_safe(spec_id)}.{precision}.{CONVERTER_TAG}.tflite"


def meta_path(model: Path) -> Path:
    """Sidecar JSON (spec, tokenizer file, …) beside a ``.tflite``; written before it."""
    return model.with_suffix(".json")


def tokenizer_path(spec_id: str) -> Path:
    """The copy of the text model's ``tokenizer.json`` the runtime reads, shared by all precisions."""
    return litert_dir() / f"{_safe(spec_id)}.{CONVERTER_TAG}.tokenizer.json"


def _interpreter(path: Path, num_threads: int):
    from ai_edge_litert.interpreter import Interpreter

    with quiet_stderr():
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    return interpreter


class _Runner:
    """One signature of a ``.tflite``: named inputs/outputs, inputs resized only when shapes change.

    Re-allocating costs a graph re-plan (XNNPACK too), so the last shape is
    remembered and a run of same-shape batches allocates once.
    """

    def __init__(self, path: Path, num_threads: int) -> None:
        self.interpreter = _interpreter(path, num_threads)
        runner = self.interpreter.get_signature_runner(SIGNATURE)
        self.inputs = runner.get_input_details()
        self.outputs = {name: d["index"] for name, d in runner.get_output_details().items()}
        self._shapes: dict[str, tuple[int, ...]] = {}

    def __call__(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        changed = False
        for name, value in arrays.items():
            if self._shapes.get(name) != value.shape:
                self.interpreter.resize_tensor_input(self.inputs[name]["index"], list(value.shape))
                self._shapes[name] = value.shape
                changed = True
        if changed:
            self.interpreter.allocate_tensors()
        for name, value in arrays.items():
            dtype = self.inputs[name]["dtype"]
            self.interpreter.set_tensor(self.inputs[name]["index"], np.ascontiguousarray(value, dtype))
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(index) for name, index in self.outputs.items()}


class LiteRTImageEncoder:
    """An exported image encoder: uint8 pixels in (preprocessing is inside the model), features out."""

    def __init__(
        self, path: Path, spec: EncoderSpec, num_threads: int = 2, batch_size: int = IMAGE_BATCH
    ) -> None:
        self.spec = spec
        self.path = Path(path)
        self.batch_size = batch_size
        self._run = _Runner(self.path, num_threads)
        shape = self._run.inputs[IMAGE_INPUT]["shape_signature"]
        self.image_size = int(shape[1])

    def encode(self, pixels: np.ndarray) -> ImageBatchOutput:
        pixels = np.asarray(pixels, dtype=np.uint8)
        if len(pixels) == 0:
            return ImageBatchOutput(np.zeros((0, self.spec.dim), np.float32), None)
        features, probs = [], []
        for start in range(0, len(pixels), self.batch_size):
            out = self._run(**{IMAGE_INPUT: pixels[start : start + self.batch_size]})
            features.append(out[FEATURES])
            if CLASS_PROBS in out:
                probs.append(out[CLASS_PROBS])
        class_probs = np.concatenate(probs).astype(np.float32) if probs else None
        return ImageBatchOutput(l2_normalise(np.concatenate(features)), class_probs)


class LiteRTTextEncoder:
    """An exported BERT sentence encoder with a TensorFlow-free tokenizer giving keras-hub's ids."""

    def __init__(
        self,
        path: Path,
        spec: EncoderSpec,
        tokenizer_json: Path,
        num_threads: int = 2,
        batch_size: int = TEXT_BATCH,
        lowercase: bool | None = None,
    ) -> None:
        self.spec = spec
        self.path = Path(path)
        self.batch_size = batch_size
        self.tokenizer = WordPieceIds(Path(tokenizer_json), lowercase)
        self._run = _Runner(self.path, num_threads)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Sorted by length and padded per batch like ``BertSentenceEncoder``: short titles pad little."""
        ids = self.token_ids(list(texts)) if texts else []
        return encode_by_length(ids, self.spec.dim, self.batch_size, self._pooled)

    def _pooled(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self._run(**{TOKEN_IDS: tokens, PADDING_MASK: mask})[EMBEDDING]


# --- tokenizer -------------------------------------------------------------------------------------------
# keras-hub's WordPieceTokenizer (what the index was built with) is not HF's BertNormalizer: it splits
# first (ASCII whitespace, control/format chars, punctuation, CJK), then NFKC-casefolds each word and
# keeps accents (both paths strip them first for uncased models, see base.strip_accents); a word
# over 100 UTF-8 bytes becomes [UNK]. HF would strip accents, lowercase without
# NFKC and split on all Unicode whitespace. So splitting and folding happen here, exactly as keras-hub
# does them, and ``tokenizers`` runs only the WordPiece model of the model's own tokenizer.json.

ASCII_WHITESPACE = frozenset(" \t\n\r\f")  # RE2's \s
MAX_BYTES_PER_WORD = 100  # tf_text.FastWordpieceTokenizer's limit
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
DROP, KEEP, WORD = 0, 1, 2
_ASCII_SPLIT = re.compile(r"([!-/:-@\[-`{-~])|[ \t\n\r\f\x00-\x1f\x7f]+")


@lru_cache(maxsize=65536)
def _char_class(char: str) -> int:
    """DROP: separator removed; KEEP: separator kept as its own word; WORD: part of a word."""
    code = ord(char)
    category = unicodedata.category(char)
    if char in ASCII_WHITESPACE or category in ("Cc", "Cf"):
        return DROP
    if (
        (0x21 <= code <= 0x2F or 0x3A <= code <= 0x40 or 0x5B <= code <= 0x60 or 0x7B <= code <= 0x7E)
        or category.startswith("P")
        or any(lo <= code <= hi for lo, hi in CJK_RANGES)
    ):
        return KEEP
    return WORD


def split_words(text: str) -> list[str]:
    """keras-hub's ``pretokenize`` split: on whitespace/control, punctuation and CJK kept as words."""
    if text.isascii():
        return [w for w in _ASCII_SPLIT.split(text) if w]
    words: list[str] = []
    current: list[str] = []
    for char in text:
        kind = _char_class(char)
        if kind == WORD:
            current.append(char)
            continue
        if current:
            words.append("".join(current))
            current = []
        if kind == KEEP:
            words.append(char)
    if current:
        words.append("".join(current))
    return words


def casefold(word: str) -> str:
    """``tf_text.case_fold_utf8``: NFKC_Casefold, default-ignorable code points removed."""
    if word.isascii():
        return word.lower()
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", word).casefold())
    return "".join(c for c in folded if not any(lo <= ord(c) <= hi for lo, hi in DEFAULT_IGNORABLE))


class WordPieceIds:
    """Text → ``[CLS] wordpieces[:MAX_TOKENS-2] [SEP]`` ids, identical to ``BertSentenceEncoder.token_ids``.

    The ``tokenizers`` WordPiece model does the subword lookup (greedy longest
    match, like tf_text's FastWordpiece); its normaliser, pre-tokeniser,
    post-processor, padding and truncation are switched off because keras-hub
    does those differently (see above).
    """

    def __init__(self, tokenizer_json: Path, lowercase: bool | None = None) -> None:
        from tokenizers import Tokenizer

        config = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
        if lowercase is None:
            lowercase = bool((config.get("normalizer") or {}).get("lowercase", True))
        self.lowercase = lowercase
        self._tok = Tokenizer.from_str(json.dumps(config))
        model = self._tok.model
        model.max_input_chars_per_word = 1 << 30  # the byte limit is applied in _words
        self.unk = model.unk_token
        self._tok.normalizer = None
        self._tok.pre_tokenizer = None
        self._tok.post_processor = None
        self._tok.no_padding()
        self._tok.no_truncation()
        self.cls_id = self._id("[CLS]")
        self.sep_id = self._id("[SEP]")

    def _id(self, token: str) -> int:
        found = self._tok.token_to_id(token)
        if found is None:
            raise ValueError(f"{token} is not in the tokenizer vocabulary")
        return found

    def _words(self, text: str) -> list[str]:
        words = split_words(text)
        if self.lowercase:
            words = [casefold(w) for w in words]
        return [self.unk if len(w.encode("utf-8")) > MAX_BYTES_PER_WORD else w for w in words if w]

    def __call__(self, texts: list[str]) -> list[list[int]]:
        if self.lowercase:
            texts = [strip_accents(t) for t in texts]
        words = [self._words(t) for t in texts]
        encoded = self._tok.encode_batch(words, is_pretokenized=True, add_special_tokens=False)
        return [[self.cls_id, *e.ids[: MAX_TOKENS - 2], self.sep_id] for e in encoded]


# --- loading from the cache -----------------------------------------------------------------------------


def _read_meta(model: Path) -> dict | None:
    """The sidecar of a complete export, or None: the ``.tflite`` is written last, so it marks completion."""
    meta = meta_path(model)
    if not (model.is_file() and meta.is_file()):
        return None
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_litert_image(
    spec_id: str, precision: str = "fp32", num_threads: int = 2, batch_size: int = IMAGE_BATCH
) -> LiteRTImageEncoder | None:
    """The cached LiteRT image encoder for ``spec_id``, or None when it was never exported."""
    model = cached_path(spec_id, precision)
    meta = _read_meta(model)
    if meta is None:
        return None
    return LiteRTImageEncoder(model, EncoderSpec(**meta["spec"]), num_threads, batch_size)


def load_litert_text(
    spec_id: str, precision: str = "fp32", num_threads: int = 2, batch_size: int = TEXT_BATCH
) -> LiteRTTextEncoder | None:
    """The cached LiteRT text encoder (with its tokenizer copy) for ``spec_id``, or None."""
    model = cached_path(spec_id, precision)
    meta = _read_meta(model)
    if meta is None:
        return None
    tokenizer = litert_dir() / meta["tokenizer"]
    if not tokenizer.is_file():
        return None
    return LiteRTTextEncoder(
        model, EncoderSpec(**meta["spec"]), tokenizer, num_threads, batch_size, meta.get("lowercase")
    )
