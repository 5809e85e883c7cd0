"""Query parsing and fusion: image, text and colour evidence merged into one ranking.

Each *space* (image vectors, ImageNet class distributions, text vectors,
colour histograms, and trained heads) turns the
query into one vector: weighted positives minus weighted negatives. Every
active space proposes candidates from its index; the union is then re-scored
exactly in every active space.

Calibration: cosines of different encoders live on different scales (MiniLM
title cosines spread over 0.0-0.7, Lite0 image cosines over 0.3-0.9), so each
space's raw score is standardised per query: z = (s - mean) / std, with mean
and std measured over a fixed random sample of the whole collection. A z of 3
means "three standard deviations better than a typical item for this query"
in any space, so weights compare like with like. The fused score is
``sum(weight[space] * z[space])``.

Colour is its own space on purpose: in a sentence embedding the word "red"
is swamped by the rest of the query and matches red items of every kind, and
an image query pulls towards its own colour. The colour space scores the
foreground colour histogram of each image against the colour words of the
text, so "handbag photo + red" finds red handbags. A trained image→text
head (``imgsearch train``) drops in as one more space."""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch import spaces
from imgsearch.embed import colors
from imgsearch.encoders.base import ImageEncoder, TextEncoder
from imgsearch.errors import UserError
from imgsearch.files import fresh
from imgsearch.files.images import ImageError, load_rgb_array, read_stream
from imgsearch.indexing import ann
from imgsearch.search import filters, fusion, hubness, wordnet
from imgsearch.search.lexical import match_expression
from imgsearch.search.query import Query
from imgsearch.store import DamagedStore, Generation, Item

CANDIDATES_PER_SPACE = 300  # the fused re-rank sees this many nearest items per space (≥ 10·k)
# Up to here a space without an index proposes candidates by reading all its rows: at 100k items
# the classes and colour scans cost 20-30 ms of a cold image + text query, at 1M 0.3-1 s (read
# from disk; bench/scale_query.py), so above it they only re-rank what the indexes propose.
SCAN_BELOW = 100_000
CLASS_ROWS = ("classes", "wordnet")  # spaces scored against the items' class rows
# Annoy node budget per candidate when gathering the fused re-rank's candidates: the index's
# default budget (400 per result, for recall@10 ≥ 0.97 on its own) made 300 candidates cost
# 4.6 ms a query on the fashion index; 20 per candidate gives the same fused results there
# (bench/search_quality.py unchanged) at a fraction of the time.
CANDIDATE_SEARCH_K = 20
# The ocr space's weight where no fit names it (no fit does yet): a rule, not fitted — 1, like any
# space without a reason for another. Its clipped z-score lifts a photo whose printed words match
# by at most fusion's clip without silencing the other spaces (figures: docs/ocr.md).
OCR_WEIGHT = 1.0


# The ocr space's weight where no fit names it (no fit does yet): a rule, not fitted — 1, like any
# space without a reason for another. Its clipped z-score lifts a photo whose printed words match
# by at most fusion's clip without silencing the other spaces (figures: docs/ocr.md).
def _photo_counts(q: Query, vectors: dict) -> bool:
    """A query photo proposes the candidates and joins the text heads' query, unless the user
    switched off each image-side space it has in ``vectors`` (``--weight image=0,classes=0``, and
    ``metric=0`` with a metric head: rank by the text alone)."""
    sides = [s for s in vectors if s in spaces.IMAGE_SIDE]
    return bool(q.images) and any(q.weights.get(s, 1) != 0 for s in sides)


