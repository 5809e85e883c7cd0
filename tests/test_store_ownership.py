"""The store touches only what it made (issue 23, item 1).

The class of bug: the store cleaned up its working names (``partial/``, ``gen-*``, ``lock``, ...)
wherever they stood, so ``index pics --out pics`` deleted a user's ``pics/partial/`` and
``pics/gen-2019/`` and emptied a user file named ``lock``. The property test generates the class:
random user trees whose names are every name the store uses (taken from ``imgsearch.store``, so a
new name is covered when it is added there), placed in the ``--out`` directory and in the indexed
folder (and so in its default ``.imgsearch``), then random sequences of ``index``, ``index
--rebuild``, ``index --out`` the folder itself, ``embed --out``, ``index`` of the embeddings dir,
interrupted runs, new photos and stores turned into ones of an earlier version (no markers). After
every step every user file is byte-identical and still there, and a command is refused (one line)
exactly when a user's entry stands on a name the store must write. Small numpy encoders stand in
for the models (``fakes.py``): 25 sequences per ``make test``, 200 with ``HYPOTHESIS_PROFILE=ci``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import run_cli
from fakes import TinyImageEncoder, TinyTextEncoder, use_tiny_models, write_image
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from imgsearch import store
from imgsearch.embed.job import EmbedOptions
from imgsearch.errors import UserError
from imgsearch.indexing.build import embed_folder, index_folder
from imgsearch.store import Store
from imgsearch.store import format as store_format

# this module's own settings (not a profile: test_index_life.py registers the shared ones)
EXAMPLES = 200 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 25
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# every name the store writes: in a store root, in its generations, chunks and shards, and the
# default store of a folder; plus names that only look like the store's (gen-2019)
STORE_NAMES = sorted(
    {
        *store.ROOT_NAMES,
        store.STORE_DIRNAME,
        *(store.generation_name(n) for n in (1, 2, 3)),
        store.chunk_name(0),
        store.shard_dir(Path(), 0, 2).name,
        store.SHARD_META,
        "manifest.json",
        "items.jsonl",
        "gen-2019",
        "notes.txt",
        "a.jpg",
    }
)
REFUSED = ("not made by imgsearch", "is not a directory")


class Killed(Exception):
    """Stands in for a kill: raised by the image encoder after its first chunk."""


class DyingImageEncoder(TinyImageEncoder):
    def __init__(self) -> None:
        self.calls = 0

    def encode(self, pixels):
        self.calls += 1
        if self.calls > 1:
            raise Killed
        return super().encode(pixels)


def _options(rebuild: bool = False) -> EmbedOptions:
    return EmbedOptions(rebuild=rebuild, chunk=3)


def _index(folder: Path, *, out: Path | None = None, rebuild: bool = False, image=None) -> None:
    index_folder(
        folder, _options(rebuild), out=out, image=image or TinyImageEncoder(), text=TinyTextEncoder()
    )


def _embed(folder: Path, out: Path, image=None) -> None:
    embed_folder(
        [str(folder)], Store(out), _options(), image=image or TinyImageEncoder(), text=TinyTextEncoder()
    )


# --- user trees ------------------------------------------------------------------------------------

_node = st.recursive(
    st.binary(max_size=24),
    lambda children: st.dictionaries(st.sampled_from(STORE_NAMES), children, max_size=3),
    max_leaves=6,
)
# half the trees leave the store's root names free (the store must run there and keep the user's
# gen-2019/ or gen-000001/), half stand on at least one of them (the store must refuse)
OTHER_NAMES = [name for name in STORE_NAMES if name not in store.ROOT_NAMES]
user_trees = st.one_of(
    st.dictionaries(st.sampled_from(OTHER_NAMES), _node, max_size=4),
    st.dictionaries(st.sampled_from(STORE_NAMES), _node, min_size=1, max_size=4),
)


def place(tree: dict, where: Path, owned: dict[Path, bytes | None]) -> None:
    """Write ``tree`` under ``where``; record each file's bytes (and each directory, as None)."""
    where.mkdir(parents=True, exist_ok=True)
    for name, node in tree.items():
        path = where / name
        if isinstance(node, bytes):
            path.write_bytes(node)
            owned[path] = node
        else:
            owned[path] = None
            place(node, path, owned)


def assert_untouched(owned: dict[Path, bytes | None]) -> None:
    for path, data in owned.items():
        if data is None:
            assert path.is_dir() and not path.is_symlink(), f"user directory {path} is gone"
        else:
            assert path.is_file(), f"user file {path} is gone"
            assert path.read_bytes() == data, f"user file {path} was rewritten"


def refusal_expected(root: Path, owned: dict[Path, bytes | None]) -> bool:
    """The store must refuse ``root`` when a user's entry stands where it has to write."""
    if owned.get(root) is not None:  # a user file where the store directory would be
        return True
    return any(root / name in owned for name in store.ROOT_NAMES)


