"""Results as pictures: contact sheet of hits, terminal protocol detection, inline escapes."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakes import write_image
from PIL import Image

from imgsearch.cli import preview
from imgsearch.files.roots import Roots


def hits(folder: Path, n: int) -> list:
    out = []
    for i in range(n):
        write_image(folder / f"p{i}.png", i)
        out.append(
            SimpleNamespace(
                rank=i + 1, score=3.0 - i / 10, item=SimpleNamespace(path=str(folder / f"p{i}.png"))
            )
        )
    return out


def test_sheet_has_one_cell_per_hit_in_rows_of_five(tmp_path):
    found = hits(tmp_path, 7)
    rows = preview.hit_cells(found)
    assert [len(r) for r in rows] == [5, 2] and rows[0][0].caption.startswith("#1 3.00 p0.png")
    out = preview.write_sheet(found, tmp_path / "sheet.png", Roots([str(tmp_path)]))
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > img.height > 0


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({"TERM": "xterm-kitty"}, "kitty"),
        ({"KITTY_WINDOW_ID": "1", "TERM": "xterm-256color"}, "kitty"),
        ({"TERM_PROGRAM": "iTerm.app"}, "iterm"),
        ({"TERM_PROGRAM": "WezTerm"}, "iterm"),
        ({"TERM": "xterm-256color"}, None),
        ({}, None),
    ],
)
def test_terminal_protocol(env, want):
    assert preview.terminal_protocol(env) == want


def test_kitty_escapes_are_chunked_and_carry_the_png(tmp_path):
    png = tmp_path / "x.png"
    Image.new("RGB", (200, 200), "red").save(png)  # large enough for several chunks
    data = png.read_bytes() * 8
    out = preview.inline_image(data, "kitty")
    chunks = out.split("\x1b\\")[:-1]
    assert chunks[0].startswith("\x1b_Ga=T,f=100,m=") and chunks[-1].startswith("\x1b_Gm=0;")
    payload = "".join(c.split(";", 1)[1] for c in chunks)
    assert base64.b64decode(payload) == data and all(len(c.split(";", 1)[1]) <= 4096 for c in chunks)


def test_iterm_escape(tmp_path):
    out = preview.inline_image(b"PNGDATA", "iterm")
    assert out.startswith("\x1b]1337;File=inline=1;size=7;") and out.endswith("\x07")
    assert base64.b64decode(out.split(":", 1)[1][:-1]) == b"PNGDATA"


def test_preview_draws_each_hit_then_its_line(tmp_path):
    found = hits(tmp_path, 2)
    (tmp_path / "p1.png").unlink()  # a file gone since the index: a placeholder line, no error
    out = preview.preview(found, "kitty", Roots([str(tmp_path)]))
    assert out.count("\x1b_Ga=T") == 1 and "[image unavailable]" in out and "#2  2.90" in out
