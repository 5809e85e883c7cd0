"""imgsearch.search: the pieces of a query that must not grow with the collection."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from imgsearch.search.fusion import CALIBRATION_SAMPLE, calibration_sample
from imgsearch.search.searcher import _top_rows


@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.integers(1, 80))
def test_top_rows_are_the_best_scores_ties_to_the_lowest_rows(values, n):
    scores = np.array(values, np.float32)
    want = np.sort(np.lexsort((np.arange(len(scores)), -scores))[:n])
    np.testing.assert_array_equal(_top_rows(scores, n), want)


def test_the_calibration_sample_is_fixed_distinct_and_bounded():
    for n in (1, 500, 9_583, 100_000, 100_001, 3_000_000):
        sample = calibration_sample(n)
        assert np.array_equal(sample, calibration_sample(n))  # the same rows every query
        assert len(np.unique(sample)) == len(sample) and np.all(np.diff(sample) > 0)
        assert sample[0] >= 0 and sample[-1] < n
        assert len(sample) == min(n, CALIBRATION_SAMPLE) or (
            n > 100_000 and len(sample) >= 0.99 * CALIBRATION_SAMPLE
        )


def test_spaces_without_an_index_propose_only_in_collections_small_enough_to_read_whole():
    from types import SimpleNamespace

    from imgsearch.search import searcher as search

    def proposers(count, active, image_query=True, within=None):
        fake = SimpleNamespace(gen=SimpleNamespace(count=count), indexes={"image": None, "text": None})
        return search.Searcher._proposers(fake, dict.fromkeys(active), image_query, within)

    both = ["image", "classes", "text", "colour", "lexical"]
    assert proposers(search.SCAN_BELOW, both) == ["image", "classes"]
    assert proposers(search.SCAN_BELOW + 1, both) == ["image"]
    assert proposers(10**6, ["text", "colour", "lexical"], image_query=False) == ["text", "lexical"]
    assert proposers(10**6, ["colour"], image_query=False) == ["colour"]  # nothing else can propose
    assert proposers(10**6, both, within=np.arange(5)) == ["image", "classes"]  # an evaluation gallery


def test_the_stored_calibration_sample_scores_like_the_rows_it_was_taken_from(tmp_path):
    from fakes import TinyImageEncoder, TinyTextEncoder, tiny_searcher, write_image

    from imgsearch.embed.job import EmbedOptions
    from imgsearch.indexing.build import index_folder
    from imgsearch.search import fusion
    from imgsearch.search.query import build_query
    from imgsearch.store import Store

    folder = tmp_path / "shop"
    folder.mkdir()
    words = ["red bag", "blue shoe", "black watch", "green shirt", "white cap"]
    for seed in range(40):
        write_image(folder / f"{seed:02d}.png", seed)
    meta = tmp_path / "catalog.csv"
    rows = "".join(
        f"{seed:02d}.png,{words[seed % 5]} {seed}\n" for seed in range(0, 40, 2)
    )  # half without text
    meta.write_text("filename,title\n" + rows)
    index_folder(
        folder,
        EmbedOptions(meta=meta, text_columns=["title"]),
        image=TinyImageEncoder(),
        text=TinyTextEncoder(),
    )
    gen = Store(folder / ".imgsearch").require()
    stored = gen.calibration()
    assert stored is not None and np.array_equal(stored.rows, fusion.calibration_sample(gen.count))

    def searcher(calibration):
        found = tiny_searcher(gen)
        found._calibration = calibration
        return found

    for query in (
        build_query(texts=["red bag"], k=8),
        build_query(images=[str(folder / "03.png")], texts=["blue"]),
    ):
        new, old = searcher(stored).search(query), searcher(None).search(query)
        assert [h.row for h in new] == [h.row for h in old]
        for a, b in zip(new, old, strict=True):
            assert a.z.keys() == b.z.keys()
            np.testing.assert_allclose(list(a.z.values()), list(b.z.values()), rtol=1e-5, atol=1e-5)
