"""ResNet50 image encoder (keras.applications, ImageNet weights downloaded on first use)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

from imgsearch.cache import file_sha256
from imgsearch.encoders.base import EncoderSpec, ImageBatchOutput, l2_normalise
from imgsearch.errors import UserError

NAME = "resnet50"
IMAGE_SIZE = 224
OFFLINE_HINT = (
    "resnet50 needs its ImageNet weights, which download on first use and could not be fetched "
    "(offline?): use the offline default `--image-encoder efficientnet-lite0`, "
    "or pass a local weights file with `--weights FILE`"
)


class ResNet50Encoder:
    """2048-d average-pooled ResNet50 features, with the ImageNet head for auto tags.

    ``weights``: "imagenet" (download/cache), a local ``.h5``/``.weights.h5`` file,
    or None for random weights (tests and speed benchmarks only).
    """

    image_size = IMAGE_SIZE

    def __init__(self, weights: str | Path | None = "imagenet", batch_size: int = 16) -> None:
        import keras
        import tensorflow as tf

        self.batch_size = batch_size
        try:
            # keras reports downloads on stdout, which belongs to our results
            with contextlib.redirect_stdout(sys.stderr):
                model = keras.applications.ResNet50(weights=str(weights) if weights else None)
        except Exception as exc:  # keras raises several types when the download fails
            if weights == "imagenet":
                raise UserError(OFFLINE_HINT) from exc
            raise UserError(f"cannot load resnet50 weights from {weights}: {exc}") from exc
        pooled = model.get_layer("avg_pool").output
        self.model = keras.Model(model.input, [pooled, model.output])
        self.spec = EncoderSpec(
            name=NAME,
            id=f"{NAME}@{_weights_tag(weights)}",
            dim=2048,
            modality="image",
            preprocessing={
                "resize": f"shorter side {IMAGE_SIZE}, centre crop, bicubic",
                "scale": "caffe: RGB→BGR, minus ImageNet mean",
                "features": "avg_pool, L2-normalised",
            },
        )
        preprocess = keras.applications.resnet50.preprocess_input
        self.graph = tf.function(
            lambda x: self.model(preprocess(tf.cast(x, tf.float32)), training=False),
            input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.uint8)],
        )

    def encode(self, pixels: np.ndarray) -> ImageBatchOutput:
        pooled, probs = self.graph(pixels)
        return ImageBatchOutput(l2_normalise(pooled.numpy()), probs.numpy())


def _weights_tag(weights: str | Path | None) -> str:
    if weights is None:
        return "random"
    if weights == "imagenet":
        return "imagenet"
    return file_sha256(Path(weights))[:12]
