"""What ``index`` reads from the user, through the command line (issue 23, item 2 and the probe):
the catalog (``--meta``) is strict and sticky, and the scan survives any folder or file.

Generated, not listed: random catalogs (ids and paths spelled every way, titles with quotes,
commas, line breaks and any Unicode) with one random fault or none. Either the index is built
and every image's text is what Python's csv module reads for its row, or the command exits 2
with one line naming the faulty line of the catalog and the previous index is byte-for-byte as
it was. Small numpy encoders stand in for the models (``fakes.py``): 25 catalogs on every
``make test``, 200 under ``HYPOTHESIS_PROFILE=ci``.

The scan: a folder deeper than Python's recursion limit, paths over the system's 4,096 bytes and
a 3 GB sparse ``huge.jpg`` are each indexed or listed in skipped.tsv with a reason, never an
"unexpected error", and a file too large to be an image is never read into memory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import tracemalloc
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_cli
from fakes import write_image
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgsearch.files.images import ImageError, read_file
from imgsearch.store import Store

for profile, examples in (("default", 25), ("ci", 200)):
    settings.register_profile(
        f"catalog-{profile}",
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
PROFILE = settings.get_profile(f"catalog-{os.environ.get('HYPOTHESIS_PROFILE', 'default')}")

IMAGES = [f"img{i}.png" for i in range(4)]


def cli(args, capsys, monkeypatch) -> tuple[int, str]:
    code, _, err = run_cli(args, capsys, monkeypatch)
    return code, err


def store_bytes(folder: Path) -> dict[str, bytes]:
    root = folder / ".imgsearch"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def texts(folder: Path) -> dict[str, str | None]:
    return {Path(i.path).name: i.text for i in Store(folder / ".imgsearch").require().items}


def photo_folder(root: Path) -> Path:
    folder = root / "photos"
    folder.mkdir()
    for seed, name in enumerate(IMAGES):
        write_image(folder / name, seed)
    return folder


# --- the sticky catalog ---------------------------------------------------------------------


def titled_index(tmp_path: Path, rows: str, capsys, monkeypatch) -> tuple[Path, Path]:
    """The photo folder indexed with a catalog of ``rows`` (its titles sticky): (folder, catalog)."""
    folder = photo_folder(tmp_path)
    catalog = tmp_path / "products.csv"
    catalog.write_text(rows)
    code, err = cli(
        ["index", folder, "--meta", catalog, "--text-columns", "title", "-q"], capsys, monkeypatch
    )
    assert code == 0, err
    return folder, catalog


def test_missing_sticky_catalog_stops_and_no_meta_drops_it(tmp_path, tiny, capsys, monkeypatch):
    folder, catalog = titled_index(
        tmp_path, "filename,title\nimg0.png,red bag\nimg1.png,blue shoe\n", capsys, monkeypatch
    )
    titled = texts(folder)
    assert titled["img0.png"] == "red bag" and titled["img1.png"] == "blue shoe"
    before = store_bytes(folder)

    catalog.rename(tmp_path / "away.csv")
    code, err = cli(["index", folder, "-q"], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(catalog) in err and "--no-meta" in err
    assert store_bytes(folder) == before  # the titles are still there

    code, err = cli(["index", folder, "--rebuild", "-q"], capsys, monkeypatch)  # --rebuild keeps it too
    assert code == 2 and "--no-meta" in err, err
    assert store_bytes(folder) == before

    (tmp_path / "away.csv").rename(catalog)
    code, err = cli(["index", folder, "-q"], capsys, monkeypatch)
    assert code == 0 and texts(folder) == titled, err

    code, err = cli(["index", folder, "--no-meta", "--no-auto-tags", "-q"], capsys, monkeypatch)
    assert code == 0, err
    assert set(texts(folder).values()) == {None}
    manifest = Store(folder / ".imgsearch").require().manifest
    assert manifest["text_source"]["meta"] is None
    catalog.unlink()
    code, err = cli(["index", folder, "-q"], capsys, monkeypatch)  # nothing sticky left to miss
    assert code == 0, err


def test_repairing_a_damaged_index_keeps_its_sticky_catalog(tmp_path, tiny, capsys, monkeypatch):
    # the live generation does not load (its items file is cut), but its manifest still names
    # the catalog: the repairing run must keep the titles, not publish an index without them
    folder, _ = titled_index(
        tmp_path, "filename,title\nimg0.png,red bag\nimg1.png,blue shoe\n", capsys, monkeypatch
    )
    titled = texts(folder)
    gen_dir = Store(folder / ".imgsearch").current_dir()
    items = gen_dir / "items.jsonl"
    items.write_bytes(items.read_bytes()[:10])
    code, err = cli(["index", folder, "-q"], capsys, monkeypatch)
    assert code == 0, err
    assert texts(folder) == titled


def test_a_generation_that_is_a_link_out_of_the_store_is_refused(tmp_path, tiny, capsys, monkeypatch):
    folder = photo_folder(tmp_path)
    code, err = cli(["index", folder, "-q"], capsys, monkeypatch)
    assert code == 0, err
    st = Store(folder / ".imgsearch")
    outside = tmp_path / "elsewhere"
    shutil.copytree(st.current_dir(), outside)
    (st.root / "gen-000099").symlink_to(outside, target_is_directory=True)
    (st.root / "CURRENT").write_text("gen-000099\n")
    code, err = cli(["query", "--text", "bag", "--index", st.root], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "CURRENT does not name a generation of this store" in err


def test_a_sticky_catalog_gone_bad_names_the_line_and_no_meta(tmp_path, tiny, capsys, monkeypatch):
    folder, catalog = titled_index(tmp_path, "id,title\nimg0,red bag\n", capsys, monkeypatch)
    before = store_bytes(folder)
    catalog.write_text("id,title\nimg0,red bag\nimg1,blue,shoe\n")
    code, err = cli(["index", folder, "-q"], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{catalog}:3:" in err and "--no-meta" in err
    assert store_bytes(folder) == before


def test_meta_and_no_meta_contradict(tmp_path, tiny, capsys, monkeypatch):
    folder = photo_folder(tmp_path)
    (tmp_path / "c.csv").write_text("id,title\nimg0,x\n")
    args = ["--meta", tmp_path / "c.csv", "--text-columns", "title", "--no-meta"]
    for command in (["index", folder], ["embed", folder, "--out", tmp_path / "e"]):
        code, err = cli([*command, *args], capsys, monkeypatch)
        assert code == 2 and "contradict" in err, err


# --- random catalogs ------------------------------------------------------------------------

# any Unicode a UTF-8 file can hold (no lone surrogates), with the CSV specials made likely
TITLE = st.text(
    st.one_of(st.sampled_from("\",\n\r \t'é漢🙂"), st.characters(exclude_categories=["Cs"])), max_size=12
)


@dataclass
class Catalog:
    text: str  # the file as written
    titles: dict[str, str]  # image name -> the title of its row, as csv writes and reads it
    fault_line: int | None  # the line an error must name (None: the catalog must be accepted)


def _line_of(written: io.StringIO) -> int:
    """The line the next row starts on, counted as the csv module counts them."""
    return len(io.StringIO(written.getvalue(), newline="").readlines()) + 1


@st.composite
def catalogs(draw, folder: Path) -> Catalog:
    """A catalog for ``IMAGES`` in ``folder``, with one fault or none:

    - ``repeat``: a row repeated exactly (accepted); ``id`` / ``path``: a second, different row
      for an image already listed (the path spelled another way: bare, ``./``, absolute);
    - ``extra``: a row with one field too many; ``quote``: a quote that is never closed.
    """
    listed = draw(st.lists(st.sampled_from(IMAGES), min_size=1, unique=True))  # no rows: an error of its own
    rows = []
    for name in listed:
        key = draw(st.sampled_from(["id", "bare", "dot", "absolute"]))
        rows.append((_key_fields(key, name, folder), draw(TITLE)))
    noise = draw(st.lists(st.text("xyz", min_size=1, max_size=3), unique=True, max_size=3))
    rows += [((f"other-{n}", ""), draw(TITLE)) for n in noise]  # rows that join no image
    rows = draw(st.permutations(rows))
    fault = draw(st.sampled_from(["none", "repeat", "id", "path", "extra", "quote"]))
    at = draw(st.integers(0, len(rows)))
    written = io.StringIO(newline="")
    writer = csv.writer(written)
    writer.writerow(["id", "filename", "title"])
    fault_line = None
    for i in range(len(rows) + 1):
        if i == at:
            fault_line = _write_fault(draw, fault, writer, written, rows[:i], folder)
        if i < len(rows):
            (row_id, filename), title = rows[i]
            writer.writerow([row_id, filename, title])
    if fault == "quote":
        # A later title whose text starts (after any quotes) with a line break closes the open
        # quote and ends the row: the file is then valid CSV with a multi-line title, which no
        # reader can tell from the user's intent. Every other continuation is detectable.
        after = [title for _, title in rows[at:]]
        assume(not any(t.lstrip('"')[:1] in ("\n", "\r") for t in after))
    titles = {image_of(row_id, filename): title for (row_id, filename), title in rows}
    titles.pop(None, None)
    event(f"{fault}: {'an error' if fault_line else 'accepted'}")
    return Catalog(written.getvalue(), titles, fault_line)


def image_of(row_id: str, filename: str) -> str | None:
    """The image a row joins (every row here names one by id or by path, or none)."""
    name = row_id + ".png" if row_id else Path(filename).name
    return name if name in IMAGES else None


def _key_fields(key: str, name: str, folder: Path) -> tuple[str, str]:
    spelled = {"bare": name, "dot": f"./{name}", "absolute": str(folder / name)}
    return (Path(name).stem, "") if key == "id" else ("", spelled[key])


def _write_fault(draw, fault, writer, written, before, folder) -> int | None:
    """Write the fault's line(s) at this point; the line an error must name, if any."""
    line = _line_of(written)
    if fault == "repeat" and before:
        (row_id, filename), title = draw(st.sampled_from(before))
        writer.writerow([row_id, filename, title])
        return None
    if fault in ("id", "path"):
        column = 0 if fault == "id" else 1
        joined = [(k, t) for k, t in before if k[column] and not k[0].startswith("other")]
        if not joined:
            return None
        (row_id, filename), title = draw(st.sampled_from(joined))
        if fault == "path":  # the same file, spelled any way
            name = Path(filename).name
            filename = draw(st.sampled_from([name, f"./{name}", str(folder / name)]))
        writer.writerow([row_id, filename, title + "!"])  # other values for the same image
        return line
    if fault == "extra":
        writer.writerow(["other-extra", "", "a title", "one field too many"])
        return line
    if fault == "quote":
        written.write('other-quote,,"an open quote\r\n')
        return line
    return None


