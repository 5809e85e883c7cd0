"""Training heads on stored vectors: they learn what the data holds, save, load, and plug into search."""

import numpy as np
import pytest

from imgsearch import store
from imgsearch.embed.job import EmbedOptions
from imgsearch.encoders.heads import Head, load_heads
from imgsearch.errors import UserError
from imgsearch.indexing.build import index_folder
from imgsearch.search.searcher import Searcher
from imgsearch.store import Item, Store
from imgsearch.train.transfer import TrainConfig, save_model, train_aligned, train_metric

pytestmark = pytest.mark.slow
N, CLASSES = 800, 8


def _synthetic_store(root, n=N, seed=0) -> Store:
    """Image features from 8 classes; each title vector is a fixed linear map of its image plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    centres = rng.normal(size=(CLASSES, 64))
    image = centres[labels] + 0.8 * rng.normal(size=(n, 64))
    text = image @ rng.normal(size=(64, 32)) + 0.5 * rng.normal(size=(n, 32))
    norm = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    items = [
        Item(
            f"id{i}",
            f"/p/{1000 + i}.jpg",
            1,
            1.0,
            f"title {i}",
            {"text_source": "meta", "label": int(labels[i])},
        )
        for i in range(n)
    ]
    st = Store(root)
    encoders = {"image": {"id": "img@test", "name": "x"}, "text": {"id": "txt@test", "name": "y"}}
    store.write_generation(st, encoders, items, {"image": norm(image), "text": norm(text)})
    return st


def test_aligned_head_learns_the_hidden_map(tmp_path):
    gen = _synthetic_store(tmp_path / "s").require()
    head, extra = train_aligned(gen, TrainConfig(epochs=30, batch_size=64, seed=1))
    best = head.info["validation"]["best"]
    assert best > 0.6  # chance for recall@10 among ~64 validation items is ~0.16
    # numpy head == keras model, and outputs live in the text space
    x = np.asarray(gen.vectors["image"][:5])
    keras_out = extra["keras"]((x - head.mean) / head.std, training=False).numpy()
    keras_out /= np.linalg.norm(keras_out, axis=1, keepdims=True)
    np.testing.assert_allclose(head(x), keras_out, atol=1e-5)
    assert head.dim == 32 and head.info["encoders"]["image"] == "img@test"


def test_metric_head_groups_labels_and_never_sees_the_test_split(tmp_path):
    gen = _synthetic_store(tmp_path / "s").require()
    labels = [str(i.tags["label"]) for i in gen.items]
    head, _ = train_metric(gen, labels, TrainConfig(epochs=15, batch_size=128, metric_dim=16))
    assert head.info["validation"]["best"] > 0.8
    assert head.info["trained_on"]["train_items"] + head.info["trained_on"]["val_items"] == N * 4 // 5


def test_too_little_data_is_a_clear_error(tmp_path):
    gen = _synthetic_store(tmp_path / "s", n=40).require()
    with pytest.raises(UserError, match="at least 50"):
        train_aligned(gen, TrainConfig(epochs=1))
    with pytest.raises(UserError, match="labelled training items"):
        train_metric(gen, [None] * 40, TrainConfig(epochs=1))


def test_save_load_roundtrip(tmp_path):
    gen = _synthetic_store(tmp_path / "s").require()
    trained = {"aligned": train_aligned(gen, TrainConfig(epochs=2, batch_size=64))}
    save_model(tmp_path / "model", trained)
    assert (tmp_path / "model" / "aligned.keras").exists()
    loaded = load_heads(tmp_path / "model")["aligned"]
    x = np.asarray(gen.vectors["image"][:7])
    np.testing.assert_allclose(loaded(x), trained["aligned"][0](x), atol=1e-6)
    assert isinstance(loaded, Head) and loaded.info["config"]["epochs"] == 2


def test_heads_go_into_the_index_and_stay_on_reindex(photos, tmp_path, lite0, minilm):
    index_folder(photos, EmbedOptions())
    st = Store(photos / ".imgsearch")
    gen = st.require()
    # a head trained elsewhere for these encoders: identity-like random projection is enough here
    rng = np.random.default_rng(0)
    head = Head(
        "aligned",
        "image",
        "text",
        np.zeros(1280, np.float32),
        np.ones(1280, np.float32),
        [(rng.normal(size=(1280, 384)).astype(np.float32), np.zeros(384, np.float32), "linear")],
        {"encoders": {"image": gen.manifest["encoders"]["image"]["id"]}},
    )
    head.save(tmp_path / "model")
    index_folder(photos, EmbedOptions(), model=tmp_path / "model")
    gen2 = st.require()
    assert gen2.vectors["aligned"].shape == (6, 384)
    np.testing.assert_allclose(gen2.vectors["aligned"], head(gen2.vectors["image"]), atol=1e-6)
    assert "aligned" in Searcher(gen2).query_vectors(
        __import__("imgsearch.search.query").search.query.build_query(texts=["x"])
    )
    (photos / "rocket.jpg").unlink()
    index_folder(photos, EmbedOptions())
    assert st.require().vectors["aligned"].shape == (5, 384)  # heads survive re-indexing


def test_head_for_another_encoder_is_refused(photos, tmp_path, lite0, minilm):
    index_folder(photos, EmbedOptions())
    head = Head(
        "metric",
        "image",
        "metric",
        np.zeros(1280, np.float32),
        np.ones(1280, np.float32),
        [(np.eye(1280, 8, dtype=np.float32), np.zeros(8, np.float32), "linear")],
        {"encoders": {"image": "resnet50@imagenet"}},
    )
    head.save(tmp_path / "model")
    with pytest.raises(UserError, match="trained on image encoder resnet50"):
        index_folder(photos, EmbedOptions(), model=tmp_path / "model")
