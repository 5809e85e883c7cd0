"""`dups` and `query` never hand a pipeline a file that changed since `index`.

The class of bug: results come from the index, and a pipeline acts on their names without
looking (`dups ... | xargs rm`). A keeper deleted since the index was still listed first, so the
pipeline deleted every remaining copy; a file whose contents were replaced was still a copy with
similarity 1.0 and was deleted; a name with a tab or a line break split into other names.

The property test generates the class: a folder of small real images (exact copies and
re-encoded near copies of a few photos, odd names: tabs, line breaks, quotes, spaces, a leading
dash, unicode) is indexed, then a random sequence of what users do (delete a keeper or any file,
replace contents, touch, rename, onto another name too, re-index) runs between `index` and the
README's delete recipe. After each run of the recipe: no file that changed since `index` was
deleted, nothing was modified, and every duplicate group of the index kept at least one of its
files still as indexed (when the user left one). Small numpy encoders stand in for the models
(``fakes.py``); the recipe runs in-process with the same NUL splitting as `xargs -0`, 25
sequences on every `make test`, 200 with ``HYPOTHESIS_PROFILE=ci``. One test runs the README's
recipe itself through `sh -c` with the installed `imgsearch`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from conftest import ROOT, run_cli
from fakes import TinyImageEncoder, TinyTextEncoder, tiny_searcher
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgsearch import dups
from imgsearch.embed.job import EmbedOptions
from imgsearch.indexing.build import index_folder
from imgsearch.search.query import build_query
from imgsearch.store import Store

# Name parts a user's folder holds: each breaks a naive `| xargs rm` or `cut -f` differently.
ODD = ["plain", "two words", "tab\there", "new\nline", "cr\rname", "-dash", "it's", 'say "hi"']
ODD += ["back\\slash", "ünïcødé 写真", "*star?", " lead", "trail ", "semi;colon", "$HOME"]


def photo(seed: int) -> Image.Image:
    """A small smooth random photo, distinct per seed."""
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((64, 64), Image.Resampling.BILINEAR)


def index(folder: Path) -> None:
    index_folder(folder, EmbedOptions(chunk=8), image=TinyImageEncoder(), text=TinyTextEncoder())


def run_dups(*args: str) -> tuple[int, bytes, str]:
    """`imgsearch dups ARGS` in-process: (exit code, stdout bytes, stderr)."""
    from imgsearch.cli import app as cli

    out, err = io.BytesIO(), io.StringIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    code = 0
    with (
        mock.patch.object(sys, "argv", ["imgsearch", "dups", *args]),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(err),
    ):
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code or 0
    stdout.flush()
    data = out.getvalue()
    stdout.detach()
    return code, data, err.getvalue()


def delete_recipe_in_process(folder: Path) -> tuple[list[str], str]:
    """The README's `imgsearch dups DIR --copies -0 | xargs -0 -r rm --`, in-process: the names
    split on NUL exactly as `xargs -0` does, each removed as `rm` would. Returns the names
    that were not there to remove (none should be) and dups' stderr."""
    code, out, err = run_dups(str(folder), "--copies", "-0")
    assert code in (0, 1) and "Traceback" not in err, err
    assert (code == 0) == bool(out), (code, out)
    missing = []
    for name in out.split(b"\0")[:-1]:
        try:
            os.remove(os.fsdecode(name))
        except FileNotFoundError:
            missing.append(os.fsdecode(name))
    return missing, err


def files(folder: Path) -> dict[str, tuple[bytes, float]]:
    """Every file under ``folder`` but the store: path → (bytes, mtime)."""
    found = {}
    for path in folder.rglob("*"):
        if ".imgsearch" not in path.relative_to(folder).parts and path.is_file():
            found[str(path)] = (path.read_bytes(), path.stat().st_mtime)
    return found


def examples() -> int:
    # as tests/test_index_life.py's profiles: 25 sequences locally, 200 in CI
    return 200 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 25


