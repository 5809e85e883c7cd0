"""The shipped photo text-search head: loads, matches the default encoders, ranks photos by caption."""

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED

from imgsearch.embed.job import EmbedOptions
from imgsearch.encoders.heads import Head
from imgsearch.files.images import load_rgb_array
from imgsearch.indexing.build import PRETRAINED, index_folder, shipped_heads
from imgsearch.search.query import build_query
from imgsearch.search.searcher import Searcher
from imgsearch.store import Store
from imgsearch.train.splits import is_test_item

pytestmark = pytest.mark.slow
HOLDOUT = Path(__file__).resolve().parents[1] / "bench" / "flickr8k_holdout.txt"


def test_shipped_head_is_for_the_default_encoders(lite0, minilm):
    head = Head.load(PRETRAINED, "photo")
    assert head.dim == 384 and head.target == "text"
    assert head.info["encoders"] == {"image": lite0.spec.id, "text": minilm.spec.id}
    assert head.info["held_out_metrics"]["head"]["R@10"] >= 0.55
    manifest = {"encoders": {"image": lite0.spec.to_json(), "text": minilm.spec.to_json()}}
    assert set(shipped_heads(manifest["encoders"])) == {"photo"}
    # collections of product shots get the head that also trained on product titles
    shots = shipped_heads(manifest["encoders"], shots=True)["photo"]
    assert "fashion" in shots.info["trained_on"] and "fashion" not in head.info["trained_on"]
    assert shots.info["encoders"] == head.info["encoders"] and shots.dim == head.dim
    manifest["encoders"]["image"]["id"] = "resnet50@imagenet"
    assert shipped_heads(manifest) == {}
    assert shipped_heads(manifest["encoders"], shots=True) == {}


def test_photo_head_answers_text_queries_on_a_folder_without_text(photos):
    index_folder(photos, EmbedOptions())
    gen = Store(photos / ".imgsearch").require()
    assert gen.vectors["photo"].shape == (6, 384)
    searcher = Searcher(gen)
    for text, expected in (("a cat", "chelsea.png"), ("two motorbikes", "motorcycle")):
        hits = searcher.search(build_query(texts=[text], k=1, weights="text=0,colour=0"))
        assert Path(hits[0].item.path).name.startswith(expected), text


def test_held_out_photos_rank_first_for_their_own_captions(lite0, minilm):
    flickr = SHARED / "flickr8k"
    if not (flickr / "captions.csv").exists():
        pytest.skip("../shared/data/flickr8k is not present")
    names = [n for n in HOLDOUT.read_text().splitlines() if n and not n.startswith("#")][:40]
    captions = {}
    with open(flickr / "captions.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            captions.setdefault(row["image"], row["caption"])
    pixels = np.stack([load_rgb_array(flickr / "images" / n, 224) for n in names])
    images = Head.load(PRETRAINED, "photo")(lite0.encode(pixels).features)
    queries = minilm.encode([captions[n] for n in names])
    ranks = (queries @ images.T > np.diag(queries @ images.T)[:, None]).sum(axis=1) + 1
    # never trained on these; random ranking would put the right photo at ~20 of 40
    assert np.median(ranks) <= 3, ranks
    assert (ranks <= 10).mean() >= 0.7, ranks


def test_shipped_head_finds_product_shots_of_the_test_split(lite0, minilm):
    """The product-shot head also trained on fashion development titles (id mod 5 != 0), never on the
    test split: on test-split product shots, "<colour> <type>" finds them (Flickr-only head: 0.05)."""
    fashion = SHARED / "fashion"
    if not (fashion / "products.csv").exists():
        pytest.skip("../shared/data/fashion is not present")
    head = Head.load(PRETRAINED / "shots", "photo")
    assert "id mod 5 == 0" in head.info["trained_on"]["fashion"]["never_used"]
    wanted = ("black watches", "brown handbags", "black sunglasses", "white casual shoes", "blue tshirts")
    rows = []
    with open(fashion / "products.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if is_test_item(row["filename"]) and (fashion / row["filename"]).exists():
                rows.append(row)
    picked, others, count = [], 0, dict.fromkeys(wanted, 0)
    for row in rows:  # up to 20 of each wanted kind and 100 others, in file order
        key = f"{row['baseColour']} {row['articleType']}".lower()
        if key in count and count[key] < 20:
            count[key] += 1
            picked.append(row)
        elif key not in count and others < 100:
            others += 1
            picked.append(row)
    assert min(count.values()) >= 10, count
    pixels = np.stack([load_rgb_array(fashion / r["filename"], 224) for r in picked])
    images = head(lite0.encode(pixels).features)
    keys = [f"{r['baseColour']} {r['articleType']}".lower() for r in picked]
    sims = minilm.encode(list(wanted)) @ images.T
    precision = [
        np.mean([keys[i] == q for i in np.argsort(-s)[:10]]) for q, s in zip(wanted, sims, strict=True)
    ]
    assert np.mean(precision) >= 0.6, dict(zip(wanted, precision, strict=True))
