"""The ocr space (`index --ocr`): words rendered into a photo are read with the real engine and found
by `--text`; an unchanged file is not read again; queries and help never load the engine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import help_in_fresh_process, run_cli
from fakes import TinyImageEncoder, TinyTextEncoder, write_image
from PIL import Image, ImageDraw, ImageFont

from imgsearch.embed import ocr
from imgsearch.store import Store

pytest.importorskip("rapidocr_onnxruntime", reason="the ocr extra (rapidocr-onnxruntime) is not installed")


def sign(path: Path, words: str) -> None:
    """Dark print on a light card, as on packaging or a shop sign."""
    img = Image.new("RGB", (420, 160), (245, 240, 225))
    ImageDraw.Draw(img).text((24, 40), words, fill=(20, 20, 30), font=ImageFont.load_default(size=64))
    img.save(path)


def _tiny_encoder(role, spec, allowed=frozenset()):
    return TinyImageEncoder() if role == "image" else TinyTextEncoder()


@pytest.fixture
def folder(tmp_path, tiny, monkeypatch) -> Path:
    monkeypatch.setattr("imgsearch.encoders.open_for_index", _tiny_encoder)
    folder = tmp_path / "photos"
    folder.mkdir()
    sign(folder / "carton.png", "OATLY")
    # other print, so that the word is rare among the texts read: BM25 gives a word found in half
    # of them no weight
    sign(folder / "juice.png", "TROPICANA")
    sign(folder / "milk.png", "GARANT")
    write_image(folder / "plain.png", 1, (160, 120))
    write_image(folder / "other.png", 2, (160, 120))
    return folder


ALL = ["carton.png", "juice.png", "milk.png", "other.png", "plain.png"]


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The paths OCR'd from here on (the real engine still reads them)."""
    seen: list[str] = []
    real = ocr.read_text

    def counted(path: str) -> str:
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(ocr, "read_text", counted)
    return seen


def test_text_query_finds_the_printed_word_through_the_ocr_space(folder, reads, capsys, monkeypatch):
    assert run_cli(["index", folder, "--ocr", "--quiet"], capsys, monkeypatch)[0] == 0
    assert sorted(reads) == ALL
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # a query must not need the engine
    code, out, err = run_cli(
        ["query", "--text", "oatly", "--index", folder, "-f", "json", "-k", "5"], capsys, monkeypatch
    )
    assert code == 0, err
    hits = [json.loads(line) for line in out.splitlines()]
    assert Path(hits[0]["path"]).name == "carton.png"
    assert "oatly" in hits[0]["ocr"].lower()  # -f json shows the words read
    assert hits[0]["z"]["ocr"] > 0 and hits[0]["weights"]["ocr"] == 1.0
    assert all(h["scores"]["ocr"] == 0 for h in hits[1:])


def test_reindexing_reads_only_new_or_changed_files(folder, reads, capsys, monkeypatch):
    run_cli(["index", folder, "--ocr", "--quiet"], capsys, monkeypatch)
    reads.clear()
    assert run_cli(["index", folder, "--quiet"], capsys, monkeypatch)[0] == 0  # --ocr is kept
    assert reads == []
    sign(folder / "new.png", "TROPICANA")
    run_cli(["index", folder, "--quiet"], capsys, monkeypatch)
    assert reads == ["new.png"]
    gen = Store(folder / ".imgsearch").require()
    assert gen.manifest["text_source"]["ocr"] == ocr.ENGINE and gen.manifest["ocr"]["file"] == "ocr.sqlite"
    run_cli(["index", folder, "--no-ocr", "--quiet"], capsys, monkeypatch)
    assert "ocr" not in Store(folder / ".imgsearch").require().manifest


def test_an_index_read_before_ocr_is_read_once_it_is_asked_for(folder, reads, capsys, monkeypatch):
    run_cli(["index", folder, "--quiet"], capsys, monkeypatch)
    assert reads == []
    run_cli(["index", folder, "--ocr", "--quiet"], capsys, monkeypatch)
    assert sorted(reads) == ALL


