"""Encoders selectable by name. Importing this package is cheap: models load on demand.

Image: ``efficientnet-lite0`` (default, offline), ``resnet50`` (downloads), ``hub:<url-or-dir>``.
Text: ``minilm`` (default, offline), ``bert-base`` (downloads), ``hf://...`` or a preset dir.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path

from imgsearch.encoders.base import EncoderSpec, ImageBatchOutput, ImageEncoder, TextEncoder
from imgsearch.errors import UserError

DEFAULT_IMAGE_ENCODER = "efficientnet-lite0"
DEFAULT_TEXT_ENCODER = "minilm"
IMAGE_ENCODERS = ("efficientnet-lite0", "resnet50", "hub:<url-or-dir>", "finetuned:<model dir>")
TEXT_ENCODERS = ("minilm", "bert-base", "hf://<owner/name>", "<keras-hub preset dir>")

__all__ = [
    "DEFAULT_IMAGE_ENCODER",
    "DEFAULT_TEXT_ENCODER",
    "EncoderSpec",
    "ImageBatchOutput",
    "ImageEncoder",
    "TextEncoder",
    "load_image_encoder",
    "load_text_encoder",
]


def quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ start-up chatter silenced; users see our output, not its logs.

    absl prints before any log level applies, so stderr is pointed at /dev/null
    at the file-descriptor level for the duration of the import.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@cache
def load_image_encoder(name: str = DEFAULT_IMAGE_ENCODER, weights: str | None = None) -> ImageEncoder:
    """Load (once per process: models are large and immutable) the named image encoder."""
    quiet_tensorflow()
    if name == "efficientnet-lite0":
        from imgsearch.encoders.efficientnet import EfficientNetLite0Encoder

        return EfficientNetLite0Encoder(source=Path(weights) if weights else None)
    if name == "resnet50":
        from imgsearch.encoders.resnet import ResNet50Encoder

        return ResNet50Encoder(weights=weights or "imagenet")
    if name.startswith("finetuned:"):
        from imgsearch.finetune import FineTunedLite0Encoder

        return FineTunedLite0Encoder(Path(name[len("finetuned:") :]))
    if name.startswith("hub:"):
        from imgsearch.encoders.tfhub import TFHubImageEncoder

        return TFHubImageEncoder(name[len("hub:") :])
    raise UserError(f"unknown image encoder {name!r}; choose one of: {', '.join(IMAGE_ENCODERS)}")


@cache
def load_text_encoder(name: str = DEFAULT_TEXT_ENCODER) -> TextEncoder:
    """Load (once per process) the named text encoder."""
    quiet_tensorflow()
    from imgsearch.encoders import bert

    if name == "minilm":
        return bert.load_minilm()
    if name == "bert-base":
        return bert.load_bert_base()
    if name.startswith("hf://") or Path(name).is_dir():
        return bert.load_preset(name)
    raise UserError(f"unknown text encoder {name!r}; choose one of: {', '.join(TEXT_ENCODERS)}")


# Fast runtime. LiteRT (TF Lite) runs the same networks 3-5× faster on a CPU and imports in
# 0.2 s instead of TensorFlow's 6 s. Each Keras encoder is exported once (cached beside the
# converted weights, keyed by its spec id); vectors match Keras at cosine ≥ 0.99999 in fp32.
RUNTIMES = ("litert", "keras")


def installed_image_id(name: str, weights: str | None = None) -> str | None:
    """The spec id of an image encoder when it can be known without loading a model."""
    if name == DEFAULT_IMAGE_ENCODER:
        from imgsearch.encoders import efficientnet

        return efficientnet.spec(Path(weights) if weights else None).id
    if name.startswith("finetuned:"):
        from imgsearch.finetune import read_encoder_meta

        return read_encoder_meta(Path(name[len("finetuned:") :]))["id"]
    return None


def installed_text_id(name: str) -> str | None:
    if name == DEFAULT_TEXT_ENCODER:
        from imgsearch.encoders.bert import minilm_spec

        return minilm_spec().id
    return None


@cache
def fast_image_encoder(
    name: str = DEFAULT_IMAGE_ENCODER,
    weights: str | None = None,
    precision: str = "fp32",
) -> ImageEncoder:
    """The LiteRT encoder for ``name`` (exported from Keras on first use), else the Keras one.

    ``int8-full`` must have been exported with calibration images first (``export_image``).
    """
    from imgsearch.encoders.litert import load_litert_image

    known = installed_image_id(name, weights)
    found = load_litert_image(known, precision) if known else None
    if found is not None:
        # the export is keyed by weights; the name is how this user reaches them (a path may move)
        found.spec = replace(found.spec, name=name)
        return found
    keras_encoder = load_image_encoder(name, weights)
    if not hasattr(keras_encoder, "_run"):
        return keras_encoder  # TF Hub models keep their own runtime
    from imgsearch.encoders.litert_export import export_image

    export_image(keras_encoder, precision)
    return load_litert_image(keras_encoder.spec.id, precision) or keras_encoder


@cache
def fast_text_encoder(name: str = DEFAULT_TEXT_ENCODER, precision: str = "fp32") -> TextEncoder:
    from imgsearch.encoders.litert import load_litert_text

    known = installed_text_id(name)
    found = load_litert_text(known, precision) if known else None
    if found is not None:
        return found
    keras_encoder = load_text_encoder(name)
    from imgsearch.encoders.litert_export import export_text

    export_text(keras_encoder, precision)
    return load_litert_text(keras_encoder.spec.id, precision) or keras_encoder


def runtime_of(encoder) -> str:
    from imgsearch.encoders.litert import LiteRTImageEncoder, LiteRTTextEncoder

    return "litert" if isinstance(encoder, LiteRTImageEncoder | LiteRTTextEncoder) else "keras"
