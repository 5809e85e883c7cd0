"""Export the Keras encoders to LiteRT ``.tflite`` files (imports TensorFlow: index time only).

Route: keras' ``ExportArchive`` tracking the Keras model, with one endpoint that
calls the encoder's own ``tf.function`` (so preprocessing is exactly the Keras
encoder's) and has dynamic batch/sequence dims → SavedModel →
``TFLiteConverter.from_saved_model``. Converting straight from a concrete
function has silently dropped the weights before (tiny file, NaN outputs), so
``_check`` runs every new file once on a probe input before it is cached.

Files are cached under ``cache_dir()/litert`` by spec id + precision + converter
tag, each written atomically: sidecar JSON (and tokenizer) first, the
``.tflite`` last, so a present ``.tflite`` means a complete export.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path

import numpy as np

from imgsearch.cache import atomic_path, atomic_write_text
from imgsearch.encoders.litert import (
    CLASS_PROBS,
    CONVERTER_TAG,
    EMBEDDING,
    FEATURES,
    IMAGE_INPUT,
    PADDING_MASK,
    PRECISIONS,
    SIGNATURE,
    TOKEN_IDS,
    LiteRTImageEncoder,
    LiteRTTextEncoder,
    cached_path,
    meta_path,
    tokenizer_path,
)
from imgsearch.quiet import quiet_tensorflow

__all__ = ["cached_path", "ensure_exported", "export_image", "export_text"]

REPRESENTATIVE_IMAGES = 200  # calibration images used at most for int8-full


def export_image(
    encoder, precision: str = "fp32", representative: Iterable[np.ndarray] | None = None
) -> Path:
    """The cached ``.tflite`` of a Keras image encoder, exporting it first if missing.

    Input ``pixels``: uint8 NHWC, dynamic batch, preprocessing baked in, so the
    runtime feeds the same arrays as ``encoder.encode``. Outputs ``features``
    (pooled, not yet L2-normalised) and ``class_probs`` when the model has a head.
    ``representative``: uint8 batches of real images, required for ``int8-full``.
    """
    target = cached_path(encoder.spec.id, precision)
    if target.is_file() and meta_path(target).is_file():
        return target
    if precision == "int8-full" and representative is None:
        raise ValueError("int8-full needs representative images (uint8 batches) for calibration")
    quiet_tensorflow()
    import tensorflow as tf

    size = encoder.image_size

    def serve(pixels):
        out = encoder.graph(pixels)
        if isinstance(out, list | tuple):
            return {FEATURES: out[0], CLASS_PROBS: out[1]}
        return {FEATURES: out}

    spec = [tf.TensorSpec([None, size, size, 3], tf.uint8, name=IMAGE_INPUT)]
    calibration = _image_calibration(representative) if precision == "int8-full" else None
    flat = _convert(_tracked(encoder), serve, spec, precision, calibration)
    _write(target, flat, _meta(encoder.spec, precision), _check_image(encoder))
    return target


def export_text(encoder, precision: str = "fp32", tokenizer_json: Path | None = None) -> Path:
    """The cached ``.tflite`` of a ``BertSentenceEncoder`` (masked-mean output, before L2).

    Inputs ``token_ids`` and ``padding_mask``: int32 [batch, seq], both dynamic.
    The tokenizer the runtime needs is copied beside it: the model's own
    ``tokenizer.json`` (minilm) or one built from the keras-hub vocabulary.
    """
    if precision == "int8-full":
        raise ValueError("int8-full is for image encoders; use int8 (dynamic range) for text")
    target = cached_path(encoder.spec.id, precision)
    if target.is_file() and meta_path(target).is_file():
        return target
    quiet_tensorflow()
    import tensorflow as tf

    def serve(token_ids, padding_mask):
        # bert.py's pooling, with expand_dims: its ``mask[:, :, None]`` is a StridedSlice with
        # new_axis_mask, which the TF-Lite builtins reject (it would need the Flex delegate)
        out = encoder.backbone(
            {"token_ids": token_ids, "padding_mask": padding_mask, "segment_ids": tf.zeros_like(token_ids)}
        )["sequence_output"]
        mask = tf.expand_dims(tf.cast(padding_mask, out.dtype), -1)
        pooled = tf.reduce_sum(out * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
        return {EMBEDDING: pooled}

    spec = [
        tf.TensorSpec([None, None], tf.int32, name=TOKEN_IDS),
        tf.TensorSpec([None, None], tf.int32, name=PADDING_MASK),
    ]
    flat = _convert(_tracked(encoder), serve, spec, precision, None)
    tokenizer = tokenizer_path(encoder.spec.id)
    _write_tokenizer(encoder, tokenizer, tokenizer_json)
    meta = _meta(encoder.spec, precision) | {
        "tokenizer": tokenizer.name,
        "lowercase": bool(encoder.tokenizer.lowercase),
    }
    _write(target, flat, meta, _check_text(encoder, tokenizer))
    return target


def ensure_exported(
    image_encoder=None, text_encoder=None, precisions: tuple[str, ...] = ("fp32",)
) -> list[Path]:
    """Export (once; cached) the loaded Keras encoders so later queries can skip TensorFlow.

    Index time calls this: TensorFlow is loaded there anyway. ``int8-full``
    needs calibration images, so call ``export_image`` for it directly.
    """
    paths = []
    for precision in precisions:
        if image_encoder is not None:
            paths.append(export_image(image_encoder, precision))
        if text_encoder is not None:
            paths.append(export_text(text_encoder, precision))
    return paths


# --- conversion --------------------------------------------------------------------------------------------


def _tracked(encoder):
    """The Keras model whose variables the export must carry."""
    for name in ("model", "backbone"):
        if getattr(encoder, name, None) is not None:
            return getattr(encoder, name)
    raise TypeError(f"{type(encoder).__name__} has no Keras model to export")


def _convert(model, serve: Callable, input_signature: list, precision: str, calibration) -> bytes:
    """SavedModel via keras' ExportArchive, then the TF-Lite converter.

    ``ExportArchive.track`` saves the tf.Variables behind the Keras variables
    in a form the converter freezes into constants; a plain ``tf.Module``
    holding the model converted to a 0.2 MB file of unresolved variable reads
    that gave NaN.
    """
    import keras
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    with tempfile.TemporaryDirectory(prefix="imgsearch-litert-") as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(SIGNATURE, serve, input_signature=input_signature)
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[SIGNATURE])
        if precision != "fp32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if precision == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        if calibration is not None:
            converter.representative_dataset = calibration
        return converter.convert()


def _image_calibration(representative: Iterable[np.ndarray]) -> Callable:
    """Yield single uint8 images (the converter calibrates one input tuple at a time)."""

    def dataset():
        seen = 0
        for batch in representative:
            for image in np.asarray(batch, dtype=np.uint8):
                yield [image[None]]
                seen += 1
                if seen >= REPRESENTATIVE_IMAGES:
                    return

    return dataset


# --- writing and checking ----------------------------------------------------------------------------------


def _meta(spec, precision: str) -> dict:
    import tensorflow as tf

    return {
        "spec": spec.to_json(),
        "precision": precision,
        "converter": CONVERTER_TAG,
        "tensorflow": tf.__version__,
        "keras_hub": version("keras-hub"),
    }


def _write(target: Path, flat: bytes, meta: dict, check: Callable[[Path], None]) -> None:
    """Check the converted bytes, then write sidecar and model atomically (model last)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.write_bytes(flat)
        check(tmp)
        atomic_write_text(meta_path(target), json.dumps(meta, indent=1))
    # atomic_path renamed tmp → target only now, after the sidecar exists