class Folder:
    """A folder with duplicates that a user indexes, changes, and prunes with the README recipe."""

    def __init__(self, root: Path, names: list[str]) -> None:
        self.folder = root / "photos"
        self.folder.mkdir()
        self.names = names
        self.clock = 1_600_000_000.0
        self.counter = 0

    def fill(self, seed: int, families: list[tuple[int, int, bool]], singles: int) -> None:
        """Per family: a photo, ``exact`` byte copies, ``near`` resized and re-encoded copies, and
        with ``link`` a symbolic link to the photo whose name sorts first (listed first: kept)."""
        for family, (exact, near, link) in enumerate(families):
            original = photo(seed + family)
            first = self.save(original, "png")
            if link:
                (self.folder / f"00 link {family}.png").symlink_to(first)
            for _ in range(exact):
                self.tick(shutil.copyfile(first, self.new_name("png")))
            for k in range(near):
                self.save(original.resize((60 - 4 * k, 60 - 4 * k), Image.Resampling.LANCZOS), "jpg")
        for k in range(singles):
            self.save(photo(seed + 100 + k), "png")

    def new_name(self, suffix: str) -> Path:
        self.counter += 1
        return self.folder / f"{self.counter:02d} {self.names[self.counter % len(self.names)]}.{suffix}"

    def tick(self, path: Path) -> None:
        # a distinct mtime per change, as a real clock gives changes seconds apart
        self.clock += 10
        os.utime(path, (self.clock, self.clock))

    def save(self, image: Image.Image, suffix: str, path: Path | None = None) -> Path:
        path = path or self.new_name(suffix)
        image.save(path, format="PNG" if path.suffix == ".png" else "JPEG", quality=88)
        self.tick(path)
        return path

    def reindex(self) -> None:
        index(self.folder)
        self.indexed = files(self.folder)  # what the index now describes
        gen = Store(self.folder / ".imgsearch").require()
        assert {i.path for i in gen.items} == set(self.indexed)
        self.groups = [[gen.items[r].path for r in g.rows] for g in dups.find_groups(gen)]

    # what a user does between `index` and the recipe: (what, a, b) picks files by a and b

    def change(self, what: str, a: int, b: int) -> None:
        existing = sorted(files(self.folder))
        keepers = [g[0] for g in self.groups if g[0] in existing]
        if what == "reindex" and existing:  # an empty folder is an error for `index`
            self.reindex()
        elif what == "recipe":
            self.recipe()
        elif what == "delete a keeper" and keepers:
            os.remove(keepers[a % len(keepers)])
        elif not existing or what in ("reindex", "delete a keeper"):
            return
        elif what == "delete":
            os.remove(existing[a % len(existing)])
        elif what == "replace":  # new contents, or another file's (a copy turned into another photo)
            path = Path(existing[a % len(existing)])
            if b % 2:
                path.write_bytes(Path(existing[b % len(existing)]).read_bytes())
                self.tick(path)
            else:
                self.save(photo(20_000 + b), path.suffix[1:], path)
        elif what == "touch":
            self.tick(Path(existing[a % len(existing)]))
        elif what == "rename":  # to a new name, or onto a name the index knows (`mv copy keeper`)
            source = Path(existing[a % len(existing)])
            indexed = sorted(self.indexed)
            target = Path(indexed[b % len(indexed)]) if b % 2 else self.new_name(source.suffix[1:])
            source.rename(target)

    def recipe(self) -> None:
        before = files(self.folder)
        unchanged = {p for p, seen in before.items() if self.indexed.get(p) == seen}
        missing, err = delete_recipe_in_process(self.folder)
        after = files(self.folder)
        assert not missing, f"listed files that were not there: {missing}"
        removed = set(before) - set(after)
        # what the sequences covered (`pytest --hypothesis-show-statistics`)
        event("recipe deleted copies" if removed else "recipe deleted nothing")
        event("stale groups dropped" if "group(s)" in err else "no group dropped")
        event("stale copies left out" if "file(s)" in err else "no copy left out")
        assert removed <= unchanged, f"deleted files changed since index: {removed - unchanged}; {err}"
        assert all(after[p] == before[p] for p in after), "a file was modified"
        for group in self.groups:
            still = [p for p in group if p in unchanged]
            if still:  # the user left some of it as indexed: the recipe keeps at least one
                assert any(p in after for p in still), (group, removed, err)
            indexed_bytes = {self.indexed[p][0] for p in group}
            if any(b in indexed_bytes for b, _ in before.values()):
                assert any(b in indexed_bytes for b, _ in after.values()), (group, removed, err)


