"""The WordNet terms of ImageNet's classes: which words name which classes, and the space they make."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgsearch.embed.tags import imagenet_ids, imagenet_names
from imgsearch.search import wordnet

COUCH, JERSEY = imagenet_ids()["studio couch"], imagenet_ids()["jersey"]


def classes_of(text: str) -> set[str]:
    vec = wordnet.class_query([text])
    return set() if vec is None else {imagenet_names()[i] for i in np.flatnonzero(vec)}


def test_the_table_lists_every_class_in_imagenet_order_with_its_own_name():
    rows = [
        line.split("\t")
        for line in wordnet.TABLE.read_text(encoding="utf-8").splitlines()
        if not line.startswith("#")
    ]
    assert [int(r[0]) for r in rows] == list(range(1000))
    assert rows[0][1] == "n01440764" and rows[0][2].split("|")[0] == "tench"
    # the class names the classifier reports are (mostly) the synsets' own first lemma
    same = sum(r[2].split("|")[0] == n.lower() for r, n in zip(rows, imagenet_names(), strict=True))
    assert same > 900


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("chest of drawers", ["chest of drawers"]),  # the longest phrase, not "chest" (a box)
        ("Two dogs on a Sofa", ["dog", "sofa"]),  # plurals folded, case ignored
        ("black watches", ["watch"]),  # mostly a verb: a noun after a colour word...
        ("watches", ["watch"]),  # ...or first
        ("a man watches the tv", []),  # ...but not after a noun
        ("a child on a swing", ["swing"]),
        ("Café tee-shirts", ["tee shirt"]),  # accents stripped, hyphens split
        ("a good red", []),  # mostly adjectives are not terms
    ],
)
def test_terms_are_the_longest_nouns_that_name_classes(text, terms):
    assert wordnet.matched_terms(text) == terms


def test_a_term_names_its_classes_and_those_below_it():
    assert classes_of("sofa") == {"studio couch"}
    assert classes_of("chest of drawers") == {"chiffonier"}
    dogs = classes_of("dog")
    assert {"golden retriever", "pug", "Chihuahua"} <= dogs and len(dogs) > 100
    assert not dogs & {"tabby", "grey fox", "tench"}
    assert wordnet.class_query(["red and blue"]) is None


def test_the_query_is_the_square_root_of_a_distribution_each_term_weighing_the_same():
    vec = wordnet.class_query(["a dog on a sofa"])
    assert np.isclose(float(np.sum(vec**2)), 1.0)
    assert np.isclose(vec[COUCH] ** 2, 0.5)  # "sofa" names one class, "dog" spreads over 118


class ClassedEncoder:
    """The tiny image encoder with an ImageNet head: even images are studio couches, odd ones jerseys."""

    def __init__(self):
        from fakes import TinyImageEncoder

        self.inner = TinyImageEncoder()
        self.image_size, self.batch_size, self.spec = (
            self.inner.image_size,
            self.inner.batch_size,
            self.inner.spec,
        )

    def encode(self, pixels):
        from imgsearch.encoders.base import ImageBatchOutput

        out = self.inner.encode(pixels)
        probs = np.full((len(pixels), 1000), 0.1 / 999, np.float32)
        for row, image in enumerate(pixels):
            cls = COUCH if int(np.asarray(image, np.int64).sum()) % 2 == 0 else JERSEY
            probs[row, cls] = 0.9
        return ImageBatchOutput(out.features, probs)


def test_the_wordnet_space_ranks_the_items_of_the_named_classes_first_and_joins_only_when_fitted(tmp_path):
    from fakes import TinyTextEncoder, tiny_searcher, write_image

    from imgsearch.embed.job import EmbedOptions
    from imgsearch.indexing.build import index_folder
    from imgsearch.search.query import build_query
    from imgsearch.store import Store

    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(24):
        write_image(folder / f"{seed:02d}.png", seed)
    index_folder(folder, EmbedOptions(), image=ClassedEncoder(), text=TinyTextEncoder())
    gen = Store(folder / ".imgsearch").require()
    couches = {n for n, item in enumerate(gen.items) if item.tags["classes"][0][0] == "studio couch"}
    assert 0 < len(couches) < gen.count

    searcher = tiny_searcher(gen)
    for text, wanted in (("a sofa", couches), ("grey tee shirts", set(range(gen.count)) - couches)):
        alone = {"wordnet": 1.0, "text": 0.0, "colour": 0.0, "lexical": 0.0}
        hits = searcher.search(build_query(texts=[text], k=gen.count, weights=alone))
        assert {h.row for h in hits[: len(wanted)]} == wanted
    # without a fitted weight for the query's kind it stays out (its table is not even read)
    searcher.fusion = type(searcher.fusion)()
    assert "wordnet" not in searcher.query_vectors(build_query(texts=["a sofa"]))
    assert searcher.default_weight("wordnet", {"wordnet": None}) == 0.0
    searcher.fusion = type(searcher.fusion)(weights={searcher.query_kind({"text": None}): {"wordnet": 0.5}})
    assert "wordnet" in searcher.query_vectors(build_query(texts=["a sofa"]))
    assert "wordnet" not in searcher.query_vectors(build_query(texts=["a sofa"], weights={"wordnet": 0}))


TERMS = sorted(wordnet.term_classes())


@given(
    st.lists(
        st.one_of(st.sampled_from(TERMS), st.sampled_from(["a", "red", "runs", "the", "x9", "Über"])),
        max_size=8,
    )
)
def test_any_text_gives_terms_of_the_table_and_a_unit_distribution_over_their_classes(pieces):
    text = " ".join(pieces)
    terms = wordnet.matched_terms(text)
    assert all(t in wordnet.term_classes() for t in terms)
    assert len(" ".join(terms).split()) <= len(wordnet.words(text))  # each word used at most once
    vec = wordnet.class_query([text])
    assert (vec is None) == (not terms)
    if vec is not None:
        assert np.isclose(float(np.sum(vec.astype(np.float64) ** 2)), 1.0, atol=1e-5)
        named = {c for t in terms for c in wordnet.term_classes()[t]}
        assert set(np.flatnonzero(vec)) == named
