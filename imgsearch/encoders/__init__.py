"""Encoders selectable by name. Importing this package is cheap: models load on demand.

Image: ``efficientnet-lite0`` (default, offline), ``resnet50`` (downloads), ``hub:<url-or-dir>``.
Text: ``minilm`` (default, offline), ``bert-base`` (downloads), ``hf://...`` or a preset dir.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

from imgsearch.encoders.base import EncoderSpec, ImageBatchOutput, ImageEncoder, TextEncoder
from imgsearch.errors import UserError

DEFAULT_IMAGE_ENCODER = "efficientnet-lite0"
DEFAULT_TEXT_ENCODER = "minilm"
IMAGE_ENCODERS = ("efficientnet-lite0", "resnet50", "hub:<url-or-dir>")
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
