"""Any TF Hub image feature-vector model: ``hub:<url-or-SavedModel-dir>``.

TF Hub's image convention: float32 RGB in [0, 1], (n, 224, 224, 3) unless the
model says otherwise; output (n, dim) feature vectors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from imgsearch.encoders.base import EncoderSpec, ImageBatchOutput, l2_normalise
from imgsearch.errors import UserError

IMAGE_SIZE = 224


class TFHubImageEncoder:
    image_size = IMAGE_SIZE

    def __init__(self, handle: str, batch_size: int = 32) -> None:
        import tensorflow as tf
        import tensorflow_hub as hub

        self.batch_size = batch_size
        try:
            self._model = hub.load(handle)
        except Exception as exc:
            raise UserError(f"cannot load TF Hub model {handle!r}: {str(exc).splitlines()[0]}") from exc
        probe = self._model(tf.zeros([1, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32))
        dim = int(probe.shape[-1])
        self.spec = EncoderSpec(
            name=f"hub:{handle}",
            id=f"hub:{handle}@{_handle_tag(handle)}",
            dim=dim,
            modality="image",
            preprocessing={"resize": f"shorter side {IMAGE_SIZE}, centre crop", "scale": "x / 255"},
        )

    def encode(self, pixels: np.ndarray) -> ImageBatchOutput:
        import tensorflow as tf

        out = self._model(tf.cast(pixels, tf.float32) / 255.0)
        return ImageBatchOutput(l2_normalise(np.asarray(out)))


def _handle_tag(handle: str) -> str:
    saved = Path(handle) / "saved_model.pb"
    data = saved.read_bytes() if saved.exists() else handle.encode()
    return hashlib.sha256(data).hexdigest()[:12]
