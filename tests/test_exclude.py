"""Exclusions: `--exclude GLOB` (kept in the manifest, like --meta) and `.imgsearchignore`.

Scanning is checked against pathspec itself on Hypothesis-made trees of names and patterns: a
file is left out exactly when ``GitIgnoreSpec`` matches its path relative to the folder. The
command line is run in-process with the small encoders from ``fakes.py``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from conftest import run_cli
from fakes import write_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pathspec import GitIgnoreSpec

from imgsearch.embed.beam.plan import Source
from imgsearch.embed.beam.run import attach_exclusions
from imgsearch.embed.job import EmbedOptions
from imgsearch.errors import UserError
from imgsearch.files.catalog import scan
from imgsearch.files.exclusions import IGNORE_FILE
from imgsearch.store import Store

IN_PROCESS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]

EXAMPLES = 200 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 40
examples = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

STEMS = ["a", "b", "ab", "raw", "x y", "[1]"]
SUFFIXES = [".jpg", ".png", ".gif", ".HEIC", ".txt"]
FOLDERS = ["", "raw/", "d/", "d/raw/", "e/d/"]
relative_paths = st.builds(
    lambda folder, stem, suffix: folder + stem + suffix,
    st.sampled_from(FOLDERS),
    st.sampled_from(STEMS),
    st.sampled_from(SUFFIXES),
)
PATTERNS = [
    "*.gif",
    "*.jpg",
    "raw/",
    "raw",
    "/raw/",
    "d/",
    "d/**",
    "**/raw/*.png",
    "/a.png",
    "e/**/a.*",
    "?.png",
    "a*",
    "!a.jpg",
    "!raw/",
    "!d/raw/b.gif",
    "\\[1].png",
    "x y.*",
    "*.heic",
    "# a comment",
    "",
]
patterns = st.one_of(st.sampled_from(PATTERNS), relative_paths, relative_paths.map(lambda p: "!" + p))


@given(
    files=st.sets(relative_paths, min_size=1, max_size=12),
    globs=st.lists(patterns, max_size=4),
    ignore=st.none() | st.lists(patterns, max_size=4),
)
@examples
def test_scan_leaves_out_exactly_what_pathspec_matches(files, globs, ignore):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        for rel in files:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"x")
        if ignore is not None:
            (root / IGNORE_FILE).write_text("\n".join(ignore) + "\n")
        found = scan([str(root)], exclude=globs)
        spec = GitIgnoreSpec.from_lines([*globs, *(ignore or [])])
        images = {rel for rel in files if not rel.endswith(".txt")}
        kept = {os.path.relpath(e.path, root) for e in found.entries}
        excluded = {os.path.relpath(p, root) for p in found.excluded}
        assert excluded == {rel for rel in images if spec.match_file(rel)}
        assert kept == images - excluded
        assert found.skipped == []


def test_a_file_named_explicitly_is_never_excluded(tmp_path):
    (tmp_path / "a.gif").write_bytes(b"x")
    found = scan([str(tmp_path / "a.gif")], exclude=["*.gif"])
    assert [Path(e.path).name for e in found.entries] == ["a.gif"] and found.excluded == []


def indexed(folder: Path) -> list[str]:
    gen = Store(folder / ".imgsearch").require()
    return sorted(os.path.relpath(i.path, folder) for i in gen.items)


def kept(folder: Path) -> dict | None:
    return Store(folder / ".imgsearch").require().manifest.get("exclude")


def test_exclude_is_kept_replaced_and_dropped_across_runs(tmp_path, tiny, capsys, monkeypatch):
    folder = tmp_path / "photos"
    (folder / "raw").mkdir(parents=True)
    for seed, name in enumerate(["a.png", "b.png", "raw/c.png", "d.gif"]):
        write_image(folder / name, seed)

    def index(*args: str) -> str:
        code, _, err = run_cli(["index", folder, *args], capsys, monkeypatch)
        assert code == 0, err
        return err

    err = index("--exclude", "raw/")
    assert indexed(folder) == ["a.png", "b.png", "d.gif"] and "1 excluded" in err
    assert kept(folder) == {"globs": ["raw/"], "ignore_files": []}
    err = index()  # a plain run keeps leaving raw/ out
    assert indexed(folder) == ["a.png", "b.png", "d.gif"] and "1 excluded" in err
    err = index("--exclude", "*.gif", "--exclude", "b.*")  # replaces the kept list
    assert indexed(folder) == ["a.png", "raw/c.png"] and "2 excluded" in err and "2 removed" in err
    assert kept(folder) == {"globs": ["*.gif", "b.*"], "ignore_files": []}
    (folder / IGNORE_FILE).write_text("# drafts\nraw/\n")
    err = index("--no-exclude")  # the ignore file still applies
    assert indexed(folder) == ["a.png", "b.png", "d.gif"] and "1 excluded" in err
    assert kept(folder) == {"globs": [], "ignore_files": [str(folder / IGNORE_FILE)]}
    (folder / IGNORE_FILE).unlink()
    err = index()
    assert indexed(folder) == ["a.png", "b.png", "d.gif", "raw/c.png"] and "excluded" not in err
    assert kept(folder) is None


def test_repairing_a_damaged_index_keeps_its_exclusions(tmp_path, tiny, capsys, monkeypatch):
    # the live generation does not load (its items file is cut), but its manifest still lists the
    # exclusions: the repairing run keeps leaving those files out, as it keeps the catalog
    folder = tmp_path / "photos"
    (folder / "raw").mkdir(parents=True)
    for seed, name in enumerate(["a.png", "raw/c.png"]):
        write_image(folder / name, seed)
    code, _, err = run_cli(["index", folder, "--exclude", "raw/"], capsys, monkeypatch)
    assert code == 0, err
    items = Store(folder / ".imgsearch").current_dir() / "items.jsonl"
    items.write_bytes(items.read_bytes()[:10])
    code, _, err = run_cli(["index", folder], capsys, monkeypatch)
    assert code == 0, err
    assert indexed(folder) == ["a.png"] and kept(folder) == {"globs": ["raw/"], "ignore_files": []}


def test_embed_takes_exclude_too(tmp_path, tiny, capsys, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png", 1)
    write_image(folder / "b.gif", 2)
    out = tmp_path / "vectors"
    code, _, err = run_cli(["embed", folder, "--out", out, "--exclude", "*.gif"], capsys, monkeypatch)
    assert code == 0, err
    items = [json.loads(line)["path"] for line in (Store(out).require().dir / "items.jsonl").open()]
    assert [Path(p).name for p in items] == ["a.png"] and "1 excluded" in err


@pytest.mark.parametrize(
    "args, ignore, message",
    [
        (["--exclude", "x", "--no-exclude"], None, "--exclude and --no-exclude contradict each other"),
        (["--exclude", "!"], None, "--exclude: '!' is not a gitignore pattern"),
        ([], "ok.png\n\\\n", f"{IGNORE_FILE}:2: '\\\\' is not a gitignore pattern"),
    ],
)
def test_a_bad_exclusion_is_one_line(tmp_path, tiny, capsys, monkeypatch, args, ignore, message):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png", 1)
    if ignore is not None:
        (folder / IGNORE_FILE).write_text(ignore)
    code, _, err = run_cli(["index", folder, *args], capsys, monkeypatch)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_the_beam_engine_attaches_each_folders_exclusions_and_refuses_remote_ones(tmp_path):
    source = Source(str(tmp_path) + "/**", "dir", str(tmp_path))
    assert attach_exclusions(EmbedOptions(), None, [source]) == ([source], None)
    (tmp_path / IGNORE_FILE).write_text("raw/\n")
    (attached,), kept = attach_exclusions(EmbedOptions(exclude=["*.gif"]), None, [source])
    assert attached.exclude == ("*.gif", "raw/")
    assert kept == {"globs": ["*.gif"], "ignore_files": [str(tmp_path / IGNORE_FILE)]}
    remote = Source("gs://bucket/photos/**", "dir", "gs://bucket/photos")
    with pytest.raises(UserError, match="local folders"):
        attach_exclusions(EmbedOptions(exclude=["*.gif"]), None, [remote])
    (tmp_path / IGNORE_FILE).write_text("ok.png\n\\\n")
    with pytest.raises(UserError, match=f"{IGNORE_FILE}:2"):
        attach_exclusions(EmbedOptions(), None, [source])


def test_the_beam_engine_leaves_out_what_the_local_engine_leaves_out(tmp_path):
    pytest.importorskip("apache_beam")
    from fakes import TinyImageEncoder, TinyTextEncoder

    from imgsearch.embed.beam.run import BeamOptions
    from imgsearch.indexing.build import embed_folder, embed_folder_beam

    folder = tmp_path / "photos"
    (folder / "raw").mkdir(parents=True)
    for n, name in enumerate(["a.png", "b.gif", "raw/c.png", "raw/keep.png", "d.png"]):
        write_image(folder / name, n)
    (folder / IGNORE_FILE).write_text("raw/*\n!raw/keep.png\n")
    options = {"exclude": ["*.gif"]}
    encoders = {"image": TinyImageEncoder(), "text": TinyTextEncoder()}
    engine = BeamOptions(2, args=IN_PROCESS)
    beam = embed_folder_beam(
        [str(folder)], Store(tmp_path / "B"), EmbedOptions(**options), engine, **encoders
    )
    local = embed_folder([str(folder)], Store(tmp_path / "L"), EmbedOptions(**options), **encoders)
    names = {Path(i.path).relative_to(folder).as_posix() for i in Store(tmp_path / "B").require().items}
    assert names == {"a.png", "d.png", "raw/keep.png"}
    assert names == {
        Path(i.path).relative_to(folder).as_posix() for i in Store(tmp_path / "L").require().items
    }
    assert beam.excluded == local.excluded == 2
    kept = Store(tmp_path / "B").require().manifest["exclude"]
    assert kept == Store(tmp_path / "L").require().manifest["exclude"]
    # a plain re-run keeps the globs, as `index DIR` does
    again = embed_folder_beam([str(folder)], Store(tmp_path / "B"), EmbedOptions(), engine, **encoders)
    assert again.excluded == 2
