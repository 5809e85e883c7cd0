"""The embedding job end to end with the real default encoders on real photos."""

import os
import shutil

import numpy as np
import pytest

from imgsearch.embed.job import EmbedOptions
from imgsearch.errors import UserError
from imgsearch.indexing.build import embed_folder as embed
from imgsearch.store import Store

pytestmark = pytest.mark.slow


class _Counter:
    def __init__(self, stop_after: int | None = None) -> None:
        self.total = self.done = 0
        self.stop_after = stop_after

    def start(self, total, description):
        self.total = total

    def advance(self, n):
        self.done += n
        if self.stop_after is not None and self.done >= self.stop_after:
            raise KeyboardInterrupt

    def note(self, message):
        self.notes = [*getattr(self, "notes", []), message]


def test_embed_then_incremental_reindex(photos, tmp_path, lite0, minilm):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    st = Store(tmp_path / "vectors")
    report = embed([str(photos)], st, EmbedOptions())
    assert (report.count, report.added) == (6, 6)
    assert [p.rsplit("/", 1)[1] for p, _ in report.skipped] == ["broken.jpg"]
    gen = st.require()
    assert gen.vectors["image"].shape == (6, 1280) and gen.vectors["text"].shape == (6, 384)
    np.testing.assert_allclose(np.linalg.norm(gen.vectors["image"], axis=1), 1, rtol=1e-5)
    cat = next(i for i in gen.items if i.path.endswith("chelsea.png"))
    assert cat.tags["text_source"] == "auto" and "cat" in cat.text
    assert gen.manifest["encoders"]["image"]["id"] == lite0.spec.id
    # the two motorcycle photos are each other's nearest neighbours
    names = [i.path.rsplit("/", 1)[1] for i in gen.items]
    sims = gen.vectors["image"] @ gen.vectors["image"].T
    np.fill_diagonal(sims, -1)
    assert names[int(sims[names.index("motorcycle_left.png")].argmax())] == "motorcycle_right.png"

    # unchanged: nothing embedded, same generation kept
    again = embed([str(photos)], st, EmbedOptions())
    assert (again.unchanged, again.added, again.updated, again.removed) == (6, 0, 0, 0)
    assert st.require().dir == gen.dir

    # one changed, one removed, one added
    os.utime(photos / "coffee.png", (1, 1))
    (photos / "rocket.jpg").unlink()
    shutil.copy2(photos / "chelsea.png", photos / "cat2.png")
    third = embed([str(photos)], st, EmbedOptions())
    assert (third.added, third.updated, third.removed, third.unchanged) == (1, 1, 1, 4)
    gen3 = st.require()
    assert gen3.count == 6
    rows = {i.path.rsplit("/", 1)[1]: r for r, i in enumerate(gen3.items)}
    np.testing.assert_allclose(
        gen3.vectors["image"][rows["cat2.png"]], gen3.vectors["image"][rows["chelsea.png"]], atol=1e-6
    )


def test_interrupted_run_resumes_from_saved_chunks(photos, tmp_path, lite0, minilm):
    st = Store(tmp_path / "vectors")
    with pytest.raises(KeyboardInterrupt):
        embed([str(photos)], st, EmbedOptions(chunk=2), _Counter(stop_after=4))
    assert st.load() is None  # nothing published yet…
    assert len(list(st.partial_dir.glob("chunk-*.npz"))) == 2  # …but two chunks are kept
    progress = _Counter()
    report = embed([str(photos)], st, EmbedOptions(chunk=2), progress)
    assert progress.total == 2  # only what was not saved is embedded again
    assert (report.count, report.resumed) == (6, 4)
    assert not st.partial_dir.exists()


def test_metadata_text_is_used(photos, tmp_path, lite0, minilm):
    meta = tmp_path / "meta.csv"
    meta.write_text("filename,title\nphotos/chelsea.png,Ginger cat on a sofa\n")
    st = Store(tmp_path / "vectors")
    embed([str(photos)], st, EmbedOptions(meta=meta, text_columns=["title"]))
    gen = st.require()
    by_name = {i.path.rsplit("/", 1)[1]: i for i in gen.items}
    assert by_name["chelsea.png"].text == "Ginger cat on a sofa"
    assert by_name["chelsea.png"].tags["text_source"] == "meta"
    assert by_name["coffee.png"].tags["text_source"] == "auto"
    assert gen.manifest["text_source"]["columns"] == ["title"]


def test_nothing_usable_is_an_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="no usable images"):
        embed([str(tmp_path / "bad.png")], Store(tmp_path / "v"), EmbedOptions())
    with pytest.raises(UserError, match="no such file"):
        embed([str(tmp_path / "missing")], Store(tmp_path / "v"), EmbedOptions())
