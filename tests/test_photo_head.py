"""The shipped photo text-search head: loads, matches the default encoders, ranks photos by caption."""

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED

from imgsearch.build import PRETRAINED, index_folder, shipped_heads
from imgsearch.embed import EmbedOptions
from imgsearch.heads import Head
from imgsearch.images import load_rgb_array
from imgsearch.search import Searcher, build_query
from imgsearch.store import Store

pytestmark = pytest.mark.slow
HOLDOUT = Path(__file__).resolve().parents[1] / "bench" / "flickr8k_holdout.txt"


def test_shipped_head_is_for_the_default_encoders(lite0, minilm):
    head = Head.load(PRETRAINED, "photo")
    assert head.dim == 384 and head.target == "text"
    assert head.info["encoders"] == {"image": lite0.spec.id, "text": minilm.spec.id}
    assert head.info["held_out_metrics"]["head"]["R@10"] >= 0.55
    manifest = {"encoders": {"image": lite0.spec.to_json(), "text": minilm.spec.to_json()}}
    assert set(shipped_heads(manifest["encoders"])) == {"photo"}
    manifest["encoders"]["image"]["id"] = "resnet50@imagenet"
    assert shipped_heads(manifest) == {}


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
