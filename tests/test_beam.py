"""``embed --engine beam``: the Beam pipeline gives the local engine's store, resumes by shard, and
says in one line how to install Beam when it is missing.

Fast tests use the small numpy encoders (in Beam's in-process mode, and once in the worker
processes that are the local default); the equality test with the real LiteRT encoders is slow.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from fakes import TinyImageEncoder, TinyTextEncoder, write_image
from test_index_life import assert_same, snapshot

from imgsearch import store
from imgsearch.embed.beam.run import BeamOptions
from imgsearch.embed.job import EmbedOptions, EmbedReport
from imgsearch.indexing.build import embed_folder, embed_folder_beam, index_folder
from imgsearch.store import Store

IN_PROCESS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def needs_beam() -> None:
    pytest.importorskip("apache_beam", reason="the beam extra: pip install 'imgsearch[beam]'")


def make_folder(root: Path, n: int) -> Path:
    """n small PNGs in two levels, plus files the engines must skip or ignore the same way."""
    folder = root / "photos"
    (folder / "sub").mkdir(parents=True)
    for i in range(n):
        write_image(folder / ("sub" if i % 3 else "") / f"p{i:03d}.png", i)
    (folder / ".hidden").mkdir()
    write_image(folder / ".hidden" / "secret.png", 999)
    write_image(folder / ".dot.png", 998)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    os.mkfifo(folder / "pipe.jpg")
    return folder


def beam_embed(folder: Path, out: Path, shards: int = 3, args=IN_PROCESS, **options) -> EmbedReport:
    return embed_folder_beam(
        [str(folder)],
        Store(out),
        EmbedOptions(**options),
        BeamOptions(shards, args=list(args)),
        image=TinyImageEncoder(),
        text=TinyTextEncoder(),
    )


def local_embed(folder: Path, out: Path, **options) -> EmbedReport:
    return embed_folder(
        [str(folder)], Store(out), EmbedOptions(**options), image=TinyImageEncoder(), text=TinyTextEncoder()
    )


def test_missing_beam_is_one_line_that_says_how_to_install(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png", 1)
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # what `import apache_beam` meets without it
    code, _, err = run_cli(
        ["embed", folder, "--out", tmp_path / "E", "--engine", "beam"], capsys, monkeypatch
    )
    assert code == 2
    assert err.strip().count("\n") == 0 and "pip install 'imgsearch[beam]'" in err
    assert not Store.is_store(tmp_path / "E")


def test_beam_store_equals_local_store_with_catalog_text(tmp_path):
    needs_beam()
    folder = make_folder(tmp_path, 40)
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("filename,title\np000.png,red leather bag\np004.png,blue canvas shoe\n")
    options = {"meta": catalog, "text_columns": ["title"]}
    report = beam_embed(folder, tmp_path / "B", shards=3, **options)
    local = local_embed(folder, tmp_path / "L", **options)

    assert (report.count, report.added) == (local.count, local.added) == (40, 40)
    assert sorted(report.skipped) == sorted(local.skipped)
    assert {Path(p).name for p, _ in report.skipped} == {"broken.jpg", "pipe.jpg"}
    assert_same(snapshot(tmp_path / "B"), snapshot(tmp_path / "L"))
    gen = Store(tmp_path / "B").require()
    assert [i.path for i in gen.items] == sorted(i.path for i in gen.items)
    assert next(i for i in gen.items if i.path.endswith("p000.png")).text == "red leather bag"
    assert gen.manifest["text_source"] == Store(tmp_path / "L").require().manifest["text_source"]

    # each shard is a store of its own; together they hold every item once
    shards = [store.shard_dir(tmp_path / "B", n, 3) for n in range(3)]
    held = [i.path for s in shards for i in Store(s).require().items]
    assert sorted(held) == [i.path for i in gen.items] and all(len(Store(s).require().items) for s in shards)

    # `imgsearch index E` indexes the merged store as it would a local one, with the same answers
    for out in ("B", "L"):
        assert set(index_folder(tmp_path / out, EmbedOptions()).indexes) >= {"image", "text"}
    b, lo = Store(tmp_path / "B").require(), Store(tmp_path / "L").require()
    for row in (0, 7, 21):
        q = np.asarray(b.vectors["image"][row])
        assert np.array_equal(
            np.argsort(-(b.vectors["image"] @ q))[:10], np.argsort(-(lo.vectors["image"] @ q))[:10]
        )


def test_worker_processes_by_default_and_a_quiet_terminal(tmp_path, monkeypatch, capfd):
    """The local default: Beam's worker processes (not threads, never the Prism runner)."""
    needs_beam()
    folder = make_folder(tmp_path, 12)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    )
    capfd.readouterr()
    report = beam_embed(folder, tmp_path / "B", shards=2, args=["--direct_num_workers=2"])
    err = capfd.readouterr().err
    assert report.count == 12
    assert err == ""  # Beam's INFO logs and import warnings stay off the terminal, workers' too
    local_embed(folder, tmp_path / "L")
    assert_same(snapshot(tmp_path / "B"), snapshot(tmp_path / "L"))


