"""Fusion: calibration bounds every space, the lexical space finds exact words, and the shipped
weight table is well-formed. Small numpy encoders stand in for the models."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from fakes import TinyImageEncoder, TinyTextEncoder, tiny_searcher, write_image

from imgsearch import spaces
from imgsearch.embed.job import EmbedOptions
from imgsearch.indexing.build import index_folder
from imgsearch.search import fusion
from imgsearch.search.lexical import match_expression
from imgsearch.search.query import build_query
from imgsearch.store import Store


def test_calibration_keeps_each_space_order_and_bounds_it():
    z = np.array([-40.0, -3.0, -0.5, 0.0, 0.4, 2.5, 11.6, 300.0], np.float32)
    for clip in (2.0, 3.0, 5.0):
        out = fusion.Fusion(clip).calibrate(z)
        assert np.all(np.diff(out) > 0) or np.all(np.diff(out) >= 0)
        assert np.all(np.abs(out) <= clip) and out[3] == 0.0
        assert abs(out[4] - 0.4) < 0.02  # ordinary scores pass almost unchanged
    np.testing.assert_array_equal(fusion.Fusion(None).calibrate(z), z)


def test_a_heavy_tailed_space_cannot_swamp_another():
    """Item A: colour z 11.6, text z 0.1; item B: text z 3, colour z 0.5 (the pink-dress caption).
    With a colour weight of 0.5, raw z-scores still rank A first; calibrated, B wins."""
    colour, text = np.array([11.6, 0.5]), np.array([0.1, 3.0])
    calib = fusion.Fusion(3.0).calibrate
    assert (0.5 * colour + text).argmax() == 0
    assert (0.5 * calib(colour) + calib(text)).argmax() == 1
    assert calib(colour).max() <= 3.0


def test_match_expression_quotes_every_word():
    assert match_expression(['red "bag" OR', "NEAR(x)"]) == '"red" OR "bag" OR "or" OR "near" OR "x"'
    assert match_expression(["", "  "]) is None


@pytest.fixture
def titled(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    titles = {
        "a.png": "Murcia Women Red Handbag",
        "b.png": "Nike Men Black Sports Shoes",
        "c.png": "Puma Women Blue Jeans",
        "d.png": "Fastrack Unisex Black Watch",
        "e.png": "Café Crème Cotton Shirt",
    }
    for seed, name in enumerate(titles):
        write_image(folder / name, seed)
    meta = tmp_path / "catalog.csv"
    meta.write_text("filename,title\n" + "".join(f"{n},{t}\n" for n, t in titles.items()))
    index_folder(
        folder,
        EmbedOptions(meta=meta, text_columns=["title"]),
        image=TinyImageEncoder(),
        text=TinyTextEncoder(),
    )
    return tiny_searcher(Store(folder / ".imgsearch").require())


@pytest.mark.parametrize(
    ("words", "expected"),
    [("murcia", "a.png"), ("fastrack", "d.png"), ("creme", "e.png"), ("handbags", "a.png")],
)
def test_exact_words_reach_the_top_through_the_lexical_space(titled, words, expected):
    hits = titled.search(build_query(texts=[words], k=1, weights={"lexical": 1, "text": 0, "colour": 0}))
    assert hits[0].item.path.endswith(expected)
    assert hits[0].scores["lexical"] > 0


def test_the_lexical_index_is_rebuilt_with_each_generation(titled, tmp_path):
    assert titled.gen.lexical_path is not None and titled.gen.lexical_path.is_file()
    assert titled.gen.manifest["lexical"]["file"] == "lexical.sqlite"


def test_the_shipped_fusion_table_is_well_formed():
    table = json.loads(fusion.FILE.read_text())
    assert table["clip"] is None or 0 < table["clip"] <= 10
    kinds = {"text@titled", "text@shots", "text@photos", "image", "image+text", "image+text@shots"}
    assert set(table["weights"]) <= kinds
    for weights in table["weights"].values():
        assert set(weights) <= set(spaces.NAMES) and any(weights.values())
        assert all(math.isfinite(w) and w >= 0 for w in weights.values())
    provenance = table["provenance"]
    assert {"fitted_by", "date", "data", "never_used", "development", "compose"} <= set(provenance)
    # how much a query photo counts in a photo + words head query: chosen with the weights
    assert table["compose"] in provenance["compose"]["grid"] and fusion.load().compose == table["compose"]


def test_a_table_without_compose_takes_photo_and_words_in_equal_parts(tmp_path):
    (tmp_path / "fusion.json").write_text(json.dumps({"clip": 5.0, "weights": {}}))
    assert fusion.load(tmp_path / "fusion.json").compose == fusion.EQUAL_PARTS == 1.0


@pytest.mark.slow
def test_the_lexical_index_survives_tensorflow_loading_first():
    """TensorFlow bundles a SQLite without FTS5; importing imgsearch first keeps the system one."""
    import subprocess
    import sys

    code = (
        "import imgsearch, tensorflow, sqlite3;"
        "sqlite3.connect(':memory:').execute('CREATE VIRTUAL TABLE t USING fts5(x)'); print('fts5')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "fts5", done.stderr[-500:]


def test_product_shots_get_the_shipped_head_that_knows_products(tmp_path, monkeypatch):
    """``index`` derives the shipped photo head from ``pretrained/shots/`` for product shots, from
    ``pretrained/`` for everyday photos, and re-derives it when the kind or the shipped head changes."""
    from fakes import tiny_head
    from PIL import Image

    from imgsearch.indexing import build

    shipped = tmp_path / "shipped"
    (shipped / "shots").mkdir(parents=True)
    photos_head, shots_head = tiny_head("photo", 7), tiny_head("photo", 8)
    photos_head.info["date"], shots_head.info["date"] = "photos", "shots"
    photos_head.save(shipped)
    shots_head.save(shipped / "shots")
    monkeypatch.setattr(build, "PRETRAINED", shipped)
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(3):  # product shots: an object on a white backdrop
        pixels = np.full((64, 64, 3), 255, np.uint8)
        pixels[16:48, 16:48] = (60 * i, 30, 200)
        Image.fromarray(pixels).save(folder / f"shot{i}.png")

    def head_date() -> str:
        build.index_folder(folder, EmbedOptions(), image=TinyImageEncoder(), text=TinyTextEncoder())
        return Store(folder / ".imgsearch").require().heads()["photo"].info["date"]

    assert head_date() == "shots"
    for i in range(4):  # now mostly everyday photos (busy borders)
        write_image(folder / f"photo{i}.png", i, size=(64, 48))
    assert head_date() == "photos"
    photos_head.info["date"] = "newer"  # an upgrade ships a newer head: re-derived, folder unchanged
    photos_head.save(shipped)
    assert head_date() == "newer"


def _photo_folder(tmp_path):
    """A searcher over four everyday photos (busy borders), indexed with the small encoders: no
    shipped head is derived for them."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(4):
        write_image(folder / f"p{seed}.png", seed, size=(64, 48))
    index_folder(folder, EmbedOptions(), image=TinyImageEncoder(), text=TinyTextEncoder())
    return tiny_searcher(Store(folder / ".imgsearch").require())


