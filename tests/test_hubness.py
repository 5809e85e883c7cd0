"""search.hubness: the query-bank bias of each item, stored at index time, subtracted at query time."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import TinyImageEncoder, TinyTextEncoder, tiny_head, tiny_searcher, write_image

from imgsearch.embed.job import EmbedOptions
from imgsearch.encoders.base import l2_normalise
from imgsearch.errors import UserError
from imgsearch.indexing import build
from imgsearch.indexing.build import index_folder
from imgsearch.search import hubness
from imgsearch.search.query import build_query
from imgsearch.store import DamagedStore, Store


def _brute(bank: np.ndarray, outputs: np.ndarray, k: int, beta: float) -> np.ndarray:
    return np.array([beta * np.sort(bank @ o)[-k:].mean() for o in outputs], np.float32)


def test_the_bias_is_beta_times_the_mean_cosine_with_the_k_nearest_bank_sentences(monkeypatch):
    rng = np.random.default_rng(0)
    bank, outputs = l2_normalise(rng.standard_normal((50, 8))), l2_normalise(rng.standard_normal((23, 8)))
    monkeypatch.setattr(hubness, "BLOCK", 5)  # rows cross block boundaries
    for k, beta in ((1, 1.0), (7, 0.5), (50, 0.25), (80, 0.5)):
        want = _brute(bank, outputs, min(k, 50), beta)
        np.testing.assert_allclose(hubness.bias_against(bank, outputs, k, beta), want, rtol=1e-5, atol=1e-6)
    # a sentence-like item near many bank sentences (a hub) gets more bias than an outlier
    hub, outlier = l2_normalise(bank[:10].mean(0, keepdims=True)), -l2_normalise(bank.sum(0, keepdims=True))
    near_many, near_few = hubness.bias_against(bank, np.r_[hub, outlier], 10, 0.5)
    assert near_many > near_few + 0.1


def test_heads_without_a_bank_have_no_bias_and_a_missing_bank_is_one_clear_error(monkeypatch, tmp_path):
    head = tiny_head("photo", 1)
    assert hubness.item_bias(head, np.ones((3, 16), np.float32)) is None
    monkeypatch.setattr(hubness, "BANKS", tmp_path)
    hubness.bank.cache_clear()
    head.info["query_bank"] = {"banks": [{"bank": "nowhere"}], "k": 5, "beta": 0.5}
    with pytest.raises(UserError, match="query bank 'nowhere' is missing"):
        hubness.item_bias(head, np.ones((3, 16), np.float32))
    head.info["query_bank"]["banks"] = [{"bank": "../etc"}]
    with pytest.raises(UserError, match="missing"):
        hubness.item_bias(head, np.ones((3, 16), np.float32))
    hubness.bank.cache_clear()


@pytest.fixture
def banked(monkeypatch, tmp_path):
    """Index with a shipped-like photo head (tiny encoders) whose manifest names two query banks:
    one for queries of up to 2 words, one for longer ones."""
    rng = np.random.default_rng(5)
    bank = l2_normalise(rng.standard_normal((40, 16))).astype(np.float16)
    short = l2_normalise(rng.standard_normal((30, 16))).astype(np.float16)
    banks = tmp_path / "banks"
    banks.mkdir()
    np.save(banks / "test.npy", bank)
    np.save(banks / "test-short.npy", short)
    monkeypatch.setattr(hubness, "BANKS", banks)
    hubness.bank.cache_clear()
    spec = {"banks": [{"bank": "test-short", "max_words": 2}, {"bank": "test"}], "k": 5, "beta": 0.5}

    def shipped(encoders, shots=False):
        head = tiny_head("photo", 3)
        head.info |= {"date": "2026-12-02", "query_bank": dict(spec)}
        return {"photo": head}

    monkeypatch.setattr(build, "shipped_heads", shipped)
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(12):
        write_image(folder / f"{seed:02d}.png", seed)
    yield folder, np.asarray(bank, np.float32), np.asarray(short, np.float32), spec
    hubness.bank.cache_clear()


def _index(folder):
    index_folder(folder, EmbedOptions(), image=TinyImageEncoder(), text=TinyTextEncoder())
    return Store(folder / ".imgsearch").require()


def test_index_stores_each_items_biases_and_a_text_query_subtracts_its_banks(banked):
    folder, bank, short, _ = banked
    gen = _index(folder)
    biases = gen.bias("photo")
    outputs = gen.vectors["photo"]
    np.testing.assert_allclose(biases[:, 0], _brute(short, outputs, 5, 0.5), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(biases[:, 1], _brute(bank, outputs, 5, 0.5), rtol=1e-5, atol=1e-6)
    assert gen.bias("image") is None
    np.testing.assert_array_equal(gen.calibration().get("photo.bias"), biases[gen.calibration().rows])
    searcher = tiny_searcher(gen)
    for words, col in (("red bag", 0), ("a red leather bag", 1)):  # the bank that looks like the query
        q = build_query(texts=[words], k=12, weights="photo=1,text=0,colour=0")
        text = TinyTextEncoder().encode([words])[0]
        corrected = outputs @ text - biases[:, col]
        hits = searcher.search(q)
        assert [h.row for h in hits] == np.argsort(-corrected, kind="stable").tolist()
    np.testing.assert_allclose([h.scores["photo"] for h in hits], np.sort(corrected)[::-1], rtol=1e-5)
    # the z-scores from the stored sample match those worked out from the rows themselves
    searcher_rows = tiny_searcher(gen)
    searcher_rows._calibration = None
    again = searcher_rows.search(q)
    np.testing.assert_allclose([h.z["photo"] for h in again], [h.z["photo"] for h in hits], rtol=1e-5)
    # a photo + words query is not a text query: its composed vector is scored without the bias
    photo = str(folder / "04.png")
    composed = build_query(images=[photo], texts=["red bag"], k=12, weights="text=0,colour=0")
    vec = searcher.query_vectors(composed)["photo"]
    hits = searcher.search(composed)
    plain = gen.vectors["photo"] @ (vec / np.linalg.norm(vec))
    np.testing.assert_allclose([h.scores["photo"] for h in hits], plain[[h.row for h in hits]], rtol=1e-5)


def test_the_bias_follows_the_collection_and_the_bank_through_re_indexing(banked):
    folder, bank, _, spec = banked
    first = _index(folder).bias("photo")[:, 1].copy()
    write_image(folder / "new.png", 99)
    (folder / "03.png").unlink()
    gen = _index(folder)
    assert gen.count == 12 and gen.bias("photo").shape == (12, 2)
    np.testing.assert_allclose(gen.bias("photo")[:, 1], _brute(bank, gen.vectors["photo"], 5, 0.5), rtol=1e-5)
    kept = [r for r, i in enumerate(gen.items) if not i.path.endswith("new.png")]
    assert np.isin(np.round(gen.bias("photo")[kept, 1], 5), np.round(first, 5)).all()
    spec["beta"] = 1.0  # a new bank setting re-derives the space even though nothing else changed
    gen = _index(folder)
    np.testing.assert_allclose(gen.bias("photo")[:, 1], _brute(bank, gen.vectors["photo"], 5, 1.0), rtol=1e-5)


def test_a_bias_file_that_does_not_match_the_items_is_refused(banked):
    folder, _, _, _ = banked
    gen = _index(folder)
    np.save(gen.dir / "photo.bias.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(DamagedStore, match=r"photo\.bias\.npy does not match"):
        Store(folder / ".imgsearch").require().bias("photo")


def test_the_first_bank_that_covers_the_longest_text_serves_the_query():
    spec = {"banks": [{"bank": "w", "max_words": 3}, {"bank": "s"}]}
    assert hubness.column(spec, ["dog"]) == 0 and hubness.column(spec, ["black dog on grass"]) == 1
    assert hubness.column(spec, ["dog", "a dog runs on the beach"]) == 1
    assert hubness.column({"banks": [{"bank": "w", "max_words": 3}]}, ["a dog runs on the beach"]) is None
    assert hubness.column(spec, []) is None and hubness.column(None, ["dog"]) is None