def test_rerun_skips_complete_shards_and_redoes_changed_or_missing_ones(tmp_path):
    needs_beam()
    folder = make_folder(tmp_path, 30)
    out = tmp_path / "B"
    first = beam_embed(folder, out, shards=4)
    assert (first.count, first.resumed) == (30, 0)
    shards = [store.shard_dir(out, n, 4) for n in range(4)]
    sizes = [Store(s).require().count for s in shards]

    again = beam_embed(folder, out, shards=4)  # nothing changed: every shard is kept
    assert (again.resumed, again.unchanged, again.added) == (30, 30, 0)

    # a changed file redoes its shard only; a shard lost to a kill (its temp dir left) is redone
    changed = Store(shards[1]).require().items[0].path
    os.utime(changed, (1, 1))
    lost = shards[2]
    os.rename(lost, lost.parent / f".{lost.name}.killed")
    third = beam_embed(folder, out, shards=4)
    assert third.resumed == sizes[0] + sizes[3]
    assert (third.updated, third.count) == (1, 30)
    local_embed(folder, tmp_path / "L")
    assert_same(snapshot(out), snapshot(tmp_path / "L"))

    # another shard count or --rebuild embeds everything again, and leaves only its own shards
    fourth = beam_embed(folder, out, shards=2)
    assert fourth.resumed == 0
    assert sorted(p.name for p in (out / "shards").glob("shard-*")) == [
        "shard-00000-of-00002",
        "shard-00001-of-00002",
    ]
    assert beam_embed(folder, out, shards=2, rebuild=True).resumed == 0


def test_shard_of_other_encoders_or_inputs_is_not_complete(tmp_path):
    target = store.shard_dir(tmp_path, 0, 1)
    vectors = {s: np.zeros((0, d), np.float32) for s, d in (("image", 48), ("text", 16), ("colour", 12))}
    encoders = {"image": {"id": "a"}, "text": {"id": "b"}}
    store.write_shard(target, {"image": "a"}, "digest", encoders, {}, [], vectors, [("x.jpg", "broken")])
    assert store.complete_shard(target, {"image": "a"}, "digest") == 0
    assert store.complete_shard(target, {"image": "other"}, "digest") is None
    assert store.complete_shard(target, {"image": "a"}, "other inputs") is None
    assert Store(target).require().skipped() == [("x.jpg", "broken")]


def test_cli_passes_options_after_double_dash_to_beam(tmp_path, capsys, monkeypatch):
    seen = {}

    def fake_embed(inputs, target, options, engine, progress=None):
        seen.update(inputs=inputs, engine=engine)
        return EmbedReport(target.root, count=1)

    monkeypatch.setattr("imgsearch.indexing.build.embed_folder_beam", fake_embed)
    args = ["embed", "a", "b", "--out", tmp_path / "E", "--engine", "beam", "--shards", "8", "-q"]
    beam_args = ["--runner=FlinkRunner", "--flink_master=localhost:8081"]
    code, _, err = run_cli([*args, "--", *beam_args], capsys, monkeypatch)
    assert code == 0, err
    assert seen["inputs"] == ["a", "b"]
    assert (seen["engine"].shards, seen["engine"].args) == (8, beam_args)

    code, _, err = run_cli(["embed", "a", "--out", tmp_path / "E", "--shards", "2"], capsys, monkeypatch)
    assert code == 2 and "--engine beam" in err
    code, _, err = run_cli(["embed", "a", "--out", tmp_path / "E", "--engine", "spark"], capsys, monkeypatch)
    assert code == 2 and "local or beam" in err


def _structured_images(folder: Path, n: int) -> None:
    """n distinct 64-px PNGs: coloured shapes on plain or noisy backgrounds."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        background = tuple(int(c) for c in rng.integers(0, 256, 3))
        img = Image.new("RGB", (64, 64), background)
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            x, y = (int(v) for v in rng.integers(0, 48, 2))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if i % 2 else draw.rectangle)((x, y, x + 16, y + 16), fill=colour)
        img.save(folder / f"img{i:04d}.png")


@pytest.mark.slow
def test_beam_equals_local_with_the_real_encoders(tmp_path):
    """300 images through the default LiteRT encoders in 2 worker processes: the same vectors as the
    local engine (cosine ≥ 0.9999 by path) and the same answers to text and image queries."""
    needs_beam()
    from imgsearch.search.query import build_query
    from imgsearch.search.searcher import Searcher

    folder = tmp_path / "photos"
    _structured_images(folder, 300)
    beam_report = embed_folder_beam(
        [str(folder)], Store(tmp_path / "B"), EmbedOptions(), BeamOptions(4, args=["--direct_num_workers=2"])
    )
    embed_folder([str(folder)], Store(tmp_path / "L"), EmbedOptions())
    assert beam_report.count == 300
    assert_same(snapshot(tmp_path / "B"), snapshot(tmp_path / "L"))
    for out in ("B", "L"):
        index_folder(tmp_path / out, EmbedOptions())
    answers = []
    for out in ("B", "L"):
        searcher = Searcher(Store(tmp_path / out).require(), check_files=False)
        queries = [
            build_query(texts=["red circle"], k=10),
            build_query(images=[str(folder / "img0007.png")], k=10),
        ]
        answers.append([[hit.item.path for hit in searcher.search(q)] for q in queries])
    assert answers[0] == answers[1]


def test_local_runner_defaults_and_cluster_runner_names():
    needs_beam()
    from imgsearch.embed.beam.run import _runner_name, pipeline_options

    local = pipeline_options(BeamOptions()).get_all_options()
    assert (local["direct_running_mode"], local["direct_num_workers"]) == ("multi_processing", os.cpu_count())
    assert (
        pipeline_options(BeamOptions(args=["--direct_num_workers=1"])).get_all_options()["direct_num_workers"]
        == 1
    )
    flink = BeamOptions(args=["--runner", "FlinkRunner", "--flink_master=host:8081"])
    assert _runner_name(flink) == "FlinkRunner"
    assert pipeline_options(flink).get_all_options()["direct_running_mode"] != "multi_processing"
    assert _runner_name(BeamOptions(runner="DataflowRunner", args=["--runner=FlinkRunner"])) == "FlinkRunner"