@dataclass
class Hit:
    """One result: its rank (1 first), fused score, the indexed item, and why it ranks there.

    >>> from imgsearch.store import Item
    >>> item = Item(id="a1", path="/photos/cat.jpg", size=1, mtime=0)
    >>> hit = Hit(rank=1, score=2.5, item=item, row=0, scores={"image": 0.9}, z={"image": 2.5})
    >>> hit.path, hit.id, hit.score
    ('/photos/cat.jpg', 'a1', 2.5)
    """

    rank: int
    score: float
    item: Item
    row: int
    scores: dict[str, float]  # raw per-space scores (cosines, colour match)
    z: dict[str, float]  # per-space standardised scores that were fused
    weights: dict[str, float] = field(default_factory=dict)  # each fused space's weight

    @property
    def path(self) -> str:
        return self.item.path

    @property
    def id(self) -> str:
        return self.item.id

    @property
    def text(self) -> str | None:
        """The item's title and description, if the index has them."""
        return self.item.text

    def __repr__(self) -> str:
        return f"Hit(rank={self.rank}, score={self.score:.3f}, path={self.path!r})"

    def to_json(self) -> dict:
        """The hit as ``query -f json``, ``--batch`` and ``serve`` print it."""
        return {
            "rank": self.rank,
            "score": round(self.score, 4),
            "path": self.item.path,
            "id": self.item.id,
            "text": self.item.text,
            "scores": {s: round(v, 4) for s, v in self.scores.items()},
            "z": {s: round(v, 3) for s, v in self.z.items()},
            "weights": self.weights,  # what fused them: fitted, the folder's calibration, or --weight
            "tags": self.item.tags,
            "exif": exif_json(self.item.exif),
            "ocr": self.item.tags.get("ocr"),  # the words read off the photo (index --ocr), else None
        }


def exif_json(record: dict | None) -> dict | None:
    """An item's EXIF for ``-f json`` (files/exif.py): taken, camera, lens, gps, place; null without."""
    if not record:
        return None
    return {k: record.get(k) for k in ("taken", "camera", "lens", "gps", "place")}


