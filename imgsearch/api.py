"""The public Python API: an index of a folder of images, searched by words, by example, or both.

The ``imgsearch`` command and ``imgsearch serve`` are clients of this module: what they do, a
program can do with an :class:`Index`.

>>> from imgsearch import Index
>>> index = Index.build(photos)                       # doctest: +ELLIPSIS
>>> index
Index('.../.imgsearch', 4 items)
>>> [hit.path.rsplit("/", 1)[-1] for hit in index.search(text="a cat", k=1)]
['chelsea.png']
>>> hit = index.search(image=f"{photos}/rocket.jpg", k=1)[0]
>>> hit.rank, hit.id == index.search(like=[hit.path], k=1)[0].id
(1, True)
>>> Index.open(photos).search(text="a cat", k=1)[0].path == index.search(text="a cat", k=1)[0].path
True

Errors a user can act on (a missing index, a bad option, an unreadable image) are
:class:`imgsearch.UserError` and say what to do in one line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from imgsearch.errors import UserError
from imgsearch.files import fresh
from imgsearch.search import filters
from imgsearch.search.query import Query, build_query
from imgsearch.search.searcher import Hit, QueryEncoder, Searcher
from imgsearch.store import FeedbackLog, Generation, Item, Record, Store, find_store

if TYPE_CHECKING:
    from imgsearch.indexing.build import IndexReport

PathLike = str | os.PathLike[str]
Many = str | PathLike | Sequence[str | PathLike] | None  # one value, several, or none


@dataclass
class DuplicateGroup:
    """Copies of one image: the largest file first, each with its duplicate score against it."""

    items: list[Item]
    similarity: list[float]  # each member against the first (the first: 1.0)
    rows: list[int]  # the items' rows in the index

    @property
    def paths(self) -> list[str]:
        return [item.path for item in self.items]

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]

    def __repr__(self) -> str:
        return f"DuplicateGroup({self.paths!r})"


class Index:
    """An index of a folder of images, opened for search (one published generation of its store).

    Open one with :meth:`open`, or make or update one with :meth:`build`. An ``Index`` keeps the
    query models loaded between searches. ``notes`` says what the last call left out (files
    changed since the index, photos without the EXIF a filter needs), for the caller to show.
    """

    def __init__(self, generation: Generation, encoder: QueryEncoder | None = None) -> None:
        self.generation = generation
        self._encoder = encoder
        self.notes: list[str] = []
        self.report: IndexReport | None = None  # what :meth:`build` did, when it made this object

    @classmethod
    def open(
        cls,
        path: PathLike | None = None,
        *,
        image_encoder: str | None = None,
        text_encoder: str | None = None,
    ) -> Index:
        """The index of ``path``: a folder holding ``.imgsearch``, or an index directory; by
        default the nearest ``.imgsearch`` in the current directory or above, as git finds
        ``.git``. ``image_encoder``/``text_encoder`` allow query encoders other than the index's
        own (``query --image-encoder``)."""
        generation = find_store(None if path is None else Path(path).expanduser()).require()
        allowed = frozenset(name for name in (image_encoder, text_encoder) if name)
        return cls(generation, QueryEncoder(generation.manifest, allowed=allowed))

    @classmethod
    def build(
        cls,
        folder: PathLike,
        *,
        out: PathLike | None = None,
        parts: int | None = None,
        trees: int | None = None,
        model: PathLike | None = None,
        no_model: bool = False,
        calibrate: bool = True,
        progress: Any = None,
        **options: Any,
    ) -> Index:
        """Index ``folder`` as ``imgsearch index`` does: embed what is new or changed, build the
        search indexes, publish them atomically; returns the new index (``.report`` says what
        changed). ``options`` are the embedding options (``image_encoder``, ``text_encoder``,
        ``meta``, ``text_columns``, ``exclude``, ``ocr``, ``rebuild``, ...: the fields of
        ``imgsearch.embed.job.EmbedOptions``)."""
        from imgsearch.embed.job import EmbedOptions
        from imgsearch.indexing.ann import AnnOptions
        from imgsearch.indexing.build import index_folder

        known = {f.name for f in dataclasses.fields(EmbedOptions)}
        if unknown := sorted(set(options) - known):
            raise UserError(
                f"unknown index option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        if options.get("meta") is not None:
            options["meta"] = Path(options["meta"]).expanduser()
        report = index_folder(
            Path(folder).expanduser(),
            EmbedOptions(**options),
            out=None if out is None else Path(out).expanduser(),
            ann_options=AnnOptions(trees, parts),
            model=None if model is None else Path(model),
            no_model=no_model,
            progress=progress,
            calibrate=calibrate,
        )
        index = cls(Store(report.store).require())
        index.report = report
        return index

    @cached_property
    def _searcher(self) -> Searcher:
        # made on first use: `index` and `dups` open an index without searching it, and a
        # searcher loads every space's Annoy parts, the calibration sample and the BM25 files
        return Searcher(self.generation, self._encoder)

    @property
    def path(self) -> Path:
        """The index directory (the store that holds this generation)."""
        return self.generation.dir.parent

    def __len__(self) -> int:
        return self.generation.count

    def __repr__(self) -> str:
        return f"Index({str(self.path)!r}, {len(self)} items)"

    def search(
        self,
        text: Many = None,
        image: Many = None,
        *,
        like: Iterable[str] = (),
        unlike: Iterable[str] = (),
        not_text: Many = None,
        not_image: Many = None,
        k: int = 10,
        weights: dict[str, float] | str | None = None,
        taken_after: str | None = None,
        taken_before: str | None = None,
        place: str | None = None,
        camera: str | None = None,
    ) -> list[Hit]:
        """The ``k`` best items for the query, best first.

        ``text``/``image``: what to find (a text, an image path, or several of each; a leading
        ``"2:"`` weighs one against the others). ``like``/``unlike``: indexed items (ids or paths)
        to move towards or away from. ``not_text``/``not_image``: what to push down.
        ``weights``: per space, e.g. ``{"text": 2, "image": 0}`` (``imgsearch spaces``).
        ``taken_after``/``taken_before`` (YYYY, YYYY-MM or YYYY-MM-DD), ``place``, ``camera``:
        keep only photos whose EXIF matches; alone they list the matches by date taken.
        Files changed or gone since the index are left out (said in ``notes``).
        """
        query = build_query(
            _many(image),
            _many(text),
            _many(not_text),
            _many(not_image),
            k,
            weights,
            list(like),
            list(unlike),
            filters.make(taken_after, taken_before, place, camera),
        )
        return self.run(query)

    def run(self, query: Query, vectors: dict | None = None) -> list[Hit]:
        """Answer a query built with ``imgsearch.search.query.build_query`` (the CLI's path);
        ``vectors``: the query already encoded (:meth:`encode`)."""
        hits = self._searcher.search(query, vectors=vectors)
        self.notes = self._notes()
        return hits

    def encode(self, query: Query) -> dict:
        """The query's vector in each space (loads the query models on first use)."""
        return self._searcher.query_vectors(query)

    def load_models(self, image: bool = True, text: bool = True) -> None:
        """Load the query encoders now rather than on the first search (a warm service)."""
        if image:
            self._searcher.encoder.image()
        if text:
            self._searcher.encoder.text()

    def batch(self, source: str, out: TextIO, *, log: bool = False) -> int:
        """``query --batch``: answer each JSON line of ``source`` (a path, or ``-`` for stdin)
        with one JSON line on ``out``; 0 when every line was answered, 2 when any was bad.
        ``log``: append the lines that carry likes or unlikes to the feedback log."""
        from imgsearch.search.batch import run_batch

        feedback = self.feedback_log if log else None
        record = None if feedback is None else lambda q, hits: feedback.append(self.record(q, hits, "batch"))
        return run_batch(self._searcher, source, out, record)

    @property
    def feedback_log(self) -> FeedbackLog:
        """The store's feedback log (``serve`` and ``query --batch --log`` append to it)."""
        return FeedbackLog(Store(self.path))

    def record(self, query: Query, hits: list[Hit], via: str) -> Record:
        """The feedback-log record of a query and its answer: items by id, never image bytes."""
        # rows are looked up only for what the query names: the lookup table reads every item
        items = self.generation.items

        def ids(refs: Iterable[str]) -> list[str]:
            return [items[r].id for ref in refs if (r := self.row_of(ref)) is not None]

        def image_id(source: str) -> str | None:  # an indexed photo's id; an upload or stdin: None
            row = None if source == "-" or source.startswith("data:") else self.row_of(source)
            return None if row is None else items[row].id

        return Record(
            via,
            self.generation.dir.name,
            texts=[text for text, _ in query.texts],
            images=[image_id(source) for source, _ in query.images],
            like=ids(query.like),
            unlike=ids(query.unlike),
            shown=[hit.id for hit in hits],
        )

    def confine(self, exists) -> None:
        """Leave out of every answer the items for which ``exists(path)`` is false (``serve``
        answers only for files under the indexed folders), as deleted files are."""
        self._searcher.file_exists = exists

    def row_of(self, id_or_path: str) -> int | None:
        """The index row of an item named by its id or path (None: not in the index)."""
        return self._searcher.item_rows.get(id_or_path)

    def duplicates(self, threshold: float | None = None, *, exact_only: bool = False) -> list[DuplicateGroup]:
        """Groups of copies, as ``imgsearch dups`` finds them: exact (same bytes) and near
        (resized, recompressed, cropped, marked) with a duplicate score ≥ ``threshold``
        (default: the shipped model's). Checked against the files as they are now: members
        gone or changed since the index are left out (said in ``notes``)."""
        from imgsearch import dups

        gen = self.generation
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise UserError("--threshold is a score between 0 and 1")
        if gen.items and gen.items[0].sha256 is None:
            raise UserError(
                f"{gen.dir.parent} has no duplicate signatures: re-index with `imgsearch index DIR --rebuild`"
            )
        found = dups.find_groups(
            gen, dups.DEFAULT_THRESHOLD if threshold is None else threshold, exact_only=exact_only
        )
        groups, left_out = dups.fresh_groups(gen, found)  # last, so a caller acts on files as they are
        self.notes = [left_out.note()] if left_out else []
        return [
            DuplicateGroup([gen.items[r] for r in g.rows], list(g.similarity), list(g.rows)) for g in groups
        ]

    def _notes(self) -> list[str]:
        notes = []
        if left := self._searcher.left_out:
            total, why = sum(left.values()), fresh.describe(left)
            notes.append(f"left out {total} result(s) changed since the index ({why}); run `imgsearch index`")
        if self._searcher.no_exif:
            notes.append(f"left out {self._searcher.no_exif} photo(s) without the EXIF data the filter needs")
        return notes

    @property
    def no_exif(self) -> int:
        """Photos the last search's filters left out for lacking the EXIF they need."""
        return self._searcher.no_exif

    @property
    def encoder(self) -> QueryEncoder:
        """The query encoders (shared by a new generation of the same store with the same models)."""
        return self._searcher.encoder


def _many(value: Many) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value]