CHANGES = ["delete", "delete a keeper", "replace", "touch", "rename", "reindex", "recipe"]


@settings(
    max_examples=examples(),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[p for p in Phase if p != Phase.explain],  # explaining a failure re-ran it for minutes
)
@given(
    seed=st.integers(0, 10_000),
    families=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 2), st.booleans()), min_size=1, max_size=3),
    singles=st.integers(0, 2),
    names=st.lists(st.sampled_from(ODD), min_size=1, max_size=8),
    changes=st.lists(st.tuples(st.sampled_from(CHANGES), st.integers(0, 50), st.integers(0, 50)), max_size=8),
)
def test_the_delete_recipe_never_deletes_a_changed_file_nor_a_whole_group(
    seed, families, singles, names, changes
):
    with tempfile.TemporaryDirectory(prefix="imgsearch-dups-fresh-") as root:
        folder = Folder(Path(root), names)
        folder.fill(seed, families, singles)
        folder.reindex()
        for what, a, b in changes:
            folder.change(what, a, b)
        folder.recipe()  # every sequence ends with the recipe, as a user's would


# --- examples of the class, one each ---------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """a.png (the largest: kept) with an exact copy and a re-encoded near copy; an unrelated one."""
    d = tmp_path / "pics"
    d.mkdir()
    big = photo(1)
    big.save(d / "a keep.png")
    shutil.copy(d / "a keep.png", d / "b\tcopy.png")
    big.resize((58, 58), Image.Resampling.LANCZOS).save(d / "c\nnear.jpg", quality=88)
    photo(2).save(d / "other.png")
    index(d)
    return d


def test_fresh_index_lists_the_group_and_recipe_keeps_the_first(folder):
    code, out, _ = run_dups(str(folder), "--copies", "-0")
    assert code == 0 and sorted(out.split(b"\0")[:-1]) == [
        str(folder / "b\tcopy.png").encode(),
        str(folder / "c\nnear.jpg").encode(),
    ]
    delete_recipe_in_process(folder)
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["a keep.png", "other.png"]


def test_a_deleted_keeper_drops_its_group(folder):
    (folder / "a keep.png").unlink()
    code, out, err = run_dups(str(folder), "-f", "json")
    assert code == 1 and out == b""
    assert "left out 1 file(s) (1 gone) and 1 group(s)" in err and "imgsearch index" in err
    assert len(err.strip().splitlines()) == 1
    delete_recipe_in_process(folder)
    assert (folder / "b\tcopy.png").exists() and (folder / "c\nnear.jpg").exists()


def test_a_replaced_or_touched_copy_is_left_out_and_kept(folder):
    photo(3).save(folder / "c\nnear.jpg", format="JPEG")  # other contents under the same name
    code, out, err = run_dups(str(folder), "--copies", "-0")
    assert code == 0 and out == str(folder / "b\tcopy.png").encode() + b"\0"
    assert "1 file(s) (1 changed)" in err
    os.utime(folder / "b\tcopy.png", (1e9, 1e9))  # same bytes, touched: changed all the same
    code, out, err = run_dups(str(folder), "-f", "json")
    assert code == 1 and out == b"" and "2 file(s) (2 changed) and 1 group(s)" in err


