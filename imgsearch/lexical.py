"""The lexical space: BM25 over item texts with SQLite's FTS5 (in Python's standard library).

Why: a sentence embedding blurs exact words. A shop title's brand ("Murcia"), a model number or
a rare word should reach the top when the user types it, and plain full-text search does that:
on the fashion catalog BM25 over titles gave "<colour> <type>" P@10 0.927 against the text
space's 0.73 (issue 13, ``../shared/tools/fts_floor.py``). Porter stemming matches "handbag" to
"Handbags"; ``remove_diacritics`` matches "creme" to "Crème".

The index file is written once per generation (``store.GenerationWriter.add_lexical``) and opened
read-only by queries. Rows are the generation's item rows; scores are ``-bm25`` (higher is
better), 0 for items that match no query word.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np

TOKENIZER = "porter unicode61 remove_diacritics 2"
_WORD = re.compile(r"\w+", re.UNICODE)


def write_index(path: Path, texts: list[str | None]) -> None:
    """An FTS5 table of ``texts`` (None: no text) at ``path``, row i stored as rowid i + 1."""
    db = sqlite3.connect(path)
    try:
        db.execute(f"CREATE VIRTUAL TABLE items USING fts5(text, tokenize='{TOKENIZER}')")
        db.executemany(
            "INSERT INTO items(rowid, text) VALUES (?, ?)",
            ((row + 1, text) for row, text in enumerate(texts) if text),
        )
        db.commit()
    finally:
        db.close()


def match_expression(texts: list[str]) -> str | None:
    """An FTS5 query matching any word of ``texts`` (each word quoted: no query syntax leaks in)."""
    words = dict.fromkeys(w.lower() for text in texts for w in _WORD.findall(text))
    return " OR ".join(f'"{w}"' for w in words) or None


class LexicalIndex:
    """BM25 search over the item texts of one generation."""

    def __init__(self, path: Path, rows: int) -> None:
        self.path = path
        self.rows = rows
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._last: tuple[str, np.ndarray] | None = None
        self._db.execute("SELECT rowid FROM items LIMIT 1").fetchall()  # a damaged file fails here

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
        scores = np.zeros(self.rows, np.float32)
        found = self._db.execute("SELECT rowid, bm25(items) FROM items WHERE items MATCH ?", (expression,))
        for rowid, score in found:
            if 0 < rowid <= self.rows:
                scores[rowid - 1] = -score
        self._last = (expression, scores)
        return scores

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
