"""imgsearch.search.lexical: BM25 from stored postings equals SQLite's own bm25()."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgsearch.search.lexical import LexicalIndex, match_expression, one_edit, write_index

TEXTS = [
    "Murcia Women Hahk Red Handbags",
    "Nike Men Black Sports Shoes",
    None,  # an item without text
    "Puma Women Blue Jeans, blue blue",
    "Café Crème Cotton Shirt",
    "!!!",  # text without a single token still counts as a row for FTS5's statistics
    "Red red red bag with a red strap and a long handle made of leather",
    "Fastrack Unisex Black Watch",
    "Handbag",
    "Peter England Men Navy Blue T-shirt",
]


@pytest.fixture
def index(tmp_path):
    write_index(tmp_path / "lex.sqlite", TEXTS)
    found = LexicalIndex(tmp_path / "lex.sqlite", len(TEXTS))
    yield found
    found.close()


@pytest.mark.parametrize(
    "words",
    [
        ["red bag"],
        ["blue"],
        ["creme cafe"],  # diacritics removed on both sides
        ["handbags handbag"],  # two words, one stem: FTS5 counts the term twice
        ["navy blue t-shirt", "black"],
        ["nothing matches this"],
    ],
)
def test_postings_give_the_scores_sqlite_gives(index, words):
    expression = match_expression(words)
    terms = index._query_terms(expression)
    assert terms is not None
    np.testing.assert_allclose(index._bm25_postings(terms), index._bm25_sql(expression), rtol=1e-5, atol=1e-6)


def test_the_best_match_comes_first(index):
    rows, scores = index.search(match_expression(["red handbag"]), 3)
    assert rows[0] == 0 and np.all(np.diff(scores) <= 0)
    assert 2 not in index.search(match_expression(["red"]), 10)[0]  # the item without text


def test_a_phrase_of_several_tokens_falls_back_to_sqlite(index):
    assert index._query_terms('"navy_blue"') is None  # "_" splits into two tokens for FTS5
    scores = index.all_scores('"navy_blue"')
    assert scores.shape == (len(TEXTS),)


def test_an_index_without_postings_still_answers(tmp_path):
    import sqlite3

    write_index(tmp_path / "lex.sqlite", TEXTS)
    db = sqlite3.connect(tmp_path / "lex.sqlite")
    db.execute("DROP TABLE postings")
    db.commit()
    db.close()
    old = LexicalIndex(tmp_path / "lex.sqlite", len(TEXTS))
    assert old.search(match_expression(["fastrack"]), 1)[0].tolist() == [7]


def _edits(a: str, b: str) -> int:
    """Levenshtein distance, the slow obvious way."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        row, prev = [i], row
        for j, y in enumerate(b, 1):
            row.append(min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x != y)))
    return row[-1]


@given(st.text("abc", max_size=7), st.text("abc", max_size=7))
def test_one_edit_is_a_levenshtein_distance_of_one(a, b):
    assert one_edit(a, b) == (_edits(a, b) == 1)


def test_fuzzy_terms_find_a_letter_misread_but_not_in_short_words(tmp_path):
    read = ["Aria MJOLK", "Arla MJOLK", "arlo", "cat", "oat drink", "Arlanda airport", None]
    write_index(tmp_path / "ocr.sqlite", read)
    exact = LexicalIndex(tmp_path / "ocr.sqlite", len(read))
    fuzzy = LexicalIndex(tmp_path / "ocr.sqlite", len(read), fuzzy=True)
    assert list(np.flatnonzero(exact.all_scores(match_expression(["arla"])))) == [1]
    assert list(np.flatnonzero(fuzzy.all_scores(match_expression(["arla"])))) == [0, 1, 2]
    assert list(np.flatnonzero(fuzzy.all_scores(match_expression(["oat"])))) == [4]  # not "cat"
    exact.close()
    fuzzy.close()


# words of a, b, c, d: no suffix the Porter stemmer takes off, so a word is its own term
WORDS = st.text("abcd", min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(WORDS, min_size=1, max_size=4), min_size=1, max_size=8), WORDS)
def test_a_fuzzy_query_scores_as_the_word_and_its_neighbours_typed_together(tmp_path_factory, texts, word):
    """Near terms add each neighbour's BM25 weights as if the user had typed it too (short words: none)."""
    path = tmp_path_factory.mktemp("fuzzy") / "ocr.sqlite"
    write_index(path, [" ".join(t) for t in texts])
    exact = LexicalIndex(path, len(texts))
    fuzzy = LexicalIndex(path, len(texts), fuzzy=True)
    vocabulary = {w for t in texts for w in t}
    near = sorted(w for w in vocabulary if one_edit(word, w)) if len(word) >= 4 else []
    expected = exact.all_scores(match_expression([" ".join([word, *near])]))
    np.testing.assert_allclose(fuzzy.all_scores(match_expression([word])), expected, rtol=1e-6)
    exact.close()
    fuzzy.close()


def test_rows_with_every_longer_word_read(tmp_path):
    read = ["GOD MORGON apelsin", "MORGON", "god apelsin juice", "Aria MJOLK", None]
    write_index(tmp_path / "ocr.sqlite", read)
    fuzzy = LexicalIndex(tmp_path / "ocr.sqlite", len(read), fuzzy=True)
    # "god" is too short to count
    assert fuzzy.rows_with_every(match_expression(["god morgon"])).tolist() == [0, 1]
    assert fuzzy.rows_with_every(match_expression(["morgon apelsin"])).tolist() == [0]
    assert fuzzy.rows_with_every(match_expression(["arla milk"])).tolist() == []  # "milk" is not read
    assert fuzzy.rows_with_every(match_expression(["arla"])).tolist() == [3]  # one letter off
    assert fuzzy.rows_with_every(match_expression(["a god"])).tolist() == []  # no longer word at all
    fuzzy.close()