def test_a_copy_that_is_the_first_file_is_left_out(tmp_path):
    d = tmp_path / "pics"
    d.mkdir()
    photo(1).save(d / "z real.png")
    (d / "a link.png").symlink_to(d / "z real.png")  # listed first; deleting z would empty it
    index(d)
    code, out, err = run_dups(str(d), "-f", "json")
    assert code == 1 and out == b"" and "(1 same file as the first)" in err


def test_tab_and_newline_names_are_quoted_in_group_lines_and_exact_with_print0(folder):
    code, out, err = run_dups(str(folder), "--format", "paths")
    fields = out.decode().rstrip("\n").split("\t")
    assert code == 0 and "\n" not in out.decode().rstrip("\n") and len(fields) == 3
    assert fields[0] == str(folder / "a keep.png")
    assert sorted(fields[1:]) == sorted(f'"{folder}/b\\tcopy.png"|"{folder}/c\\nnear.jpg"'.split("|"))
    assert "2 path(s) with a tab or line break were written as JSON strings; use -0" in err
    code, out, _ = run_dups(str(folder), "-0")
    assert out.split(b"\0")[0] == str(folder / "a keep.png").encode() and out.endswith(b"\0\0")


def test_copies_goes_with_paths(folder):
    code, _, err = run_dups(str(folder), "--copies", "-f", "json")
    assert code == 2 and err.strip() == "imgsearch: --copies goes with --format paths"


def test_query_leaves_out_a_replaced_file(folder):
    gen = Store(folder / ".imgsearch").require()
    searcher = tiny_searcher(gen)
    q = build_query([str(folder / "other.png")], k=4)
    assert len(searcher.search(q)) == 4
    photo(5).save(folder / "other.png")  # replaced: its old vector no longer describes it
    hits = searcher.search(q)
    assert str(folder / "other.png") not in [h.item.path for h in hits]
    assert len(hits) == 3 and searcher.left_out == {"changed": 1}


def test_query_cli_notes_replaced_results(folder, capsys, monkeypatch):
    monkeypatch.setattr("imgsearch.encoders.open_for_index", _tiny_encoder)
    photo(5).save(folder / "other.png")
    code, out, err = run_cli(
        ["query", str(folder / "a keep.png"), "--index", folder, "-k", "4"], capsys, monkeypatch
    )
    assert code == 0 and "other.png" not in out and len(out.splitlines()) == 3
    assert "left out 1 result(s) changed since the index (1 changed)" in err


def _tiny_encoder(role, spec, allowed=frozenset()):
    return TinyImageEncoder() if role == "image" else TinyTextEncoder()


# --- the README's recipe, as a user runs it ------------------------------------------------------


def readme_recipe() -> str:
    """The delete line of the README's `dups` section, without its comment."""
    text = (ROOT / "README.md").read_text()
    line = re.search(r"^imgsearch dups \./photos --copies -0 \| xargs -0 .*$", text, re.M)
    assert line, "the README's dups section has no delete recipe"
    return line[0].split("  #")[0].strip()


def test_the_readme_recipe_in_a_shell_keeps_changed_files_and_one_of_each_group(folder):
    imgsearch = Path(sys.executable).with_name("imgsearch")
    if not imgsearch.exists():
        pytest.skip("no installed imgsearch script next to this Python")
    photo(4).save(folder / "a keep 2.png")
    shutil.copy(folder / "a keep 2.png", folder / "b -rf 'x' $y.png")  # quotes, a $, an option
    index(folder)
    (folder / "a keep.png").unlink()  # the first of a group, deleted since the index
    recipe = readme_recipe().replace("./photos", shlex.quote(str(folder)))
    recipe = recipe.replace("imgsearch ", shlex.quote(str(imgsearch)) + " ", 1)
    done = subprocess.run(["sh", "-c", recipe], capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    left = sorted(p.name for p in folder.iterdir() if p.is_file())
    # the group whose first file went is untouched; in the other, the first file stays
    assert left == ["a keep 2.png", "b\tcopy.png", "c\nnear.jpg", "other.png"], (left, done.stderr)
    assert b"left out 1 file(s) (1 gone) and 1 group(s)" in done.stderr