def store_root(folder: Path, out: Path | None) -> Path:
    """The store a command writes, as ``index_folder`` picks it."""
    if out is not None:
        return out
    return folder if Store.is_store(folder) else folder / store.STORE_DIRNAME


def strip_markers(root: Path) -> None:
    """Turn a store of ours into one of an earlier version: the same files without our markers."""
    if not (store_format._has_mark(root / store.STORE_MARK) and (root / store.CURRENT).is_file()):
        return
    (root / store.STORE_MARK).unlink()
    for child in root.iterdir():
        if store.is_owned(child):
            (child / store.OWNED_MARK).unlink()


# --- the property ----------------------------------------------------------------------------------

COMMANDS = ["index", "rebuild", "index_here", "embed", "index_out", "killed_index", "killed_embed"]
steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(COMMANDS), st.just(0)),
        st.tuples(st.just("add_photo"), st.integers(0, 10_000)),
        st.tuples(st.just("old_version"), st.just(0)),
    ),
    min_size=1,
    max_size=7,
)


def run_step(step: str, folder: Path, out: Path) -> tuple[Path, bool]:
    """Run one command: the store root it writes (as picked before it runs), and whether it was
    refused for a name that is not the store's (any error must be one line)."""
    dying = DyingImageEncoder() if step.startswith("killed") else None
    commands = {
        "index": (store_root(folder, None), lambda: _index(folder)),
        "rebuild": (store_root(folder, None), lambda: _index(folder, rebuild=True)),
        "index_here": (folder, lambda: _index(folder, out=folder)),
        "embed": (out, lambda: _embed(folder, out)),
        "index_out": (store_root(out, None), lambda: _index(out)),
        "killed_index": (store_root(folder, None), lambda: _index(folder, image=dying)),
        "killed_embed": (out, lambda: _embed(folder, out, image=dying)),
    }
    root, command = commands[step]
    try:
        command()
    except Killed:
        pass
    except UserError as exc:
        assert "\n" not in str(exc)
        return root, any(words in str(exc) for words in REFUSED)
    return root, False


@SETTINGS
@given(
    in_out=user_trees,
    in_folder=user_trees,
    in_default=st.none() | user_trees,
    photos=st.lists(st.integers(0, 10_000), min_size=1, max_size=5),
    plan=steps,
)
def test_user_files_survive_any_sequence_of_commands(in_out, in_folder, in_default, photos, plan):
    base = Path(tempfile.mkdtemp(prefix="imgsearch-owns-"))
    try:
        folder, out = base / "photos", base / "out"
        owned: dict[Path, bytes | None] = {}
        place(in_folder, folder, owned)
        place(in_out, out, owned)
        if in_default is not None and folder / store.STORE_DIRNAME not in owned:
            place(in_default, folder / store.STORE_DIRNAME, owned)  # a user's own .imgsearch/
            owned[folder / store.STORE_DIRNAME] = None
        for n, seed in enumerate(photos):
            write_image(folder / f"photo-{n}.png", seed)
        for n, (step, arg) in enumerate(plan):
            if step == "add_photo":
                write_image(folder / f"photo-added-{n}.png", arg)
            elif step == "old_version":
                for root in (folder, folder / store.STORE_DIRNAME, out, out / store.STORE_DIRNAME):
                    strip_markers(root)
            else:
                root, refused = run_step(step, folder, out)
                assert refused == refusal_expected(root, owned), (step, root)
                event(f"{step}: {'refused' if refused else 'ran'}")
            assert_untouched(owned)
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- the examples, through the command line -------------------------------------------------


@pytest.fixture
def tiny_models(monkeypatch):
    use_tiny_models(monkeypatch)


def photo_tree(root: Path, names: list[str]) -> dict[Path, bytes | None]:
    owned: dict[Path, bytes | None] = {}
    for n, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, 100 + n)
        owned[path] = path.read_bytes()
    return owned


def refused_in_one_line(code: int, err: str, name: str) -> None:
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert name in err and "not made by imgsearch" in err and "Traceback" not in err


def test_index_into_the_photo_folder_refuses_a_users_partial_and_keeps_every_photo(
    tmp_path, capsys, monkeypatch, tiny_models
):
    pics = tmp_path / "pics"
    names = ["partial/a.jpg", "partial/b.jpg", "gen-2019/c.jpg", "gen-2019/d.jpg", "holiday/e.jpg"]
    owned = photo_tree(pics, names)
    code, _, err = run_cli(["index", pics, "--out", pics, "-q"], capsys, monkeypatch)
    refused_in_one_line(code, err, "partial")
    assert_untouched(owned)
    assert not (pics / store.CURRENT).exists()


