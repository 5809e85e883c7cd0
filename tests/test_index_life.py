"""The life of an index: random sequences of what users do to a folder, re-indexed after every step.

After each step a plain ``index`` must succeed (while the catalog is hidden it must fail and
change nothing), and the store must equal what ``--rebuild`` makes from the same folder in a
fresh place: same items, same spaces, vectors to cosine ≥ 0.9999, the same hubness biases (the
shipped head here has a query bank), the same heads, and the same answers to a text and an image
query, whatever number of index shards the user asked for along the way (Annoy from 2 items
here, so parts are real).
Small numpy encoders stand in for the models (``fakes.py``), so the fast tier (25 sequences)
runs on every ``make test``; ``HYPOTHESIS_PROFILE=ci`` (set by ``.ci/run``) runs 200.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from fakes import TinyImageEncoder, TinyTextEncoder, tiny_head, tiny_searcher, write_image, write_model
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from imgsearch.embed.job import EmbedOptions
from imgsearch.errors import UserError
from imgsearch.indexing import ann as ann
from imgsearch.indexing import build
from imgsearch.indexing.build import index_folder
from imgsearch.search import hubness
from imgsearch.search.query import build_query
from imgsearch.store import Store

for profile, sequences, steps in (("default", 25, 8), ("ci", 200, 10)):
    settings.register_profile(
        profile,
        max_examples=sequences,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

WORDS = ["red", "blue", "bag", "shoe", "summer", "cotton", "leather", "navy", "dress", "watch"]


def index(folder: Path, *, out: Path | None = None, meta: Path | None = None, no_meta: bool = False, **kw):
    options = EmbedOptions(
        meta=meta, text_columns=["title"] if meta else [], rebuild=out is not None, chunk=3, no_meta=no_meta
    )
    return index_folder(folder, options, out=out, image=TinyImageEncoder(), text=TinyTextEncoder(), **kw)


def snapshot(store_dir: Path) -> dict:
    gen = Store(store_dir).require()
    rows = {item.path: r for r, item in enumerate(gen.items)}
    items = {
        item.path: (item.size, item.mtime, item.text, {k: v for k, v in item.tags.items() if k != "resumed"})
        for item in gen.items
    }
    vectors = {s: {p: np.asarray(v[r]) for p, r in rows.items()} for s, v in gen.vectors.items()}
    biases = {
        s: {p: np.asarray(b[r]) for p, r in rows.items()}
        for s in gen.vectors
        if (b := gen.bias(s)) is not None
    }
    return {"items": items, "vectors": vectors, "biases": biases, "heads": sorted(gen.heads())}


def assert_same(got: dict, want: dict) -> None:
    assert got["items"] == want["items"]
    assert sorted(got["vectors"]) == sorted(want["vectors"])
    assert got["heads"] == want["heads"]
    paths = {s: sorted(b) for s, b in want["biases"].items()}
    assert {s: sorted(b) for s, b in got["biases"].items()} == paths
    for space, by_path in want["biases"].items():
        for path, bias in by_path.items():
            np.testing.assert_allclose(got["biases"][space][path], bias, atol=1e-4, err_msg=f"{space} {path}")
    for space, by_path in want["vectors"].items():
        for path, vec in by_path.items():
            other = got["vectors"][space][path]
            if not vec.any():
                assert not other.any(), (space, path)
                continue
            cosine = float(vec @ other) / float(np.linalg.norm(vec) * np.linalg.norm(other))
            assert cosine >= 0.9999, (space, path, cosine)


class IndexLife(RuleBasedStateMachine):
    """A folder of small images that a user keeps changing and re-indexing."""

    @initialize(seeds=st.lists(st.integers(0, 10_000), min_size=1, max_size=4, unique=True))
    def start(self, seeds):
        self.root = Path(tempfile.mkdtemp(prefix="imgsearch-life-"))
        self.folder = self.root / "photos"
        self.folder.mkdir()
        self.model = write_model(self.root / "model")
        shipped = self.root / "shipped"
        shipped.mkdir()
        head = tiny_head("photo", 7)  # a shipped head for these encoders, like photo.npz
        head.info["query_bank"] = {"banks": [{"bank": "life"}], "k": 3, "beta": 0.5}
        head.save(shipped)
        np.save(self.root / "life.npy", np.random.default_rng(7).standard_normal((12, 16)).astype(np.float16))
        self._pretrained, build.PRETRAINED = build.PRETRAINED, shipped
        self._banks, hubness.BANKS = hubness.BANKS, self.root
        hubness.bank.cache_clear()
        self._exact_below, ann.EXACT_BELOW = ann.EXACT_BELOW, 2  # Annoy parts even for a few images
        self.meta: Path | None = None
        self.model_on = False
        self.clock = 1_600_000_000.0
        self.counter = 0
        for seed in seeds:
            self._write(seed)
        self.check()

    def teardown(self):
        if hasattr(self, "root"):
            build.PRETRAINED = self._pretrained
            hubness.BANKS = self._banks
            hubness.bank.cache_clear()
            ann.EXACT_BELOW = self._exact_below
            shutil.rmtree(self.root, ignore_errors=True)

    # what a user does

    def _write(self, seed: int, name: str | None = None) -> str:
        self.counter += 1
        name = name or f"img-{self.counter:03d}.png"
        write_image(self.folder / name, seed, size=(16 + seed % 17, 16 + seed % 11))
        self._tick(name)
        return name

    def _tick(self, name: str) -> None:
        # a distinct mtime per change, as a real clock gives changes seconds apart
        self.clock += 10
        os.utime(self.folder / name, (self.clock, self.clock))

    def _images(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if p.name.startswith("img-"))

    @rule(seed=st.integers(0, 10_000))
    def add(self, seed):
        self._write(seed)
        self.check()

    @precondition(lambda self: len(self._images()) > 1)
    @rule(data=st.data())
    def delete(self, data):
        (self.folder / data.draw(st.sampled_from(self._images()))).unlink()
        self.check()

    @rule(data=st.data(), seed=st.integers(0, 10_000))
    def modify_in_place(self, data, seed):
        self._write(seed, data.draw(st.sampled_from(self._images())))
        self.check()

    @rule(data=st.data())
    def touch(self, data):
        self._tick(data.draw(st.sampled_from(self._images())))
        self.check()

    @rule(data=st.data())
    def rename(self, data):
        old = data.draw(st.sampled_from(self._images()))
        self.counter += 1
        (self.folder / old).rename(self.folder / f"img-{self.counter:03d}.png")
        self.check()

    @rule()
    def add_corrupt_file(self):
        self.counter += 1
        (self.folder / f"bad-{self.counter:03d}.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
        self.check()

    @rule(titles=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))
    def change_meta(self, titles):
        self.meta = self.root / "catalog.csv"
        rows = [f"{name},{' '.join(titles)} {i}" for i, name in enumerate(self._images()[::2])]
        self.meta.write_text("filename,title\n" + "\n".join(rows) + "\n")
        self.check(meta=self.meta)

    @precondition(lambda self: self.meta is not None)
    @rule()
    def drop_meta(self):
        self.meta.unlink()
        self.meta = None
        self.check(no_meta=True)  # the one way to drop a catalog

    @precondition(lambda self: self.meta is not None)
    @rule()
    def hide_meta(self):
        """A catalog missing for one run stops that run and leaves the index as it was."""
        before = snapshot(self.folder / ".imgsearch")
        hidden = self.meta.rename(self.root / "hidden.csv")
        with pytest.raises(UserError, match="--no-meta"):
            index(self.folder)
        assert_same(snapshot(self.folder / ".imgsearch"), before)
        hidden.rename(self.meta)
        self.check()

    @rule(shards=st.integers(1, 4))
    def reshard(self, shards):
        self.check(ann_options=ann.AnnOptions(parts=shards))

    @rule()
    def add_model(self):
        self.model_on = True
        self.check(model=self.model)

    @rule()
    def remove_model(self):
        self.model_on = False
        self.check(no_model=True)

    # the property

    def check(self, **kw) -> None:
        index(self.folder, **kw)
        reference = self.root / f"ref-{self.counter}-{len(os.listdir(self.root))}"
        index(
            self.folder,
            out=reference,
            meta=self.meta,
            model=self.model if self.model_on else None,
        )
        got = snapshot(self.folder / ".imgsearch")
        assert set(got["biases"]) == {"photo"}  # the shipped head's query bank gave its space biases
        assert_same(got, snapshot(reference))
        image = next((self.folder / n for n in self._images()), None)
        assert answers(self.folder / ".imgsearch", image) == answers(reference, image)
        shutil.rmtree(reference)


def answers(store_dir: Path, image: Path | None) -> list[list[tuple[float, str]]]:
    """Every item's fused score for a text query and (if there is an image) an image query,
    as (score, path) in order: the same whether the index is one Annoy index or several parts."""
    gen = Store(store_dir).require()
    searcher = tiny_searcher(gen)
    queries = [build_query(texts=["red bag"], k=gen.count)]
    if image is not None:
        queries.append(build_query(images=[str(image)], k=gen.count))
    return [sorted((round(h.score, 4), h.item.path) for h in searcher.search(q)) for q in queries]


TestIndexLife = IndexLife.TestCase
