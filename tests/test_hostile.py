"""Hostile input through the command line: every failure is one stderr line, the right exit code,
no traceback, and the previous index still answers. Files are made here at test time.

Uses the real default encoders (LiteRT) on a few small generated images.
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from imgsearch.embed.job import EmbedOptions
from imgsearch.indexing.build import index_folder
from imgsearch.store import Store

pytestmark = pytest.mark.slow

CASES_RUN: list[str] = []  # the README's reliability figures count these


run = run_cli


def one_line_error(code, out, err, want_code=2, contains=""):
    assert code == want_code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert contains in err, err


def product(path: Path, rgb, mode="RGB", fmt=None) -> None:
    arr = np.full((64, 64, 3), 255, np.uint8)
    arr[12:52, 10:54] = rgb
    Image.fromarray(arr).convert(mode).save(path, format=fmt)


@pytest.fixture()
def folder(tmp_path):
    """A small indexed folder: three product shots."""
    d = tmp_path / "shop"
    d.mkdir()
    for name, rgb in (("red.png", (200, 20, 20)), ("blue.png", (20, 30, 200)), ("green.png", (20, 160, 40))):
        product(d / name, rgb)
    index_folder(d, EmbedOptions())
    return d


def still_answers(folder, capsys, monkeypatch) -> None:
    code, out, err = run(["query", "--text", "red", "--index", folder, "-k", "2"], capsys, monkeypatch)
    assert code == 0 and len(out.splitlines()) == 2, err


def test_special_files_are_skipped_and_listed(folder, capsys, monkeypatch):
    os.mkfifo(folder / "pipe.jpg")  # reading it would block forever
    (folder / "broken.jpg").symlink_to(folder / "nowhere.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    (folder / "link.png").symlink_to(folder / "red.png")
    code, _, err = run(["index", folder], capsys, monkeypatch)
    assert code == 0, err
    skipped = (Store(folder / ".imgsearch").current_dir() / "skipped.tsv").read_text()
    assert "pipe.jpg\tnot a regular file (fifo)" in skipped
    assert "broken.jpg\tbroken symbolic link" in skipped
    assert "loop.jpg\tsymbolic link loop" in skipped
    assert Store(folder / ".imgsearch").require().count == 4  # the link to a real image counts
    CASES_RUN.extend(["fifo", "broken link", "link loop", "link to file"])


def test_odd_file_names_round_trip_and_pipe_exactly(folder, capsysbinary, monkeypatch):
    capsys = capsysbinary
    bad = os.fsdecode(b"bad\xff.png")
    product(folder / bad, (200, 20, 20), fmt="PNG")
    product(folder / "a\nb.png", (210, 30, 30), fmt="PNG")
    code, _, err = run(["index", folder, "-q"], capsys, monkeypatch)
    assert code == 0, err
    paths = {i.path for i in Store(folder / ".imgsearch").require().items}
    assert str(folder / bad) in paths and str(folder / "a\nb.png") in paths
    code, out, err = run(["query", "--text", "red", "--index", folder, "-0", "-k", "5"], capsys, monkeypatch)
    assert code == 0, err
    got = set(out.encode("utf-8", "surrogateescape").split(b"\0")) - {b""}
    assert os.fsencode(folder / bad) in got and os.fsencode(folder / "a\nb.png") in got
    code, out, err = run(
        ["query", "--text", "red", "--index", folder, "-f", "paths", "-k", "5"], capsys, monkeypatch
    )
    assert len(out.splitlines()) == 5 and '"' + str(folder / "a\\nb.png") + '"' in out  # one line each
    assert "use -0" in err
    code, out, _ = run(
        ["query", "--text", "red", "--index", folder, "-f", "json", "-k", "5"], capsys, monkeypatch
    )
    assert {json.loads(line)["path"] for line in out.splitlines()} >= {str(folder / bad)}
    CASES_RUN.extend(["non-UTF-8 name", "newline in name"])


def test_broken_image_files_are_skipped_good_odd_ones_indexed(folder, capsys, monkeypatch):
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    good = io.BytesIO()
    product(good, (9, 9, 9), fmt="JPEG")
    (folder / "cut.jpg").write_bytes(good.getvalue()[:200])
    Image.new("L", (30000, 30000)).save(folder / "bomb.png", optimize=False)  # 900 MP > Pillow's limit
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(folder / "deep.png")
    product(folder / "cmyk.jpg", (200, 20, 20), mode="CMYK", fmt="JPEG")
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    code, _, err = run(["index", folder], capsys, monkeypatch)
    assert code == 0 and "Traceback" not in err, err
    gen = Store(folder / ".imgsearch").require()
    names = {Path(i.path).name for i in gen.items}
    assert {"deep.png", "cmyk.jpg", "anim.gif"} <= names
    assert not {"empty.jpg", "text.png", "cut.jpg", "bomb.png"} & names
    still_answers(folder, capsys, monkeypatch)
    CASES_RUN.extend(
        ["zero-byte", "non-image", "truncated", "decompression bomb", "16-bit", "CMYK", "animated"]
    )


def test_bad_catalog_and_unwritable_places_are_one_line(folder, tmp_path, capsys, monkeypatch):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("filename,title\nred.png,Caf\xe9 cr\xe8me\n".encode("latin-1"))
    one_line_error(
        *run(["index", folder, "--meta", latin, "--text-columns", "title"], capsys, monkeypatch),
        contains="not UTF-8",
    )
    missing_col = tmp_path / "cols.csv"
    missing_col.write_text("filename,title\nred.png,x\n")
    one_line_error(
        *run(["index", folder, "--meta", missing_col, "--text-columns", "nope"], capsys, monkeypatch),
        contains="no column nope",
    )

    real_mkdir = Path.mkdir

    def refuse(self, *a, **kw):
        if "readonly" in str(self):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *a, **kw)

    ro = tmp_path / "readonly"
    ro.mkdir()
    product(ro / "x.png", (1, 2, 3))
    monkeypatch.setattr(Path, "mkdir", refuse)
    one_line_error(*run(["index", ro], capsys, monkeypatch), contains="--out")
    monkeypatch.setattr(Path, "mkdir", real_mkdir)

    product(folder / "new.png", (5, 200, 5))
    live = Store(folder / ".imgsearch").current_dir()

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    one_line_error(*run(["index", folder], capsys, monkeypatch), contains="no space left")
    monkeypatch.undo()
    assert Store(folder / ".imgsearch").current_dir() == live  # nothing half-published
    still_answers(folder, capsys, monkeypatch)
    CASES_RUN.extend(["non-UTF-8 catalog", "unknown column", "read-only folder", "full disk"])


@pytest.mark.parametrize(
    "damage",
    [
        "zero-byte image.npy",
        "truncated items.jsonl",
        "manifest missing keys",
        "corrupt head",
        "CURRENT leaves the store",
        "file outside the store",
        "NaN vectors",
        "wrong dtype",
        "corrupt lexical index",
        "corrupt class file",
    ],
)
def test_damaged_index_is_refused_then_repaired(folder, capsys, monkeypatch, damage):
    gen_dir = Store(folder / ".imgsearch").current_dir()
    manifest = json.loads((gen_dir / "manifest.json").read_text())
    if damage == "zero-byte image.npy":
        (gen_dir / "image.npy").write_bytes(b"")
    elif damage == "truncated items.jsonl":
        data = (gen_dir / "items.jsonl").read_bytes()
        (gen_dir / "items.jsonl").write_bytes(data[: len(data) // 2])
    elif damage == "manifest missing keys":
        del manifest["encoders"]
        (gen_dir / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "corrupt head":
        (gen_dir / "photo.npz").write_bytes(b"PK\x03\x04 garbage")
    elif damage == "CURRENT leaves the store":
        (folder / ".imgsearch" / "CURRENT").write_text("../../etc\n")
    elif damage == "file outside the store":
        manifest["spaces"]["image"]["file"] = "../../../etc/passwd"
        (gen_dir / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "NaN vectors":
        arr = np.load(gen_dir / "text.npy")
        arr[:] = np.nan
        np.save(gen_dir / "text.npy", arr)
    elif damage == "corrupt class file":
        (gen_dir / "classes.ids.npy").write_bytes(b"\x93NUMPY not an array")
    elif damage == "corrupt lexical index":
        (gen_dir / "lexical.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    else:
        np.save(gen_dir / "colour.npy", np.load(gen_dir / "colour.npy").astype(np.float64))
    query = ["query", "--text", "red", "--index", folder]
    if damage == "corrupt class file":  # only a query with an image uses the class space
        query[1:1] = [folder / "blue.png"]
    if damage == "NaN vectors":  # on product shots a text query reads the text space only if weighted
        query += ["--weight", "text=1"]
    code, out, err = run(query, capsys, monkeypatch)
    one_line_error(code, out, err, contains="imgsearch index")
    assert out == ""
    code, _, err = run(["index", folder], capsys, monkeypatch)  # a plain index repairs it
    assert code == 0 and "Traceback" not in err, err
    still_answers(folder, capsys, monkeypatch)
    CASES_RUN.append(damage)


def test_crafted_manifest_cannot_make_a_query_load_a_model(folder, capsys, monkeypatch):
    gen_dir = Store(folder / ".imgsearch").current_dir()
    manifest = json.loads((gen_dir / "manifest.json").read_text())
    manifest["encoders"]["text"]["name"] = "hf://attacker/evil-model"
    manifest["encoders"]["text"]["id"] = "hf://attacker/evil-model@1"
    (gen_dir / "manifest.json").write_text(json.dumps(manifest))
    loaded = []
    monkeypatch.setattr("imgsearch.encoders.load_keras", lambda *a, **k: loaded.append(a))
    code, out, err = run(["query", "--text", "red", "--index", folder], capsys, monkeypatch)
    one_line_error(code, out, err, contains="never loads a model because an index names it")
    assert loaded == []
    CASES_RUN.append("crafted encoder name")


def test_bad_batch_lines_get_their_own_errors(folder, capsys, monkeypatch):
    lines = [
        b'{"text": "red", "k": 2}',
        b'{"text": "red", "k": 1e999}',
        b'{"text": "red", "weight": [1]}',
        b'{"text": "red", "weight": {"bogus": 1}}',
        b'{"text": "red", "weight": {"text": NaN}}',
        b'{"text": "caf\xe9"}',
        b'{"text": ""}',
        b"[1, 2]",
        b"{not json",
        b'{"text": "blue", "k": 1}',
    ]
    batch = folder.parent / "q.jsonl"
    batch.write_bytes(b"\n".join(lines) + b"\n")
    code, out, err = run(["query", "--batch", batch, "--index", folder], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err
    answers = [json.loads(line) for line in out.splitlines()]
    assert [a["query"] for a in answers] == list(range(1, 11))
    assert [("results" in a) for a in answers] == [True] + [False] * 8 + [True]
    assert "unknown space 'bogus'" in answers[3]["error"] and "UTF-8" in answers[5]["error"]
    assert "NaN" not in out
    CASES_RUN.extend([f"batch line {n}" for n in range(2, 10)])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text", ""], "empty text"),
        (["--text", "red", "--weight", "text=nan"], "finite"),
        (["--text", "red", "--weight", "text=inf"], "finite"),
        (["--text", "red", "-k", "0"], "from 1 to"),
        (["--text", "red", "--weight", "bogus=1"], "unknown space"),
    ],
)
def test_bad_query_input_is_refused(folder, capsys, monkeypatch, args, message):
    one_line_error(*run(["query", *args, "--index", folder], capsys, monkeypatch), contains=message)
    CASES_RUN.append(f"query {' '.join(args)}")


def test_deleted_files_are_left_out_with_a_note(folder, capsys, monkeypatch):
    (folder / "red.png").unlink()
    code, out, err = run(["query", "--text", "red", "--index", folder, "-k", "3"], capsys, monkeypatch)
    assert code == 0 and "red.png" not in out and len(out.splitlines()) == 2
    assert "left out 1 result" in err
    CASES_RUN.append("deleted since index")


def test_a_reader_that_stops_early_is_not_an_error(folder):
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgsearch", "query", "--text", "red", "--index", str(folder), "-k", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # like `| head -0`: the reader is gone before the first write
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in err, err
    CASES_RUN.append("closed pipe")
