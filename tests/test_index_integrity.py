"""Annoy files are checked against what was recorded when they were built (issue 23, item 5).

The class of bug: Annoy memory-maps its file and trusts it, so a truncated ``.ann`` made
``query`` read past the end of the mapping (a segfault: no message, and ``serve`` died with it),
and a plain ``index`` called the store up to date. Each Annoy file's size and sha256 now go into
the manifest: the size is checked whenever an index is opened, the checksum by ``index``, which
rebuilds what does not match. The tests damage real index files (cut short at several sizes, a
byte changed in place, a file missing, an index from before checksums) and run ``query`` in a
subprocess, so a crash would show as one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from fakes import use_tiny_models, write_image

from imgsearch.indexing import ann as ann
from imgsearch.store import Store

TESTS = Path(__file__).resolve().parent

# `imgsearch query` in a fresh interpreter, with the small encoders (a segfault is a return code)
QUERY = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import fakes
from imgsearch import encoders
encoders.open_for_index = lambda role, spec, allowed: (
    fakes.TinyImageEncoder() if role == "image" else fakes.TinyTextEncoder()
)
from imgsearch.cli.app import main
sys.argv = ["imgsearch", "query", *sys.argv[1:]]
main()
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    use_tiny_models(monkeypatch)
    monkeypatch.setattr(ann, "EXACT_BELOW", 10)  # Annoy from 10 items
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(40):
        write_image(photos / f"p{seed:03d}.png", seed)
    return photos


def index(folder: Path, capsys, monkeypatch, *args: str) -> tuple[int, str]:
    code, _, err = run_cli(["index", folder, "-q", *args], capsys, monkeypatch)
    return code, err


def query(folder: Path) -> subprocess.CompletedProcess:
    args = [str(folder / "p007.png"), "--index", str(folder), "-k", "3"]
    return subprocess.run(
        [sys.executable, "-c", QUERY, *args], capture_output=True, text=True, timeout=300, check=False
    )


def image_parts(folder: Path) -> list[dict]:
    return Store(folder / ".imgsearch").require().manifest["spaces"]["image"]["index"]["parts"]


def ann_file(folder: Path, part: dict) -> Path:
    return Store(folder / ".imgsearch").require().dir / part["file"]


def test_sizes_and_checksums_are_recorded_for_every_part(folder, capsys, monkeypatch):
    assert index(folder, capsys, monkeypatch, "--shards", "2")[0] == 0
    parts = image_parts(folder)
    assert len(parts) == 2
    for part in parts:
        data = ann_file(folder, part).read_bytes()
        assert part["size"] == len(data) and len(part["sha256"]) == 64


@pytest.mark.parametrize("keep", [0, 0.5, 0.99])
def test_a_truncated_annoy_file_is_one_line_then_repaired_by_index(folder, capsys, monkeypatch, keep):
    assert index(folder, capsys, monkeypatch)[0] == 0
    healthy = query(folder)
    assert healthy.returncode == 0 and "p007.png" in healthy.stdout.splitlines()[0], healthy.stderr
    path = ann_file(folder, image_parts(folder)[0])
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])

    damaged = query(folder)
    assert damaged.returncode == 2, (damaged.returncode, damaged.stderr)  # not -11 (SIGSEGV)
    assert len(damaged.stderr.strip().splitlines()) == 1, damaged.stderr
    assert "image.ann" in damaged.stderr and "run `imgsearch index`" in damaged.stderr

    code, err = index(folder, capsys, monkeypatch)
    assert code == 0 and "rebuilding the image index: image.ann is" in err, err
    assert query(folder).stdout == healthy.stdout
    assert index(folder, capsys, monkeypatch) == (0, "")  # repaired: up to date, nothing said


def test_a_changed_byte_or_a_missing_file_is_found_by_index(folder, capsys, monkeypatch):
    assert index(folder, capsys, monkeypatch)[0] == 0
    path = ann_file(folder, image_parts(folder)[0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum tells
    path.write_bytes(bytes(data))
    code, err = index(folder, capsys, monkeypatch)
    assert code == 0 and "image.ann does not match its checksum" in err, err
    assert index(folder, capsys, monkeypatch) == (0, "")

    ann_file(folder, image_parts(folder)[0]).unlink()
    assert query(folder).returncode == 2
    code, err = index(folder, capsys, monkeypatch)
    assert code == 0 and "image.ann is missing" in err, err
    assert query(folder).returncode == 0


def test_an_index_from_before_checksums_is_rebuilt_once(folder, capsys, monkeypatch):
    assert index(folder, capsys, monkeypatch)[0] == 0
    gen_dir = Store(folder / ".imgsearch").require().dir
    manifest = json.loads((gen_dir / "manifest.json").read_text())
    for space in manifest["spaces"].values():
        for part in (space.get("index") or {}).get("parts") or []:
            del part["size"], part["sha256"]
    (gen_dir / "manifest.json").write_text(json.dumps(manifest))
    assert query(folder).returncode == 0  # nothing recorded, nothing to check: it still answers
    code, err = index(folder, capsys, monkeypatch)
    assert code == 0 and "image.ann has no checksum" in err, err
    assert "sha256" in image_parts(folder)[0]
    assert index(folder, capsys, monkeypatch) == (0, "")