def _write_tokenizer(encoder, target: Path, tokenizer_json: Path | None) -> None:
    source = tokenizer_json or _own_tokenizer_json(encoder)
    with atomic_path(target) as tmp:
        if source is not None:
            shutil.copyfile(source, tmp)
        else:
            tmp.write_text(_tokenizer_from_vocabulary(encoder.tokenizer.get_vocabulary()), encoding="utf-8")


def _own_tokenizer_json(encoder) -> Path | None:
    if encoder.spec.name != "minilm":
        return None
    from imgsearch.encoders.bert import minilm_dir

    found = minilm_dir() / "tokenizer.json"
    return found if found.is_file() else None


def _tokenizer_from_vocabulary(vocabulary: list[str]) -> str:
    """A WordPiece tokenizer.json for presets that ship only a vocabulary (keras-hub ``bert-base``)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece

    model = WordPiece({token: i for i, token in enumerate(vocabulary)}, unk_token="[UNK]")
    return Tokenizer(model).to_str()


PROBE_SEED = 0


def _check_image(encoder) -> Callable[[Path], None]:
    """Reject a file whose outputs are not the Keras encoder's (NaN, missing weights, wrong input)."""

    def check(path: Path) -> None:
        rng = np.random.default_rng(PROBE_SEED)
        pixels = rng.integers(0, 256, (2, encoder.image_size, encoder.image_size, 3), dtype=np.uint8)
        got = LiteRTImageEncoder(path, encoder.spec).encode(pixels).features
        _assert_close(got, encoder.encode(pixels).features, path)

    return check


def _check_text(encoder, tokenizer: Path) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        texts = ["a red leather bag", "Men's running shoes, blue"]
        got = LiteRTTextEncoder(path, encoder.spec, tokenizer, lowercase=encoder.tokenizer.lowercase)
        _assert_close(got.encode(texts), encoder.encode(texts), path)

    return check


MIN_PROBE_COSINE = 0.9  # catches broken exports (NaN, random weights); precision is measured in tests


def _assert_close(got: np.ndarray, want: np.ndarray, path: Path) -> None:
    cosine = np.sum(got * want, axis=1)
    if not np.all(np.isfinite(got)) or cosine.min() < MIN_PROBE_COSINE:
        raise RuntimeError(
            f"LiteRT export {path.name} does not reproduce the Keras encoder (cosine {cosine.min():.3f})"
        )
