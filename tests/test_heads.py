"""Heads: a seed ensemble averaged into one wider head."""

from __future__ import annotations

import numpy as np
import pytest

from imgsearch.encoders.base import l2_normalise
from imgsearch.encoders.heads import ACTIVATIONS, Head


def _head(rng: np.random.Generator, mean: np.ndarray, std: np.ndarray, hidden: int = 16) -> Head:
    layers = [
        (rng.normal(size=(8, hidden)).astype(np.float32), rng.normal(size=hidden).astype(np.float32), "gelu"),
        (rng.normal(size=(hidden, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32), "linear"),
    ]
    return Head("photo", "image", "text", mean, std, layers)


def _raw(head: Head, x: np.ndarray) -> np.ndarray:
    z = (x - head.mean) / head.std
    for w, b, a in head.layers:
        z = ACTIVATIONS[a](z @ w + b)
    return z


def test_averaged_head_outputs_the_mean_of_its_members(tmp_path):
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=8).astype(np.float32), rng.uniform(0.5, 2, 8).astype(np.float32)
    members = [_head(rng, mean, std) for _ in range(3)]
    x = rng.normal(size=(5, 8)).astype(np.float32)
    merged = Head.average(members)
    expected = l2_normalise(np.mean([_raw(h, x) for h in members], axis=0))
    np.testing.assert_allclose(merged(x), expected, atol=1e-5)
    assert merged.layers[0][0].shape == (8, 48) and merged.dim == 4
    # it saves and loads like any head
    merged.save(tmp_path)
    np.testing.assert_allclose(Head.load(tmp_path, "photo")(x), expected, atol=1e-5)
    # and differs from each member: the average is not one of them
    assert all(not np.allclose(h(x), merged(x), atol=1e-3) for h in members)


def test_heads_of_other_standardisation_are_not_averaged():
    rng = np.random.default_rng(1)
    mean, std = np.zeros(8, np.float32), np.ones(8, np.float32)
    with pytest.raises(ValueError, match="standardisation"):
        Head.average([_head(rng, mean, std), _head(rng, mean + 1, std)])


def test_float16_weights_load_as_float32(tmp_path):
    """Shipped heads store float16 weights (half the package); they run in float32."""
    rng = np.random.default_rng(2)
    head = _head(rng, np.zeros(8, np.float32), np.ones(8, np.float32))
    x = rng.normal(size=(3, 8)).astype(np.float32)
    expected = head(x)
    head.layers = [(w.astype(np.float16), b, a) for w, b, a in head.layers]
    head.save(tmp_path)
    loaded = Head.load(tmp_path, "photo")
    assert all(w.dtype == np.float32 for w, _, _ in loaded.layers)
    np.testing.assert_allclose(loaded(x), expected, atol=2e-3)