class QueryEncoder:
    """The encoders the index was built with, opened on first use (or given: tests, services).

    ``allowed``: encoder names the user named on the command line; only those, the user's own
    LiteRT exports and the installed defaults are ever loaded (``encoders.open_for_index``).
    """

    def __init__(
        self,
        manifest: dict,
        image: ImageEncoder | None = None,
        text: TextEncoder | None = None,
        allowed: frozenset[str] = frozenset(),
    ) -> None:
        self.specs = manifest["encoders"]
        self._image = image
        self._text = text
        self.allowed = allowed
        self._stdin: bytes | None = None  # `-`: read once, however many times it is named
        self._text_cache: dict[str, np.ndarray] = {}

    def image(self) -> ImageEncoder:
        if self._image is None:
            from imgsearch.encoders import open_for_index

            self._image = open_for_index("image", self.specs["image"], self.allowed)
        return self._image

    def text(self) -> TextEncoder:
        if self._text is None:
            from imgsearch.encoders import open_for_index

            self._text = open_for_index("text", self.specs["text"], self.allowed)
        return self._text

    def read_image(self, source: str) -> np.ndarray:
        encoder = self.image()
        try:
            if source == "-":
                if self._stdin is None:
                    self._stdin = read_stream(sys.stdin.buffer)
                return load_rgb_array(self._stdin, encoder.image_size)
            if source.startswith("data:"):  # image bytes inline (batch lines, `imgsearch serve` uploads)
                return load_rgb_array(data_url_bytes(source), encoder.image_size)
            return load_rgb_array(Path(source), encoder.image_size)
        except ImageError as exc:
            name = "(data: URL)" if source.startswith("data:") else source
            raise UserError(f"query image {name}: {exc}") from None

    def images(self, sources: list[str]):
        """``ImageBatchOutput`` (features, class probabilities) for the query images."""
        pixels = np.stack([self.read_image(s) for s in sources])
        return self.image().encode(pixels)

    def texts(self, texts: list[str]) -> np.ndarray:
        """Text vectors, from a small cache first (batch mode encodes whole blocks of queries at once)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        if missing:
            if len(self._text_cache) > 10_000:
                self._text_cache.clear()
            self._text_cache.update(zip(missing, self.text().encode(missing), strict=True))
        return np.stack([self._text_cache[t] for t in texts])


class Searcher:
    """Answers queries against one store generation; encoders load only if a query needs them."""

    def __init__(
        self,
        gen: Generation,
        encoder: QueryEncoder | None = None,
        heads: dict | None = None,
        *,
        check_files: bool = True,
    ) -> None:
        self.gen = gen
        self.check_files = check_files
        # serve narrows this to files under the indexed roots; the rest read as gone
        self.file_exists: Callable[[str], bool] = _anywhere
        self.left_out: Counter[str] = Counter()  # results left out by the last search, by reason
        self.no_exif = 0  # items the last search's filters left out for lacking EXIF
        self.encoder = encoder or QueryEncoder(gen.manifest)
        self.heads = gen.heads() if heads is None else heads
        self._classes: tuple[np.ndarray, np.ndarray] | None = None
        self.indexes: dict[str, ann.VectorIndex] = {}
        for space in spaces.INDEXED:
            if space in gen.vectors:
                info, path = gen.index_info(space)
                try:
                    present = gen.present(space)
                    self.indexes[space] = ann.VectorIndex.load(gen.vectors[space], path, info, present)
                except (ValueError, OSError) as exc:
                    raise DamagedStore(f"{gen.dir}: {exc}; run `imgsearch index` on its folder") from None
        self._calibration = gen.calibration()  # None: a store from before it was stored
        self._sample = (
            fusion.calibration_sample(gen.count) if self._calibration is None else self._calibration.rows
        )
        # the full-text spaces (BM25), an FTS5 file each: item texts, and words read off the photos
        found = {s: gen.lexical_index(s) for s in spaces.FULL_TEXT}
        self.full_text = {s: index for s, index in found.items() if index is not None}
        if "ocr" in self.full_text:  # words read off photos: a letter misread is common (lexical.py)
            self.full_text["ocr"].fuzzy = True
        self.lexical = self.full_text.get("lexical")
        self.fusion = fusion.load()
        # hubness biases (imgsearch/search/hubness.py), subtracted from every score in their space
        self._bias = {s: b for s in gen.vectors if (b := gen.bias(s)) is not None}

    def query_vectors(self, q: Query) -> dict[str, Any]:
        """One vector per active space: weighted positives minus weighted negatives (the lexical
        space gets a full-text expression of the positive words instead)."""
        out: dict[str, Any] = {}
        photo: tuple[np.ndarray, np.ndarray] | None = None  # the query photos' features and signs
        if q.images or q.not_images:
            sources = [s for s, _ in q.images + q.not_images]
            signs = [w for _, w in q.images] + [-w for _, w in q.not_images]
            encoded = self.encoder.images(sources)
            vecs, w = encoded.features, np.asarray(signs, np.float32)
            if q.images:
                out["image"] = w @ vecs
                if "metric" in self.heads:
                    out["metric"] = w @ self.heads["metric"](vecs)
                if encoded.class_probs is not None:
                    out["classes"] = w @ np.sqrt(np.maximum(encoded.class_probs, 0))
                if _photo_counts(q, out):
                    photo = (vecs, w)
        if q.texts:
            texts = [t for t, _ in q.texts + q.not_texts]
            signs = [w for _, w in q.texts] + [-w for _, w in q.not_texts]
            text_vec = np.asarray(signs, np.float32) @ self.encoder.texts(texts)
            if "text" in self.gen.vectors:
                out["text"] = text_vec
            colour = _colour_target(q)
            for space in spaces.TEXT_HEADS:
                if space in self.gen.vectors:
                    out[space] = self._head_query(space, text_vec, photo, recolour=colour is not None)
            if colour is not None and "colour" in self.gen.vectors:
                out["colour"] = colour
            if self._wants_wordnet(q, out):
                named = wordnet.class_query([t for t, _ in q.texts])
                if named is not None:
                    out["wordnet"] = named
            expression = match_expression([t for t, _ in q.texts])
            if expression:
                out.update(dict.fromkeys(self.full_text, expression))
        if q.like or q.unlike:
            out = self._feedback(q, out)
        elif (seeds := self._printed_matches(q, out)) is not None:
            out = self._feedback(q, out, seeds)
        return out

    def _printed_matches(self, q: Query, vectors: dict) -> list[int] | None:
        """The photos on which every longer word of a words-only query was read (the ocr space),
        as implicit likes: where a package's brand was read, the same packages where it was not
        come up beside it (grocery train, development: brand P@10 0.800 → 0.878, product names
        0.235 → 0.302; docs/ocr.md). None when the query has a photo, its own likes, the ocr space
        weighed 0, or no such photo."""
        ocr = self.full_text.get("ocr")
        if ocr is None or q.images or "ocr" not in vectors or q.weights.get("ocr", OCR_WEIGHT) == 0:
            return None
        rows = ocr.rows_with_every(vectors["ocr"])
        return rows.tolist() if len(rows) else None

    def _head_query(
        self,
        space: str,
        text_vec: np.ndarray,
        photo: tuple[np.ndarray, np.ndarray] | None,
        *,
        recolour: bool = False,
    ) -> np.ndarray:
        """The query of a head that maps images into the text space: the text's sentence vector,
        plus, with a query photo, the photo's own place in that space. "This handbag, but red"
        then looks for red handbags there, not for anything red: development image + colour word
        P@10 0.490 → 0.552 on product shots, 0.499 → 0.568 titled (``recipes/fusion.py``, which
        also chooses how much the photo counts, ``fusion.compose``).

        ``recolour`` (the text names a colour): the photo's projection loses its component in the
        span of the colour names' sentence vectors, so the photo's own colour ("black", for a
        black handbag) no longer pulls against the asked one. Development P@10 of this space
        alone 0.225 → 0.298 on product shots, 0.166 → 0.209 titled; fused, refitted: 0.552 →
        0.558 and 0.568 → 0.572 (CV 0.543 → 0.552, 0.557 → 0.564)."""
        norm = float(np.linalg.norm(text_vec))
        if photo is None or space not in self.heads or norm == 0:
            return text_vec
        vecs, signs = photo
        projected = signs @ self.heads[space](vecs)
        if recolour and (basis := self._colour_basis) is not None:
            projected = projected - basis @ (basis.T @ projected)
        photo_part = self.fusion.compose * projected / max(float(np.linalg.norm(projected)), 1e-12)
        return text_vec / norm + photo_part

    @cached_property
    def _colour_basis(self) -> np.ndarray | None:
        """An orthonormal basis (dim × 20) of the colour names' sentence vectors in the text space;
        None where 20 directions would be more than a quarter of that space (a small test encoder):
        removing them would take most of the photo with them. Encoded once per searcher, on the
        first photo + colour-word query: 23 ms on this project's 2-core Xeon, against a 0.5 s
        cold CLI query."""
        words = self.encoder.texts(list(colors.PALETTE_NAMES))
        if words.shape[1] < 4 * len(words):
            return None
        words = words / np.maximum(np.linalg.norm(words, axis=1, keepdims=True), 1e-12)
        return np.linalg.qr(words.T.astype(np.float64))[0].astype(np.float32)

    def _wants_wordnet(self, q: Query, others: dict) -> bool:
        """Whether the ``wordnet`` space can count for this query: the store keeps class rows, and
        the user or the fitted weights of its kind give it a weight (reading the term table costs
        ~17 ms of a cold query, for nothing on a titled catalog, where the weight is 0)."""
        if not self.gen.manifest.get("classes"):
            return False
        if "wordnet" in q.weights:
            return q.weights["wordnet"] != 0
        return bool(self.kind_weights(self.query_kind({**others, "wordnet": None})).get("wordnet"))

    def _feedback(
        self, q: Query, vectors: dict[str, np.ndarray], liked: list[int] | None = None
    ) -> dict[str, np.ndarray]:
        """``vectors`` moved by the query's likes and unlikes, or by the rows ``liked`` given."""
        from imgsearch.search import feedback

        if liked is None:
            liked = self.item_rows.resolve(q.like, "--like")
        unliked = self.item_rows.resolve(q.unlike, "--unlike")
        return feedback.apply_feedback(vectors, self.gen.vectors, liked, unliked, feedback.Rocchio.from_env())

    @cached_property
    def item_rows(self):
        """Rows by item id or path (``feedback.ItemRows``), built on first use: every item is read."""
        from imgsearch.search.feedback import ItemRows

        return ItemRows(self.gen.items)

    def _stale(self, item: Item) -> str | None:
        """Why a hit must not be shown (gone, changed since the index, outside serve's roots)."""
        if not self.file_exists(item.path):
            return fresh.GONE
        return fresh.stale(item)

    def search(
        self,
        q: Query,
        *,
        exclude: set[int] | None = None,
        within: np.ndarray | None = None,
        vectors: dict[str, np.ndarray] | None = None,
    ) -> list[Hit]:
        """Top ``q.k`` hits. ``exclude``: rows never returned (e.g. the query itself);
        ``within``: search only these rows (an evaluation gallery), exactly; ``vectors``: the
        query's vectors when already encoded (``query_vectors``).

        Items whose file is gone or changed since the last index are left out (one stat per
        hit, ``fresh.stale``): a pipeline acting on the paths must not get a replaced file as
        the match its old contents were. ``self.left_out`` counts them by reason for the caller
        to mention.
        """
        self.no_exif = 0
        if q.filters:
            return self._filtered(q, exclude, within, vectors)
        vectors = self.query_vectors(q) if vectors is None else vectors
        weights = {s: q.weights.get(s, self.default_weight(s, vectors)) for s in vectors}
        active = {s: v for s, v in vectors.items() if weights[s] != 0}
        self.left_out = Counter()
        if not active:
            return []
        # an image query's candidates are the photo's neighbours even where a fitted weight of 0
        # leaves its image side out of the ranking (image+text: BM25 and the photo head rank
        # the photo's neighbours), as recipes/fusion.py scores them
        photo_side = spaces.IMAGE_SIDE if _photo_counts(q, vectors) else ()
        proposing = {s: v for s, v in vectors.items() if s in active or s in photo_side}
        bias = self.bias_columns(q, vectors)
        candidates = self._candidates(proposing, q.k + len(exclude or ()), within, bool(q.images), bias)
        if exclude:
            candidates = np.setdiff1d(candidates, np.fromiter(exclude, np.int64))
        raw = {s: self._raw_scores(s, v, candidates, bias) for s, v in active.items()}
        z = {
            s: self.fusion.calibrate(self._standardise(s, v, raw[s], candidates, bias))
            for s, v in active.items()
        }
        fused = sum(weights[s] * z[s] for s in active)
        if not np.all(np.isfinite(fused)):
            raise DamagedStore(
                f"{self.gen.dir}: vectors that are not finite numbers; run `imgsearch index` on its folder"
            )
        hits: list[Hit] = []
        order = np.argsort(-fused, kind="stable")
        for i in self._fresh(order, lambda i: int(candidates[i])):
            scores = {s: float(raw[s][i]) for s in active}
            hits.append(
                Hit(
                    len(hits) + 1,
                    float(fused[i]),
                    self.gen.items[candidates[i]],
                    int(candidates[i]),
                    scores,
                    {s: float(z[s][i]) for s in active},
                    {s: weights[s] for s in active},
                )
            )
            if len(hits) == q.k:
                break
        return hits

    def _fresh(self, order: Iterable[int], row_of: Callable[[int], int] = int) -> Iterator[int]:
        """The entries of ``order`` whose item (row ``row_of(entry)``) may be shown, in order; the
        others are counted in ``left_out`` by reason (gone, changed, outside serve's roots)."""
        for entry in order:
            why = self._stale(self.gen.items[row_of(entry)]) if self.check_files else None
            if why is None:
                yield entry
            else:
                self.left_out[why] += 1

    def _filtered(self, q: Query, exclude, within, vectors) -> list[Hit]:
        """A query with EXIF filters (imgsearch/search/filters.py): the search over the matching rows only,
        scored exactly, so k matches come back when k exist; with nothing to rank by, the matches
        by date taken. ``self.no_exif`` counts the photos left out for lacking the EXIF."""
        found = filters.select(self.gen.items, q.filters)
        rows = found.rows if within is None else np.intersect1d(found.rows, within)
        if exclude:
            rows = np.setdiff1d(rows, np.fromiter(exclude, np.int64))
        if q.is_empty():
            hits = self._listing(filters.by_date(self.gen.items, rows), q.k)
        elif len(rows):
            hits = self.search(dataclasses.replace(q, filters=None), within=rows, vectors=vectors)
        else:
            hits = []
        self.no_exif = found.no_exif
        return hits

    def _listing(self, rows: list[int], k: int) -> list[Hit]:
        """The first k of ``rows`` as hits without a score (nothing ranked them), stale files left out."""
        self.left_out = Counter()
        hits: list[Hit] = []
        for row in self._fresh(rows):
            hits.append(Hit(len(hits) + 1, 0.0, self.gen.items[row], row, {}, {}))
            if len(hits) == k:
                break
        return hits

    def bias_columns(self, q: Query, vectors: dict) -> dict[str, int]:
        """The hubness bias column (``imgsearch.search.hubness``) that serves this query in each space that
        has biases: the bank that looks like its words (a few words, or a sentence). Banks hold
        text queries, so a query without words, or whose photo counts (photo + words composed in
        the head's space), is scored without them: refitted with them on the development
        products, image + colour word P@10 fell 0.572 → 0.561 titled and 0.558 → 0.552 on product
        shots (``recipes/fusion.py``)."""
        if _photo_counts(q, vectors):
            return {}
        texts = [t for t, _ in q.texts]
        found = {}
        for space in self._bias:
            head = self.heads.get(space)
            col = hubness.column(head.info.get("query_bank") if head else None, texts)
            if col is not None:
                found[space] = col
        return found

    def query_kind(self, active: dict) -> str:
        """What kind of query this is, for the fitted fusion weights: ``image``, ``image+text``
        (on a titled catalog), ``image+text@shots`` (product shots without titles, where the text
        is the photo head's and the colour space's to read), ``image+text@photos`` (everyday
        photos: no labelled set to fit it, so the rules weigh it rather than a catalog's fit), or
        ``text@titled`` / ``text@shots`` / ``text@photos`` by what the index holds."""
        image = any(spaces.BY_NAME[s].query == "image" for s in active)
        text = any(spaces.BY_NAME[s].query != "image" for s in active)
        if image and text:
            return "image+text" if self._collection == "titled" else f"image+text@{self._collection}"
        return "image" if image else f"text@{self._collection}"

    @cached_property
    def _collection(self) -> str:
        """``titled`` (catalog text), ``shots`` (product shots on a plain backdrop) or ``photos``."""
        if self.gen.manifest["text_source"].get("meta"):
            return "titled"
        return "shots" if spaces.product_shots(self.gen.items) else "photos"

    def default_weight(self, space: str, active: dict | None = None) -> float:
        """Weights unless the user gives them: fitted per query kind where the fusion table has
        them (``recipes/fusion.py``), else these rules.

        A trained metric head replaces raw image similarity. A colour named in the text
        overrides the photo's own colour, which image features mix with shape: image
        similarity then counts half, class similarity (colour-blind) in full; class similarity
        only joins when there is text to refine the photo. Measured on
        the fashion set, handbag photo + "red": 0.695 → 0.73 red handbags in the top 10.
        """
        kind = self.query_kind(active or {space: None})
        fitted = self.kind_weights(kind).get(space) if self._fitted_holds(kind) else None
        if fitted is not None:
            return fitted
        if space == "image" and "metric" in self.heads:
            return 0.0
        if space == "image" and active and "colour" in active:
            return 0.5
        if space == "photo":
            return self._photo_weights[0]
        if space == "text" and active and "photo" in active:
            return self._photo_weights[1]
        if space in ("lexical", "wordnet"):
            return 0.0  # joins only where a fitted weight says it helps (pretrained/fusion.json)
        if space == "ocr":
            return OCR_WEIGHT
        if space == "classes" and not (active and "text" in active):
            return 0.0  # image alone: P@10 0.788 without classes, 0.767 with (fashion, 200 queries)
        return 1.0

    def _fitted_holds(self, kind: str) -> bool:
        """The fitted weights of a kind hold where the store has every head they weigh. A store
        made with other encoders has no shipped photo head, and ``text@photos`` weighs that head
        alone: its other spaces at 0 would answer nothing, so the rules weigh them instead."""
        return all(
            space in self.gen.vectors
            for space, weight in self.kind_weights(kind).items()
            if weight and spaces.BY_NAME[space].source == "head"
        )

    def kind_weights(self, kind: str) -> dict[str, float]:
        """The weights of a query kind: the folder's own where ``index`` found its photos out of
        the photo head's domain (the manifest's ``trust`` record, ``imgsearch.indexing.trust``), else the
        fitted ones (in its domain the record holds a copy of them; the shipped file is current)."""
        record = self.gen.manifest.get("trust") or {}
        if record.get("in_domain") is False and record.get("kind") == kind:
            return record["weights"]
        return self.fusion.weights.get(kind, {})

    @cached_property
    def _photo_weights(self) -> tuple[float, float]:
        """(photo head, item text) weights for text queries, by what the index holds.

        Measured (text → image): on a catalog with titles the photo head only hurts
        (fashion P@10 0.828 titles alone, 0.628 with the head); on product shots without
        titles head and auto tags help each other (0.161 head, 0.394 tags, 0.439 with
        head 0.5 + tags 1); on everyday photos tags blur the head (Flickr8k held-out
        R@10 0.595 head alone, 0.528 with tags at 0.5).
        """
        return {"titled": (0.0, 1.0), "shots": (0.5, 1.0), "photos": (1.0, 0.0)}[self._collection]

    def _candidates(
        self,
        active: dict[str, np.ndarray],
        k: int,
        within: np.ndarray | None,
        image_query: bool = True,
        bias: dict[str, int] | None = None,
    ) -> np.ndarray:
        n = max(CANDIDATES_PER_SPACE, 10 * k)
        found = []
        for space in self._proposers(active, image_query, within):
            vec = active[space]
            if space in self.full_text and within is None:
                found.append(self.full_text[space].search(vec, n)[0])
            elif within is not None:
                scores = self._raw_scores(space, vec, within, bias)
                found.append(within[np.argsort(-scores)[:n]])
            elif space in self.indexes:
                found.append(self.indexes[space].search(vec, n, search_k=CANDIDATE_SEARCH_K * n)[0])
            else:
                found.append(_top_rows(self._raw_all(space, vec, bias), n))
        return np.unique(np.concatenate(found)).astype(np.int64)

    def _proposers(self, active: dict, image_query: bool, within: np.ndarray | None) -> list[str]:
        """The spaces whose nearest items make the candidates: the image side for an image query
        (feedback gives a text query image vectors too: then every space proposes). Above
        ``SCAN_BELOW`` items a space without an index (classes, colour) only re-ranks, unless
        nothing else can propose: it would be read whole for every query."""
        wanted = [s for s in active if s in spaces.IMAGE_SIDE and image_query] or list(active)
        if within is not None or self.gen.count <= SCAN_BELOW:
            return wanted
        return [s for s in wanted if s in self.indexes or s in spaces.FULL_TEXT] or wanted

    def _raw_all(self, space: str, vec: np.ndarray, bias: dict[str, int] | None = None) -> np.ndarray:
        if space in CLASS_ROWS or space in (bias or {}):
            return self._raw_scores(space, vec, np.arange(self.gen.count), bias)
        return np.asarray(self.gen.vectors[space] @ vec, np.float32)

    def _raw_scores(
        self, space: str, vec, rows: np.ndarray, bias: dict[str, int] | None = None
    ) -> np.ndarray:
        """Each row's score in ``space``, less its hubness bias where ``bias`` (``bias_columns``)
        names a column for the space."""
        if space in self.full_text:
            return self.full_text[space].scores(vec, rows)
        if space in CLASS_ROWS:
            ids, vals = self._class_arrays()
            return _class_scores(vec, ids[rows], vals[rows])
        if space in self.indexes:
            raw = self.indexes[space].scores(vec, rows)
        else:
            raw = np.asarray(self.gen.vectors[space][rows] @ vec, np.float32)
        col = (bias or {}).get(space)
        return raw if col is None else raw - self._bias[space][rows, col]

    def _class_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._classes is None:
            self._classes = self.gen.class_arrays()
        return self._classes

    @property
    def _has_text(self) -> np.ndarray:
        """Which items have a text vector: the text index worked it out when it loaded."""
        return self.indexes["text"].present

    def _sample_scores(self, space: str, vec, bias: dict[str, int] | None = None) -> np.ndarray:
        """The calibration sample's raw scores: from the sample's own rows stored at index time
        (one small read, where reading them from the collection is a random read per row: seconds
        at 1M items with an empty page cache, bench/scale_query.py --drop-caches)."""
        stored = None
        if self._calibration is not None and space not in spaces.FULL_TEXT:
            stored = self._calibration.get("classes" if space in CLASS_ROWS else space)
        if stored is None:
            return self._raw_scores(space, vec, self._sample, bias)
        if space in CLASS_ROWS:
            return _class_scores(vec, *stored)
        raw = ann.cosines(stored, vec) if space in self.indexes else np.asarray(stored @ vec, np.float32)
        col = (bias or {}).get(space)
        if col is not None:
            stored_bias = self._calibration.get(f"{space}.bias")
            raw = raw - (self._bias[space][self._sample, col] if stored_bias is None else stored_bias[:, col])
        return raw

    def _sample_has_text(self) -> np.ndarray:
        stored = None if self._calibration is None else self._calibration.get("text")
        return self._has_text[self._sample] if stored is None else np.any(stored != 0, axis=1)

    def _standardise(
        self,
        space: str,
        vec: np.ndarray,
        raw: np.ndarray,
        rows: np.ndarray,
        bias: dict[str, int] | None = None,
    ) -> np.ndarray:
        sample = self._sample_scores(space, vec, bias)
        if space == "text":
            has_text = self._sample_has_text()
            sample = sample[has_text] if has_text.any() else sample
        mean, std = float(sample.mean()), float(sample.std()) or 1.0
        z = (raw - mean) / std
        if space == "text":  # an item without text is neutral, neither boosted nor buried
            z[~self._has_text[rows]] = 0.0
        return z.astype(np.float32)


