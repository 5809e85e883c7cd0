"""The lexical space: BM25 over item texts with SQLite's FTS5 (in Python's standard library).

Why: a sentence embedding blurs exact words. A shop title's brand ("Murcia"), a model number or
a rare word should reach the top when the user types it, and plain full-text search does that:
on the fashion catalog BM25 over titles gave "<colour> <type>" P@10 0.927 against the text
space's 0.73 (issue 13, ``../shared/tools/fts_floor.py``). Porter stemming matches "handbag" to
"Handbags"; ``remove_diacritics`` matches "creme" to "Crème".

The index file is written once per generation (``store.GenerationWriter.add_lexical``) and opened
read-only by queries. Rows are the generation's item rows; scores are ``-bm25`` (higher is
better), 0 for items that match no query word.

Postings: SQLite computes ``bm25()`` row by row, which grows with the number of matching items
(at 1M titles "navy blue shirt" matches 320k of them: 0.9 s). Each term's BM25 contribution to
each item does not depend on the query, so the build stores it: one row per term with the items
that hold it and their weights (FTS5's own formula, tokens and statistics), and a query adds the
arrays of its terms with numpy (bench/scale_query.py). A query term that tokenises to more or
fewer than one term (and an index written before postings) takes SQLite's ``bm25()`` instead.

Near terms (``fuzzy``, the ocr space): a query term of 4+ characters also matches the index's terms
one edit away, each scored as its own term. OCR misreads a letter of a word often ("Arla" read as
"Aria" or "Arlo"); on 264 grocery *train* photos (16 of each of 9 brands, 120 others) a brand name
was found on 9 → 12 of 16 Arla packages, 11 → 13 of 16 Valio, +1 for four more brands, and one
photo of another product matched where none had (``docs/ocr.md``). Only with postings.
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
from pathlib import Path

import numpy as np

TOKENIZER = "porter unicode61 remove_diacritics 2"
_WORD = re.compile(r"\w+", re.UNICODE)
_PHRASE = re.compile(r'"([^"]*)"')
NEAR_MIN = 4  # shorter terms have too many neighbours one edit away ("oat": "cat", "eat", "oak")
# FTS5's bm25() defaults (sqlite/ext/fts5/fts5_aux.c): k1, b, and the floor of a term's idf
_K1, _B, _MIN_IDF = 1.2, 0.75, 1e-6


def write_index(path: Path, texts: list[str | None]) -> None:
    """An FTS5 table of ``texts`` (None: no text) at ``path``, row i stored as rowid i + 1."""
    db = sqlite3.connect(path)
    try:
        db.execute(f"CREATE VIRTUAL TABLE items USING fts5(text, tokenize='{TOKENIZER}')")
        db.executemany(
            "INSERT INTO items(rowid, text) VALUES (?, ?)",
            ((row + 1, text) for row, text in enumerate(texts) if text),
        )
        _write_postings(db)
        db.commit()
    finally:
        db.close()


def _write_postings(db: sqlite3.Connection) -> None:
    """Each term's items and BM25 weights, as FTS5's bm25() would add them up for a query.

    The items of a term come as one comma-separated string per term (an item once per
    occurrence): a row per occurrence through Python cost twice the time (1M titles).
    """
    db.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, items, 'instance')")
    found = db.execute("SELECT term, group_concat(doc) FROM temp.vocab GROUP BY term").fetchall()
    db.execute("CREATE TABLE postings(term TEXT PRIMARY KEY, rows BLOB, weights BLOB) WITHOUT ROWID")
    if not found:
        return
    occurrences = [np.array(docs.split(","), np.int64) for _, docs in found]
    total = db.execute("SELECT count(*) FROM items").fetchone()[0]
    length = np.bincount(np.concatenate(occurrences)).astype(np.float64)  # tokens per item (rowid)
    average = length.sum() / total
    rows = []
    for (term, _), each in zip(found, occurrences, strict=True):
        docs, tf = np.unique(each, return_counts=True)
        idf = max(math.log((total - len(docs) + 0.5) / (len(docs) + 0.5)), _MIN_IDF)
        weights = idf * tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * length[docs] / average))
        rows.append((term, (docs - 1).astype(np.int32).tobytes(), weights.astype(np.float32).tobytes()))
    db.executemany("INSERT INTO postings VALUES (?, ?, ?)", rows)


def match_expression(texts: list[str]) -> str | None:
    """An FTS5 query matching any word of ``texts`` (each word quoted: no query syntax leaks in)."""
    words = dict.fromkeys(w.lower() for text in texts for w in _WORD.findall(text))
    return " OR ".join(f'"{w}"' for w in words) or None


class LexicalIndex:
    """BM25 search over the item texts of one generation."""

    def __init__(self, path: Path, rows: int, *, fuzzy: bool = False) -> None:
        self.path = path
        self.rows = rows
        self.fuzzy = fuzzy
        self._vocabulary: dict[int, list[str]] | None = None  # the index's terms by length
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._last: tuple[str, np.ndarray] | None = None
        self._db.execute("SELECT rowid FROM items LIMIT 1").fetchall()  # a damaged file fails here
        self._postings = bool(
            self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'postings'"
            ).fetchall()
        )
        self._terms: sqlite3.Connection | None = None  # an in-memory FTS5 table: the query's terms
        self._terms_lock = threading.Lock()  # `serve` answers queries in threads

    def all_scores(self, expression: str) -> np.ndarray:
        """The score of every row (0 where no word matches), from one full-text query.

        One query fetching every match and indexing into the array beats asking SQLite for the
        scores of given rows (``rowid IN (...)`` re-ran the match: 54 ms a call on the 9,583-item
        fashion index, against 3 ms for this; bench/cold_query.py's warm batch went 19 → 235 q/s).
        The last expression's array is kept: a query asks for candidates, their scores and the
        calibration sample's.
        """
        if self._last is not None and self._last[0] == expression:
            return self._last[1]
        terms = self._query_terms(expression) if self._postings else None
        if terms is not None and self.fuzzy:
            terms = [near for term in terms for near in self._near(term)]
        scores = self._bm25_sql(expression) if terms is None else self._bm25_postings(terms)
        self._last = (expression, scores)
        return scores

    def _bm25_sql(self, expression: str) -> np.ndarray:
        scores = np.zeros(self.rows, np.float32)
        found = self._db.execute("SELECT rowid, bm25(items) FROM items WHERE items MATCH ?", (expression,))
        for rowid, score in found:
            if 0 < rowid <= self.rows:
                scores[rowid - 1] = -score
        return scores

    def _bm25_postings(self, terms: list[str]) -> np.ndarray:
        rows, weights = [np.empty(0, np.int32)], [np.empty(0, np.float32)]
        for term in terms:  # a term named by two phrases counts twice, as in FTS5
            if (posting := self._posting(term)) is not None:
                rows.append(posting[0])
                weights.append(posting[1])
        at, by = np.concatenate(rows), np.concatenate(weights)
        keep = at < self.rows
        return np.bincount(at[keep], weights=by[keep], minlength=self.rows).astype(np.float32)

    def _posting(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The rows that hold ``term`` and its BM25 weight in each (None: no item has it)."""
        found = self._db.execute("SELECT rows, weights FROM postings WHERE term = ?", (term,)).fetchone()
        if found is None:
            return None
        return np.frombuffer(found[0], np.int32), np.frombuffer(found[1], np.float32)

    def rows_with_every(self, expression: str) -> np.ndarray:
        """The rows that hold every term of ``expression`` of ``NEAR_MIN`` characters or more (or,
        with ``fuzzy``, a term one edit away); none when it has no such term. Short words are left
        out: "a", "the" or "oat" read on a sign say little about what a photo shows."""
        terms = self._query_terms(expression) if self._postings else None
        long = [t for t in terms or () if len(t) >= NEAR_MIN]
        found: np.ndarray | None = None
        for term in long:
            rows = [np.empty(0, np.int32)]
            for near in self._near(term) if self.fuzzy else [term]:
                if (posting := self._posting(near)) is not None:
                    rows.append(posting[0])
            held = np.unique(np.concatenate(rows))
            found = held if found is None else np.intersect1d(found, held)
        if found is None:
            return np.empty(0, np.int64)
        return found[found < self.rows].astype(np.int64)

    def _near(self, term: str) -> list[str]:
        """``term`` and, when it has ``NEAR_MIN`` characters or more, the index's other terms one
        edit (a letter changed, added or dropped) away from it."""
        if len(term) < NEAR_MIN:
            return [term]
        vocabulary = self._vocabulary
        if vocabulary is None:  # built whole, then published: serve's threads never see half of it
            vocabulary = {}
            for (found,) in self._db.execute("SELECT term FROM postings"):
                vocabulary.setdefault(len(found), []).append(found)
            self._vocabulary = vocabulary
        lengths = (len(term) - 1, len(term), len(term) + 1)
        near = [t for n in lengths for t in vocabulary.get(n, ()) if t != term and one_edit(term, t)]
        return [term, *near]

    def _query_terms(self, expression: str) -> list[str] | None:
        """The term of each quoted phrase of ``expression``, tokenised as the items were (None: a
        phrase that is not exactly one term, which only SQLite's phrase matching scores right)."""
        phrases = _PHRASE.findall(expression)
        with self._terms_lock:
            found = self._tokenise(phrases)
        terms = dict(found)
        if len(found) != len(phrases) or len(terms) != len(phrases):
            return None
        return [terms[n] for n in range(1, len(phrases) + 1)]

    def _tokenise(self, phrases: list[str]) -> list[tuple[int, str]]:
        """(phrase number, term) of every token of ``phrases``."""
        if self._terms is None:
            self._terms = sqlite3.connect(":memory:", check_same_thread=False)
            self._terms.execute(f"CREATE VIRTUAL TABLE q USING fts5(text, tokenize='{TOKENIZER}')")
            self._terms.execute("CREATE VIRTUAL TABLE qv USING fts5vocab(q, 'instance')")
        db = self._terms
        db.execute("DELETE FROM q")
        db.executemany("INSERT INTO q(rowid, text) VALUES (?, ?)", enumerate(phrases, 1))
        return db.execute("SELECT doc, term FROM qv").fetchall()

    def search(self, expression: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best-matching rows and their scores, best first (only rows that match)."""
        scores = self.all_scores(expression)
        matched = np.flatnonzero(scores)
        top = matched[np.argsort(-scores[matched], kind="stable")[:n]]
        return top.astype(np.int64), scores[top]

    def scores(self, expression: str, rows: np.ndarray) -> np.ndarray:
        """The score of each of ``rows`` (0 where no word matches)."""
        return self.all_scores(expression)[np.asarray(rows, np.int64)]

    def close(self) -> None:
        self._db.close()
        if self._terms is not None:
            self._terms.close()


def one_edit(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with exactly one letter changed, added or dropped."""
    if len(a) > len(b):
        a, b = b, a
    if len(b) - len(a) > 1 or a == b:
        return False
    start = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
    skip = 1 if len(a) == len(b) else 0  # a change skips the letter in both; an insertion only in b
    return a[start + skip :] == b[start + 1 :]