def test_names_that_only_look_like_the_stores_are_left_alone(tmp_path, capsys, monkeypatch, tiny_models):
    pics = tmp_path / "pics"
    owned = photo_tree(pics, ["gen-2019/c.jpg", "gen-000001/d.jpg", "holiday/e.jpg"])
    for n in range(4):  # every run publishes (a new photo), and each publish drops old generations
        write_image(pics / f"new-{n}.png", n)
        code, _, err = run_cli(["index", pics, "--out", pics, "-q"], capsys, monkeypatch)
        assert code == 0, err
        assert_untouched(owned)
    assert Store(pics).require().count == 3 + 4
    assert sorted(p.name for p in pics.glob("gen-*")) == [
        "gen-000001",
        "gen-000004",
        "gen-000005",
        "gen-2019",
    ]


def test_embed_out_refuses_a_users_partial_and_lock(tmp_path, capsys, monkeypatch, tiny_models):
    photos = tmp_path / "m" / "images"
    photo_tree(photos, ["1.png", "2.png"])
    outdir2 = tmp_path / "outdir2"
    owned = photo_tree(outdir2, ["gen-2024-trip/beach.jpg"])
    (outdir2 / "partial").mkdir()
    (outdir2 / "partial" / "notes.txt").write_text("my notes")
    owned[outdir2 / "partial" / "notes.txt"] = b"my notes"
    code, _, err = run_cli(["embed", photos, "--out", outdir2, "-q"], capsys, monkeypatch)
    refused_in_one_line(code, err, "partial")
    assert_untouched(owned)

    (outdir2 / "partial" / "notes.txt").rename(tmp_path / "notes.txt")
    (outdir2 / "partial").rmdir()
    del owned[outdir2 / "partial" / "notes.txt"]
    (outdir2 / "lock").write_text("who has the car keys")
    owned[outdir2 / "lock"] = b"who has the car keys"
    code, _, err = run_cli(["embed", photos, "--out", outdir2, "-q"], capsys, monkeypatch)
    refused_in_one_line(code, err, "lock")
    assert_untouched(owned)

    (outdir2 / "lock").unlink()
    del owned[outdir2 / "lock"]
    for _ in range(3):
        code, _, err = run_cli(["embed", photos, "--out", outdir2, "--rebuild", "-q"], capsys, monkeypatch)
        assert code == 0, err
        assert_untouched(owned)


def test_a_store_of_an_earlier_version_is_adopted_and_what_it_did_not_make_kept(
    tmp_path, capsys, monkeypatch, tiny_models
):
    pics = tmp_path / "pics"
    photo_tree(pics, ["1.png", "2.png"])
    for _ in range(2):
        assert run_cli(["index", pics, "-q", "--rebuild"], capsys, monkeypatch)[0] == 0
    root = pics / store.STORE_DIRNAME
    strip_markers(root)  # as an earlier version left it
    assert not list(root.rglob(store.OWNED_MARK)) and not (root / store.STORE_MARK).exists()
    owned = photo_tree(root, ["gen-2019/c.jpg"])
    (root / "partial").mkdir()
    (root / "partial" / "notes.txt").write_text("mine")
    owned[root / "partial" / "notes.txt"] = b"mine"
    code, _, err = run_cli(["index", pics, "-q", "--rebuild"], capsys, monkeypatch)
    refused_in_one_line(code, err, "partial")  # an earlier version never put notes in partial/
    assert_untouched(owned)

    shutil.rmtree(root / "partial")
    del owned[root / "partial" / "notes.txt"]
    for _ in range(2):
        code, _, err = run_cli(["index", pics, "-q", "--rebuild"], capsys, monkeypatch)
        assert code == 0, err
    assert_untouched(owned)
    assert store_format._has_mark(root / store.STORE_MARK)
    assert sorted(p.name for p in root.glob("gen-*")) == ["gen-000003", "gen-000004", "gen-2019"]


def test_a_user_file_where_the_store_goes_is_one_line(tmp_path, capsys, monkeypatch, tiny_models):
    photos = tmp_path / "photos"
    photo_tree(photos, ["1.png"])
    (photos / store.STORE_DIRNAME).write_text("my notes")
    code, _, err = run_cli(["index", photos, "-q"], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is not a directory" in err, err
    assert (photos / store.STORE_DIRNAME).read_text() == "my notes"


def test_markers_written_by_earlier_versions_are_still_ours(tmp_path):
    """The marker's bytes are part of the store format: a store made before the package layout
    moved (issue 25) keeps being recognised, not refused or adopted anew."""
    earlier = "made by imgsearch: see the store format in imgsearch/store.py\n"
    (tmp_path / "owned").mkdir()
    (tmp_path / "owned" / store.OWNED_MARK).write_text(earlier, encoding="utf-8")
    assert store.is_owned(tmp_path / "owned")