def test_without_the_engine_ocr_is_one_line(folder, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    monkeypatch.setattr(ocr, "_engine", None)
    code, _, err = run_cli(["index", folder, "--ocr", "--quiet"], capsys, monkeypatch)
    assert code != 0 and len(err.splitlines()) == 1
    assert err.startswith("imgsearch: --ocr needs rapidocr-onnxruntime")


def test_help_does_not_load_the_engine():
    out, modules = help_in_fresh_process(["index"])
    assert "--ocr" in out
    assert not {"rapidocr_onnxruntime", "onnxruntime"} & modules


def test_batch_lines_weigh_the_ocr_space(folder, capsys, monkeypatch):
    run_cli(["index", folder, "--ocr", "--quiet"], capsys, monkeypatch)
    lines = [{"text": ["oatly"], "k": 5, "weight": {"ocr": w}} for w in (3, 0)]
    stdin = "".join(json.dumps(line) + "\n" for line in lines).encode()
    code, out, err = run_cli(["query", "--batch", "-", "--index", folder], capsys, monkeypatch, stdin=stdin)
    assert code == 0, err
    weighed, without = (json.loads(line)["results"] for line in out.splitlines())
    assert Path(weighed[0]["path"]).name == "carton.png" and weighed[0]["weights"]["ocr"] == 3
    assert "ocr" not in without[0]["weights"]  # weight 0: the space takes no part


def test_an_interrupted_run_keeps_the_words_it_had_read(folder, reads, monkeypatch):
    from imgsearch.embed.job import EmbedOptions
    from imgsearch.indexing.build import index_folder

    real, chunks = ocr.read_all, []

    def stop_at_the_second_chunk(paths):
        chunks.append(paths)
        if len(chunks) == 2:
            raise KeyboardInterrupt
        return real(paths)

    monkeypatch.setattr(ocr, "read_all", stop_at_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        index_folder(folder, EmbedOptions(ocr=True, chunk=2))
    monkeypatch.setattr(ocr, "read_all", real)
    reads.clear()
    index_folder(folder, EmbedOptions(ocr=True, chunk=2))
    assert len(reads) == 3  # five photos: the first chunk's two were read and saved before the stop
    gen = Store(folder / ".imgsearch").require()
    assert "oatly" in {Path(i.path).name: i.tags["ocr"] for i in gen.items}["carton.png"].lower()


IN_PROCESS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def test_beam_reads_the_words_as_the_local_engine_does(folder, tmp_path, reads, capsys, monkeypatch):
    pytest.importorskip("apache_beam", reason="the beam extra: pip install 'imgsearch[beam]'")
    # Beam's workers load the encoders the plan names: the small ones here too
    monkeypatch.setattr(
        "imgsearch.embed.beam.pipeline.open_encoder", lambda role, *a: _tiny_encoder(role, None)
    )
    embed = ["embed", folder, "--engine", "beam", "--shards", "2", "--quiet"]
    local = ["embed", folder, "--out", tmp_path / "L", "--ocr", "--quiet"]
    assert run_cli(local, capsys, monkeypatch)[0] == 0
    assert run_cli([*embed, "--out", tmp_path / "B", "--ocr", "--", *IN_PROCESS], capsys, monkeypatch)[0] == 0
    assert sorted(reads) == sorted(ALL * 2)

    def words(out: str) -> dict[str, str]:
        gen = Store(tmp_path / out).require()
        assert gen.manifest["text_source"]["ocr"] == ocr.ENGINE
        return {Path(i.path).name: i.tags["ocr"] for i in gen.items}

    assert words("B") == words("L") and "oatly" in words("B")["carton.png"].lower()
    assert run_cli(["index", tmp_path / "B", "--quiet"], capsys, monkeypatch)[0] == 0
    code, out, err = run_cli(
        ["query", "--text", "oatly", "--index", tmp_path / "B", "-f", "json"], capsys, monkeypatch
    )
    assert code == 0, err
    assert Path(json.loads(out.splitlines()[0])["path"]).name == "carton.png"

    # a plain re-run keeps --ocr and reads nothing again; shards embedded without OCR are not
    # complete for a run with it
    reads.clear()
    assert run_cli([*embed, "--out", tmp_path / "B", "--", *IN_PROCESS], capsys, monkeypatch)[0] == 0
    assert reads == [] and words("B")["carton.png"]
    assert run_cli([*embed, "--out", tmp_path / "N", "--", *IN_PROCESS], capsys, monkeypatch)[0] == 0
    assert reads == []
    assert run_cli([*embed, "--out", tmp_path / "N", "--ocr", "--", *IN_PROCESS], capsys, monkeypatch)[0] == 0
    assert sorted(reads) == ALL and words("N") == words("L")


def test_beam_without_the_engine_is_one_line_before_any_worker(folder, tmp_path, capsys, monkeypatch):
    pytest.importorskip("apache_beam", reason="the beam extra: pip install 'imgsearch[beam]'")
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    monkeypatch.setattr(ocr, "_engine", None)
    args = ["embed", folder, "--out", tmp_path / "B", "--engine", "beam", "--ocr", "--", *IN_PROCESS]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code != 0 and len(err.splitlines()) == 1
    assert err.startswith("imgsearch: --ocr needs rapidocr-onnxruntime")
    assert not (tmp_path / "B" / "shards").exists()


def test_photos_whose_print_matches_every_longer_word_become_implicit_likes(folder, capsys, monkeypatch):
    """A words-only query moves towards the photos that read all its longer words (so the same
    packages without legible print come up beside them), unless the ocr space is weighed 0."""
    from imgsearch.api import Index
    from imgsearch.search.query import build_query

    assert run_cli(["index", folder, "--ocr", "--quiet"], capsys, monkeypatch)[0] == 0
    searcher = Index.open(folder)._searcher
    carton = next(r for r, i in enumerate(searcher.gen.items) if i.path.endswith("carton.png"))
    plain = searcher.query_vectors(build_query(texts=["nothing printed"]))
    liked = searcher.query_vectors(build_query(texts=["oatly"]))
    assert "image" not in plain and "image" in liked  # the liked photo's image side joins the query
    image = searcher.gen.vectors["image"][carton]
    assert np.allclose(liked["image"], image / np.linalg.norm(image), atol=1e-5)
    assert "image" not in searcher.query_vectors(build_query(texts=["oatly"], weights={"ocr": 0}))


def test_a_printed_match_deleted_after_index_still_steers_but_is_never_shown(folder, capsys, monkeypatch):
    """The photo whose words matched is gone by the time of the query: its stored vectors still
    serve as the implicit like, and the answer leaves it out (as any file gone since `index`)."""
    assert run_cli(["index", folder, "--ocr", "--quiet"], capsys, monkeypatch)[0] == 0
    (folder / "carton.png").unlink()
    query = ["query", "--text", "oatly", "--index", folder, "-f", "json"]
    code, out, err = run_cli(query, capsys, monkeypatch)
    assert code == 0, err
    shown = [Path(json.loads(line)["path"]).name for line in out.splitlines()]
    assert "carton.png" not in shown and shown  # the others still answer
    assert "gone" in err or "left out" in err
