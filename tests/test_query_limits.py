"""Query input with no sane bound: image bytes on stdin, space weights. One line each, exit 2.

`query -` read stdin whole: `imgsearch query - < /dev/zero` ran the machine out of memory. It is
now read in bounded chunks and refused past the most bytes an image within Pillow's pixel limit
takes. `--weight text=1e40` overflowed the scores and the search blamed a healthy index ("run
`imgsearch index`"); weights are now checked for range with a line about the weight.
Small numpy encoders stand in for the models (``fakes.py``).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from fakes import TinyImageEncoder, TinyTextEncoder
from PIL import Image

from imgsearch.embed.job import EmbedOptions
from imgsearch.errors import UserError
from imgsearch.files import images
from imgsearch.indexing.build import index_folder
from imgsearch.search.query import MAX_WEIGHT, build_query, check_weights


def _tiny_encoder(role, spec, allowed=frozenset()):
    return TinyImageEncoder() if role == "image" else TinyTextEncoder()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch) -> Path:
    """Three small images indexed with the small encoders, which queries then load."""
    d = tmp_path / "pics"
    d.mkdir()
    for seed, title in enumerate(("red", "blue", "green")):
        blocks = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(blocks).resize((32, 32)).save(d / f"{title}.png")
    index_folder(d, EmbedOptions(), image=TinyImageEncoder(), text=TinyTextEncoder())
    monkeypatch.setattr("imgsearch.encoders.open_for_index", _tiny_encoder)
    return d


def one_line_error(code: int, err: str, contains: str) -> None:
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert contains in err, err


class Endless(io.RawIOBase):
    """/dev/zero that counts what was read from it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        buffer[:] = bytes(len(buffer))
        self.read_bytes += len(buffer)
        return len(buffer)


# --- image bytes on stdin ---------------------------------------------------------------------


def test_endless_stdin_is_refused_after_the_cap_in_one_line(folder, capsys, monkeypatch):
    endless = Endless()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(endless)))
    code, out, err = run_cli(["query", "-", "--index", folder], capsys, monkeypatch)
    one_line_error(code, err, "query image -: more than 256 MB")
    assert out == "" and endless.read_bytes <= images.MAX_STREAM_BYTES + 2**20


def test_an_image_on_stdin_is_still_read(folder, capsys, monkeypatch):
    data = (folder / "blue.png").read_bytes()
    code, out, err = run_cli(["query", "-", "--index", folder, "-k", "1"], capsys, monkeypatch, stdin=data)
    assert code == 0 and out.strip().endswith("blue.png"), err


def test_read_stream_stops_at_the_limit():
    assert images.read_stream(io.BytesIO(b"x" * 10), limit=10) == b"x" * 10
    endless = Endless()
    with pytest.raises(images.ImageError, match="more than"):
        images.read_stream(io.BufferedReader(endless), limit=3 * 2**20)
    assert endless.read_bytes <= 4 * 2**20 + io.DEFAULT_BUFFER_SIZE
    # the cap: an uncompressed 8-bit RGB image at the pixel limit `open_image` enforces
    assert Image.MAX_IMAGE_PIXELS * 3 < images.MAX_STREAM_BYTES == 256 * 2**20


# --- weights ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text", "red", "--weight", "text=1e40"], "--weight: text=1e+40 is out of range (-1000 to 1000)"),
        (["--text", "red", "--weight", "image=1,text=-1e300"], "--weight: text=-1e+300 is out of range"),
        (["--text", "10000:red"], "text weight 10000 is out of range (-1000 to 1000)"),
    ],
)
def test_a_huge_weight_is_blamed_not_the_index(folder, capsys, monkeypatch, args, message):
    code, _, err = run_cli(["query", *args, "--index", folder], capsys, monkeypatch)
    one_line_error(code, err, message)
    assert "imgsearch index" not in err


def test_weights_up_to_the_limit_still_answer(folder, capsys, monkeypatch):
    weight = f"text={MAX_WEIGHT},image=-{MAX_WEIGHT}"
    code, out, err = run_cli(
        ["query", "--text", f"{MAX_WEIGHT}:red", "--weight", weight, "--index", folder], capsys, monkeypatch
    )
    assert code == 0 and len(out.splitlines()) == 3, err


def test_a_batch_line_with_a_huge_weight_gets_its_own_error(folder, capsys, monkeypatch):
    lines = [{"text": ["red"], "weight": {"text": 1e40}}, {"text": ["red"], "k": 1}]
    stdin = "".join(json.dumps(line) + "\n" for line in lines).encode()
    code, out, _ = run_cli(["query", "--batch", "-", "--index", folder], capsys, monkeypatch, stdin=stdin)
    answers = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and "text=1e+40 is out of range" in answers[0]["error"]
    assert "imgsearch index" not in answers[0]["error"] and len(answers[1]["results"]) == 1


def test_check_weights_bounds():
    assert check_weights({"text": -MAX_WEIGHT, "image": 0.5}) == {"text": -1000.0, "image": 0.5}
    for bad in (1e40, MAX_WEIGHT * 1.001, float("inf")):
        with pytest.raises(UserError):
            check_weights({"text": bad})
    with pytest.raises(UserError, match="out of range"):
        build_query(texts=["1001:red"])
