"""The vector spaces of a store, in one table: everything else (embed, index, search, CLI help) reads it.

A *space* is one kind of evidence that an item matches a query. Each has a row here saying
where its item vectors come from, whether an ANN index is built for it or it is scored
exactly, what a query is turned into to score it, and whether it proposes candidates for an
image query or only re-ranks them. Default weights are fitted per kind of query
(``pretrained/fusion.json``, ``recipes/fusion.py``); where no fit applies (a kind without one,
or an index without a head the fit weighs) they are rules that depend on the query and the index
(``search.Searcher.default_weight``, each rule measured): ``weight`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Space:
    name: str
    # "embed": written by the embedding job; "head": a trained/shipped head; "tags": item tags;
    # "lexical": a full-text index of the item texts
    source: str
    indexed: bool  # an Annoy index is built for it (colour and class vectors are tiny: exact)
    query: str  # what the query is turned into: "image" features, "text" sentence vector, "colour" words
    # With a query image these spaces propose candidates; the others only re-rank them ("this photo,
    # but red"): letting "red" propose red items of every kind dropped the share of red handbags for a
    # handbag photo + "red" from 0.70 to 0.66 (fashion set, bench/search_quality.py).
    image_side: bool
    weight: str  # where its default weight comes from
    help: str


SPACES: tuple[Space, ...] = (
    Space(
        "image",
        source="embed",
        indexed=True,
        query="image",
        image_side=True,
        weight="1; 0.5 when the text names a colour; 0 when a metric head is in the index",
        help="image encoder features",
    ),
    Space(
        "classes",
        source="tags",
        indexed=False,
        query="image",
        image_side=True,
        weight="1 when the query also has text, else 0",
        help="ImageNet class distribution (Hellinger), colour-blind",
    ),
    Space(
        "text",
        source="embed",
        indexed=True,
        query="text",
        image_side=False,
        weight="1; 0 on everyday photos without text, where the photo head answers",
        help="sentence vectors of item titles (or auto tags)",
    ),
    Space(
        "colour",
        source="embed",
        indexed=False,
        query="colour",
        image_side=False,
        weight="1",
        help="foreground colour histogram against the colour words of the query",
    ),
    Space(
        "lexical",
        source="lexical",
        indexed=False,
        query="words",
        image_side=False,
        weight="learned (imgsearch/pretrained/fusion.json)",
        help="BM25 over item texts (SQLite FTS5, porter stemming): exact words, brands, model numbers",
    ),
    Space(
        "ocr",
        source="lexical",
        indexed=False,
        query="words",
        image_side=False,
        weight="1 (a rule, not fitted: imgsearch/embed/ocr.py); only in an index built with `index --ocr`",
        help="BM25 over the words read off each photo at index time (`index --ocr`): brands on "
        "packaging, signs, screenshots",
    ),
    Space(
        "wordnet",
        source="tags",
        indexed=False,
        query="words",
        image_side=False,
        weight="learned (imgsearch/pretrained/fusion.json); else 0",
        help="ImageNet classes the query's nouns name or fall under (WordNet: 'sofa', 'dog', "
        "'chest of drawers'), against each item's classes",
    ),
    Space(
        "aligned",
        source="head",
        indexed=True,
        query="text",
        image_side=False,
        weight="1",
        help="images projected into the text space by a head trained on your titles (`train`)",
    ),
    Space(
        "metric",
        source="head",
        indexed=True,
        query="image",
        image_side=True,
        weight="1 (and it replaces image)",
        help="image features through a head trained on your labels (`train`)",
    ),
    Space(
        "photo",
        source="head",
        indexed=True,
        query="text",
        image_side=False,
        weight="0 with catalog text, 0.5 on product shots, 1 on everyday photos; 0 for text on a "
        "folder unlike its training photos (`index` calibration)",
        help="the shipped photo text-search head (images into the text space)",
    ),
)

BY_NAME = {s.name: s for s in SPACES}
NAMES = tuple(BY_NAME)
EMBEDDED = tuple(s.name for s in SPACES if s.source == "embed")
HEADS = tuple(s.name for s in SPACES if s.source == "head")
INDEXED = tuple(s.name for s in SPACES if s.indexed)
IMAGE_SIDE = tuple(s.name for s in SPACES if s.image_side)
FULL_TEXT = tuple(s.name for s in SPACES if s.source == "lexical")  # BM25 over an FTS5 file each
TEXT_HEADS = tuple(s.name for s in SPACES if s.source == "head" and s.query == "text")
SHIPPED_HEADS = ("photo",)  # come with the package; re-derived on every index, never copied from one


def product_shots(items) -> bool:
    """Whether a collection is mostly product shots on a plain backdrop (its first 2,000 items):
    text queries on it are ``text@shots``, and its shipped photo head is the one that also trained on
    product titles (``pretrained/shots/``); else everyday photos."""
    tags = [item.tags.get("backdrop") for item in items[:2000]]
    return sum(bool(b) for b in tags) > len(tags) / 2


def help_text() -> str:
    """One line for CLI help: every space by name."""
    return ", ".join(NAMES)
