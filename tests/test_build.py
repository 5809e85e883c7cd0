"""imgsearch.indexing.build: Annoy indexes in parts through `index`, with the small numpy encoders."""

from __future__ import annotations

import pytest
from fakes import TinyImageEncoder, TinyTextEncoder, tiny_searcher, write_image

from imgsearch.embed.job import EmbedOptions
from imgsearch.indexing import ann as ann
from imgsearch.indexing.build import index_folder
from imgsearch.search.query import build_query
from imgsearch.store import SHARDS, Store


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setattr(ann, "EXACT_BELOW", 10)  # Annoy from 10 items (and parts of at least 10)
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(90):
        write_image(photos / f"p{seed:03d}.png", seed)
    return photos


def index(folder, **options):
    return index_folder(
        folder,
        EmbedOptions(),
        ann_options=ann.AnnOptions(**options),
        image=TinyImageEncoder(),
        text=TinyTextEncoder(),
    )


def top(folder, seed: int) -> list[tuple[str, float]]:
    searcher = tiny_searcher(Store(folder / ".imgsearch").require())
    assert searcher.indexes["image"].method == "annoy"
    hits = searcher.search(build_query(images=[str(folder / f"p{seed:03d}.png")], k=5))
    return [(hit.item.path, round(hit.score, 5)) for hit in hits]


def test_index_parts_answer_like_one_index_and_follow_the_part_count(folder):
    report = index(folder, parts=3)
    parts = report.indexes["image"]["parts"]
    assert [(p["start"], p["stop"]) for p in parts] == [(0, 30), (30, 60), (60, 90)]
    sharded = {seed: top(folder, seed) for seed in (0, 44, 89)}
    assert all(hits[0][0].endswith(f"p{seed:03d}.png") for seed, hits in sharded.items())

    assert not index(folder, parts=3).rebuilt  # nothing changed: the same 3 parts stay
    assert not index(folder).rebuilt  # a plain re-index keeps them too
    again = index(folder, parts=1)
    assert again.rebuilt and len(again.indexes["image"]["parts"]) == 1
    gen_dir = Store(folder / ".imgsearch").require().dir
    assert not [p.name for p in gen_dir.glob("*-of-*.ann")]  # one file per space again
    assert {seed: top(folder, seed) for seed in sharded} == sharded

    (folder / "p010.png").unlink()  # the life goes on: rows shift, parts are cut again
    write_image(folder / "p500.png", 500)
    after = index(folder, parts=3)
    assert after.rebuilt and [p["stop"] for p in after.indexes["image"]["parts"]][-1] == 90
    assert top(folder, 500)[0][0].endswith("p500.png")


def test_beam_shards_do_not_set_the_annoy_parts(folder):
    """Beam's output shards and the Annoy index's parts are two things: the shards
    `embed --engine beam --shards 4` leaves do not decide how the index is cut."""
    shards = Store(folder / ".imgsearch").owned_subdir(SHARDS)
    for j in range(4):
        (shards / f"shard-{j:05d}-of-00004").mkdir(parents=True)
    report = index(folder)
    assert report.rebuilt and len(report.indexes["image"]["parts"]) == 1
    assert len(index(folder, parts=2).indexes["image"]["parts"]) == 2  # --parts sets them
