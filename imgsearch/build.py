"""The ``index`` job: embed what changed in a folder, then build one ANN index per vector space.

Index files live inside the store generation they were built for, so the
vectors, items and indexes a query opens always belong together. Building
for an existing generation writes a new generation (the arrays are
hard-linked, not copied) and publishes it atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from imgsearch import index as ann
from imgsearch.embed import EmbedOptions, EmbedReport, Progress, embed_locked
from imgsearch.errors import UserError
from imgsearch.store import Generation, Store, read_generation

STORE_DIRNAME = ".imgsearch"
ANN_SPACES = ("image", "text")  # colour vectors are tiny: always searched exactly


@dataclass
class IndexReport:
    embed: EmbedReport | None
    store: Path
    indexes: dict[str, dict]
    rebuilt: bool


def default_store(folder: Path) -> Path:
    return folder / STORE_DIRNAME


def find_store(explicit: Path | None, cwd: Path | None = None) -> Store:
    """``--index`` if given (a store, or a folder holding ``.imgsearch``), else the nearest
    ``.imgsearch`` in the current directory or its parents, like git finds ``.git``."""
    if explicit is not None:
        for candidate in (explicit, explicit / STORE_DIRNAME):
            if Store.is_store(candidate):
                return Store(candidate)
        raise UserError(f"no index at {explicit}: make one with `imgsearch index DIR`")
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if Store.is_store(folder / STORE_DIRNAME):
            return Store(folder / STORE_DIRNAME)
    raise UserError(
        "no index here or in any parent directory: make one with `imgsearch index DIR` "
        "or point to one with --index"
    )


def index_folder(
    target: Path,
    options: EmbedOptions,
    *,
    out: Path | None = None,
    trees: int | None = None,
    progress: Progress | None = None,
    stdin=None,
) -> IndexReport:
    """Embed ``target`` incrementally (unless it already is a store) and build its indexes."""
    if Store.is_store(target) and out is None:
        st = Store(target)
        with st.lock():
            return IndexReport(None, st.root, *_ensure_indexes(st, trees, force=True))
    if not target.exists():
        raise UserError(f"{target}: no such file or directory")
    st = Store(out or default_store(target if target.is_dir() else target.parent))
    with st.lock():
        report = embed_locked([str(target)], st, options, progress, stdin)
        return IndexReport(report, st.root, *_ensure_indexes(st, trees, force=False))


def _ensure_indexes(st: Store, trees: int | None, *, force: bool) -> tuple[dict[str, dict], bool]:
    gen = st.require()
    current = {s: gen.manifest["spaces"][s].get("index") for s in ANN_SPACES if s in gen.manifest["spaces"]}
    wanted_trees = trees or ann.DEFAULT_TREES
    fresh = all(
        info and info.get("rows") == gen.count and info.get("trees") in (0, wanted_trees)
        for info in current.values()
    )
    if fresh and not force:
        return current, False
    return _build_generation(st, gen, trees), True


def _build_generation(st: Store, gen: Generation, trees: int | None) -> dict[str, dict]:
    new_dir = st.new_generation_dir()
    try:
        for f in gen.dir.iterdir():
            if f.suffix != ".ann" and f.name != "manifest.json":
                _link_or_copy(f, new_dir / f.name)
        manifest = json.loads(json.dumps(gen.manifest))
        built = {}
        for space in ANN_SPACES:
            if space not in gen.vectors:
                continue
            info = ann.build_index(gen.vectors[space], new_dir / f"{space}.ann", trees=trees)
            manifest["spaces"][space]["index"] = {
                **info,
                "file": f"{space}.ann" if info["method"] == "annoy" else None,
            }
            built[space] = manifest["spaces"][space]["index"]
        (new_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        read_generation(new_dir)  # refuse to publish anything a reader would refuse
    except BaseException:
        shutil.rmtree(new_dir, ignore_errors=True)
        raise
    st.publish(new_dir)
    return built


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
