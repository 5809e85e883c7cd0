"""ResNet50 and TF Hub encoders: shapes and pipeline with random / test-made weights, never downloads."""

import numpy as np
import pytest

from imgsearch.encoders import load_image_encoder
from imgsearch.errors import UserError

pytestmark = pytest.mark.slow


def _pixels(n=3, size=224):
    return np.random.default_rng(0).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def test_resnet50_random_weights_pipeline():
    from imgsearch.encoders.resnet import ResNet50Encoder

    enc = ResNet50Encoder(weights=None)
    out = enc.encode(_pixels())
    assert out.features.shape == (3, 2048) and out.class_probs.shape == (3, 1000)
    np.testing.assert_allclose(np.linalg.norm(out.features, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(out.class_probs.sum(axis=1), 1, rtol=1e-4)
    assert enc.spec.id == "resnet50@random"  # never mixed with real ImageNet vectors


def test_resnet50_without_network_fails_with_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached weights file
    import keras

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.applications.resnet.file_utils.get_file", offline)
    from imgsearch.encoders.resnet import ResNet50Encoder

    with pytest.raises(UserError, match=r"efficientnet-lite0.*--weights FILE"):
        ResNet50Encoder(weights="imagenet")


def test_tfhub_savedmodel_made_here(tmp_path):
    import tensorflow as tf

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal([3, 8], seed=[1, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, x):
            return tf.reduce_mean(x, axis=[1, 2]) @ self.w

    tf.saved_model.save(Tiny(), str(tmp_path / "tiny"))
    enc = load_image_encoder(f"hub:{tmp_path / 'tiny'}")
    assert enc.spec.dim == 8 and enc.spec.id.startswith("hub:")
    px = _pixels(2)
    feats = enc.encode(px).features
    expected = (px.astype(np.float32) / 255).mean(axis=(1, 2)) @ enc._model.w.numpy()
    np.testing.assert_allclose(feats, expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-4)


def test_unknown_encoders_name_the_choices():
    from imgsearch.encoders import load_text_encoder

    with pytest.raises(UserError, match="choose one of: efficientnet-lite0"):
        load_image_encoder("vgg")
    with pytest.raises(UserError, match="choose one of: minilm"):
        load_text_encoder("nope")