def test_fitted_weights_that_weigh_a_missing_head_give_way_to_the_rules(tmp_path):
    """Fitted ``text@photos`` weighs the shipped photo head alone; a store of other encoders has
    no such head, and a text query there must still be answered by its other spaces."""
    searcher = _photo_folder(tmp_path)
    assert "photo" not in searcher.gen.vectors
    head_only = {"photo": 2.0, "text": 0.0, "colour": 0.0}
    searcher.fusion = fusion.Fusion(5.0, {"text@photos": head_only, "text@shots": head_only})
    hits = searcher.search(build_query(texts=["red bag"], k=3))
    assert len(hits) == 3 and hits[0].scores["text"] != 0
    # where the head is there, the fitted weights hold
    searcher.gen.vectors["photo"] = searcher.gen.vectors["text"]
    assert searcher.default_weight("text", {"text": None, "photo": None}) == 0.0


def test_a_query_photo_joins_the_text_heads_query_unless_its_image_side_is_off(tmp_path):
    """ "This handbag, but red": in a space where images meet text, the query is the text plus the
    photo's own projection, so it looks for red handbags rather than anything red."""
    from fakes import write_model

    folder = tmp_path / "shop"
    folder.mkdir()
    for seed in range(4):
        write_image(folder / f"p{seed}.png", seed)
    model = write_model(tmp_path / "model")
    index_folder(folder, EmbedOptions(), model=model, image=TinyImageEncoder(), text=TinyTextEncoder())
    searcher = tiny_searcher(Store(folder / ".imgsearch").require())
    photo = str(folder / "p1.png")
    text = TinyTextEncoder().encode(["red"])[0]
    projected = searcher.heads["aligned"](searcher.encoder.images([photo]).features)[0]

    def unit(v):
        return v / np.linalg.norm(v)

    both = searcher.query_vectors(build_query(images=[photo], texts=["red"]))["aligned"]
    assert searcher.fusion.compose == 1.0  # the shipped table's
    np.testing.assert_allclose(both, unit(text) + unit(projected), atol=1e-5)
    # off means each image-side space the query has (this index has a metric head)
    muted = build_query(images=[photo], texts=["red"], weights={"image": 0, "classes": 0, "metric": 0})
    half = build_query(images=[photo], texts=["red"], weights={"image": 0, "classes": 0})
    np.testing.assert_allclose(searcher.query_vectors(half)["aligned"], both, atol=1e-6)
    np.testing.assert_allclose(searcher.query_vectors(muted)["aligned"], text, atol=1e-6)
    assert np.allclose(searcher.query_vectors(build_query(texts=["red"]))["aligned"], text, atol=1e-6)
    # these 16-d test vectors have no room for 20 colour directions: the photo stays whole (above)
    assert searcher._colour_basis is None
    # where they are a small part of the space, a colour word takes the photo's colour out of it
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(len(text), 2)))[0].astype(np.float32)
    searcher.__dict__["_colour_basis"] = basis
    recoloured = searcher.query_vectors(build_query(images=[photo], texts=["red"]))["aligned"]
    np.testing.assert_allclose(
        recoloured, unit(text) + unit(projected - basis @ (basis.T @ projected)), atol=1e-5
    )
    np.testing.assert_allclose(basis.T @ (recoloured - unit(text)), 0, atol=1e-5)
    # words without a colour keep the photo's colour ("this handbag, in leather")
    leather = TinyTextEncoder().encode(["leather"])[0]
    kept = searcher.query_vectors(build_query(images=[photo], texts=["leather"]))["aligned"]
    np.testing.assert_allclose(kept, unit(leather) + unit(projected), atol=1e-5)
    # the photo's part is the fusion table's compose
    searcher.fusion = dataclasses.replace(searcher.fusion, compose=2.0)
    twice = searcher.query_vectors(build_query(images=[photo], texts=["leather"]))["aligned"]
    np.testing.assert_allclose(twice, unit(leather) + 2 * unit(projected), atol=1e-5)


def test_a_photo_folder_weighs_photo_and_text_by_the_rules_not_a_catalogs_fit(tmp_path):
    """``image+text`` is fitted on titled catalogs; everyday photos have no labelled set for it, so a
    photo + words query there is its own kind, weighed by the rules."""
    searcher = _photo_folder(tmp_path)
    searcher.fusion = fusion.Fusion(5.0, {"image+text": {"image": 0.0, "lexical": 2.0}})
    both = {"image": None, "text": None, "colour": None}
    assert searcher.query_kind(both) == "image+text@photos"
    assert searcher.default_weight("image", both) == 0.5  # the rule: a colour word halves the photo
    assert searcher.query_kind({"image": None}) == "image"
    assert searcher.query_kind({"text": None}) == "text@photos"