def _anywhere(_path: str) -> bool:
    return True


def _class_scores(vec: np.ndarray, ids: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """The class space's score of each sparse row (top class ids and their sqrt-probabilities)."""
    return (vec[ids] * vals).sum(axis=1).astype(np.float32)


def _top_rows(scores: np.ndarray, n: int) -> np.ndarray:
    """The rows of the ``n`` highest scores, ties to the lowest rows, in row order (without a full
    sort: 100 ms at 1M rows)."""
    if n >= len(scores):
        return np.arange(len(scores))
    kth = np.partition(scores, len(scores) - n)[len(scores) - n]
    above = np.flatnonzero(scores > kth)
    return np.sort(np.r_[above, np.flatnonzero(scores == kth)[: n - len(above)]])


def data_url_bytes(url: str) -> bytes:
    """The bytes of a ``data:[type];base64,...`` URL."""
    import base64
    import binascii

    head, sep, payload = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise ImageError("a data: URL must be base64 (data:image/jpeg;base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("data: URL is not valid base64") from None


def _colour_target(q: Query) -> np.ndarray | None:
    total = None
    for text, weight in q.texts + [(t, -w) for t, w in q.not_texts]:
        target = colors.text_colour_query(text)
        if target is not None:
            total = weight * target if total is None else total + weight * target
    return None if total is None else np.asarray(total, np.float32)