@settings(PROFILE)
@given(data=st.data())
def test_random_catalogs_index_exactly_or_fail_on_the_line(data, tiny, capsys, monkeypatch):
    root = Path(tempfile.mkdtemp(prefix="imgsearch-catalog-"))
    try:
        folder = photo_folder(root)
        code, err = cli(["index", folder, "--no-auto-tags", "-q"], capsys, monkeypatch)
        assert code == 0, err
        before = store_bytes(folder)
        catalog = data.draw(catalogs(folder))
        path = folder / "catalog.csv"
        path.write_text(catalog.text, encoding="utf-8", newline="")
        args = ["index", folder, "--meta", path, "--text-columns", "title", "--no-auto-tags", "-q"]
        code, err = cli(args, capsys, monkeypatch)
        if catalog.fault_line is None:
            assert code == 0, err
            with open(path, encoding="utf-8", newline="") as f:
                read = {image_of(r["id"], r["filename"]): r["title"] for r in csv.DictReader(f)}
            read.pop(None, None)
            assert read == catalog.titles  # the csv module reads the rows that were meant
            got = texts(folder)
            for name in IMAGES:
                assert got[name] == ((read.get(name) or "").strip() or None), name
        else:
            assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
            assert f"{path}:{catalog.fault_line}:" in err, (err, catalog.text)
            assert store_bytes(folder) == before
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (['{"id": "img0", "title": "a"}', "", '{"id": "img0", "title": "b"}'], 3, "also on line 1"),
        (['{"filename": "img0.png", "title": "a"}', '{"filename": "./img0.png", "title": "b"}'], 2, "line 1"),
        (['{"id": "img0", "title": "a"}', '{"id": "img1", "title": "b"'], 2, "not a JSON object"),
        (['{"id": "img0", "title": "a"}', '["img1", "b"]'], 2, "not a JSON object"),
    ],
)
def test_json_lines_catalogs_follow_the_same_rules(tmp_path, tiny, capsys, monkeypatch, lines, line, message):
    folder = photo_folder(tmp_path)
    code, err = cli(["index", folder, "-q"], capsys, monkeypatch)
    before = store_bytes(folder)
    catalog = folder / "catalog.jsonl"
    catalog.write_text("\n".join(lines) + "\n")
    code, err = cli(
        ["index", folder, "--meta", catalog, "--text-columns", "title", "-q"], capsys, monkeypatch
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{catalog}:{line}:" in err and message in err, err
    assert store_bytes(folder) == before


def test_json_lines_exact_repeats_pass(tmp_path, tiny, capsys, monkeypatch):
    folder = photo_folder(tmp_path)
    catalog = folder / "catalog.jsonl"
    row = json.dumps({"id": "img0", "title": 'red, "big"\nbag'})
    catalog.write_text(f"{row}\n{row}\n")
    args = ["index", folder, "--meta", catalog, "--text-columns", "title", "-q"]
    code, err = cli(args, capsys, monkeypatch)
    assert code == 0, err
    assert texts(folder)["img0.png"] == 'red, "big"\nbag'


# --- folders and files the scan must survive -------------------------------------------------


def remove_tree(top: Path) -> None:
    """``shutil.rmtree`` recurses (Python 3.11) and opens paths by name: neither works 10,000
    levels down. Each folder's subfolders move up beside ``top`` first, so every path stays short."""
    pending, moved = [top], 0
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as listing:
            entries = list(listing)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                moved += 1
                pending.append(top.parent / f"{top.name}-rm-{moved}")
                os.rename(entry.path, pending[-1])
            else:
                os.unlink(entry.path)
        os.rmdir(folder)


def make_chain(top: Path, names: list[str], images: dict[int, list[str]]) -> list[str]:
    """Folders nested ``names`` deep under ``top`` (made through folder handles, as a path may be too
    long to name), with small PNGs named ``images[level]`` at those levels; the PNGs' paths."""
    png = io.BytesIO()
    write_image(png, 1)
    made, path = [], str(top)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level, name in enumerate(names, 1):
            os.mkdir(name, dir_fd=fd)
            fd, parent = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
            os.close(parent)
            path += "/" + name
            for image in images.get(level, []):
                out = os.open(image, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                os.write(out, png.getvalue())
                os.close(out)
                made.append(f"{path}/{image}")
    finally:
        os.close(fd)
    return made


def indexed_or_skipped(folder: Path, paths: list[str]) -> tuple[set[str], dict[str, str]]:
    """Which of ``paths`` the index holds, and for each other one the skipped.tsv line that covers
    it (its own, or its folder's) — every one must be one or the other."""
    st = Store(folder / ".imgsearch")
    indexed = {i.path for i in st.require().items}
    skipped = dict(
        line.split("\t", 1) for line in (st.current_dir() / "skipped.tsv").read_text().splitlines()
    )
    covered = {}
    for path in paths:
        if path not in indexed:
            covers = [p for p in skipped if path == p or path.startswith(p + "/")]
            assert covers, f"{len(path)}-byte path neither indexed nor skipped"
            covered[path] = skipped[covers[0]]
    return indexed & set(paths), covered


def test_a_folder_deeper_than_the_recursion_limit_is_indexed_or_skipped(tmp_path, tiny, capsys, monkeypatch):
    """1,100 levels end os.walk as 10,000 did (Python's limit is 1,000 frames), at a ninth of the
    cost of making and removing the folders; 4-byte levels also cross the 4,096-byte path limit."""
    folder = tmp_path / "deep"
    folder.mkdir()
    levels = {1: ["a.png"], 600: ["b.png"], 900: ["c.png"], 1_100: ["z.png"]}
    images = make_chain(folder, ["ddd"] * 1_100, levels)
    try:
        code, err = cli(["index", folder, "-q"], capsys, monkeypatch)
        assert code == 0 and not err, err  # before: "unexpected error (RecursionError)", nothing indexed
        indexed, skipped = indexed_or_skipped(folder, images)
        assert indexed == set(images[:3])  # every path the system can open
        assert skipped[images[3]].startswith("folder not searched: path too long")
        assert "the system allows 4,095" in skipped[images[3]]
    finally:
        remove_tree(folder)


def test_paths_over_4096_bytes_are_listed_in_skipped(tmp_path, tiny, capsys, monkeypatch):
    folder = tmp_path / "long"
    folder.mkdir()
    names = []
    while len(os.fsencode(folder)) + sum(len(n) + 1 for n in names) < 3_900:
        names.append("n" * 200)
    # the last folder still opens (under 4,096 bytes) and so does ok.png in it; a long file name
    # beside it does not, nor does anything in a long-named folder below it
    long_name = "i" * 240 + ".png"
    images = make_chain(
        folder, [*names, "f" * 250], {len(names): ["ok.png", long_name], len(names) + 1: ["deep.png"]}
    )
    try:
        code, err = cli(["index", folder, "-q"], capsys, monkeypatch)
        assert code == 0 and not err, err
        indexed, skipped = indexed_or_skipped(folder, images)
        assert indexed == {images[0]}
        assert skipped[images[1]].startswith("path too long")  # its own line
        assert skipped[images[2]].startswith("folder not searched: path too long")  # its folder's line
    finally:
        remove_tree(folder)


HUGE_RUN = """
import resource, sys
from pathlib import Path

resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))  # a 3 GB read fails fast
from fakes import TinyImageEncoder, TinyTextEncoder
from imgsearch.indexing.build import index_folder
from imgsearch.embed.job import EmbedOptions

folder = Path(sys.argv[1])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
index_folder(folder, EmbedOptions(), image=TinyImageEncoder(), text=TinyTextEncoder())
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
"""


def test_a_3gb_sparse_jpg_is_skipped_unread(tmp_path):
    """Size first: a file far larger than any image Pillow would open is skipped without being read.
    Run in a process of its own with its address space capped at 2 GiB: a whole read (the old way)
    fails there at once instead of taking 3 GB from a shared machine, and is reported as a failure."""
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "ok.png", 1)
    header = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(header, format="JPEG")
    with open(folder / "huge.jpg", "wb") as f:
        f.write(header.getvalue())
        f.truncate(3 * 2**30)  # sparse: 3 GB that take no disk
    run = subprocess.run(
        [sys.executable, "-c", HUGE_RUN, str(folder), str(2 * 2**30)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    grew = int(run.stdout.split()[-1])
    assert grew < 256 * 2**20, f"indexing grew the process by {grew / 2**20:.0f} MB"
    st = Store(folder / ".imgsearch")
    skipped = dict(
        line.split("\t", 1) for line in (st.current_dir() / "skipped.tsv").read_text().splitlines()
    )
    assert skipped[str(folder / "huge.jpg")].startswith("file too large for an image (3,072 MB")
    assert [Path(i.path).name for i in st.require().items] == ["ok.png"]


def test_a_bomb_is_refused_from_its_header_unread(tmp_path):
    """Under the size cap the header still comes first: a PNG that declares 100,000 × 100,000
    pixels is refused before its 100 MB are read into memory."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    path = tmp_path / "bomb.png"
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr)))
        f.write(struct.pack(">I", 100 * 2**20) + b"IDAT")  # pixel data: the sparse rest of the file
        f.truncate(100 * 2**20 + 64)
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="decompression bomb"):
            read_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20, f"{peak / 2**20:.0f} MB read"
