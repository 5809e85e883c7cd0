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

import numpy as np

from imgsearch import index as ann
from imgsearch.embed import EmbedOptions, EmbedReport, Progress, embed_locked
from imgsearch.errors import UserError
from imgsearch.heads import Head, load_heads
from imgsearch.store import Generation, Store, read_generation

STORE_DIRNAME = ".imgsearch"
PRETRAINED = Path(__file__).parent / "pretrained"
ANN_SPACES = (
    "image",
    "text",
    "aligned",
    "metric",
    "photo",
)  # colour vectors are tiny: always searched exactly


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
    model: Path | None = None,
    progress: Progress | None = None,
    stdin=None,
) -> IndexReport:
    """Embed ``target`` incrementally (unless it already is a store) and build its indexes.

    ``model``: a directory from ``imgsearch train`` whose heads are applied to every item
    and stored with the index; heads already in the index are kept across re-indexing.
    """
    explicit_heads = load_heads(model) if model else None
    if Store.is_store(target) and out is None:
        st = Store(target)
        with st.lock():
            return IndexReport(None, st.root, *_ensure_indexes(st, trees, explicit_heads, force=True))
    if not target.exists():
        raise UserError(f"{target}: no such file or directory")
    st = Store(out or default_store(target if target.is_dir() else target.parent))
    with st.lock():
        live = st.current_dir()
        heads = explicit_heads if explicit_heads is not None else (load_heads(live) if live else {})
        report = embed_locked([str(target)], st, options, progress, stdin)
        return IndexReport(
            report, st.root, *_ensure_indexes(st, trees, heads, force=explicit_heads is not None)
        )


def _ensure_indexes(
    st: Store, trees: int | None, heads: dict[str, Head] | None, *, force: bool
) -> tuple[dict[str, dict], bool]:
    gen = st.require()
    current = {s: gen.manifest["spaces"][s].get("index") for s in ANN_SPACES if s in gen.manifest["spaces"]}
    wanted_trees = trees or ann.DEFAULT_TREES
    fresh = all(
        info and info.get("rows") == gen.count and info.get("trees") in (0, wanted_trees)
        for info in current.values()
    )
    if heads is None or (not heads and not force):
        heads = load_heads(gen.dir)
    heads = {**shipped_heads(gen.manifest), **heads}
    missing_heads = any(name not in gen.vectors for name in heads)
    if fresh and not force and not missing_heads:
        return current, False
    return _build_generation(st, gen, trees, heads), True


def shipped_heads(manifest: dict) -> dict[str, Head]:
    """Heads that ship inside the package, for indexes built with the encoders they were trained on.

    ``photo``: an image → sentence-space head trained on everyday captioned photos, so text
    queries work on photo folders that have no titles (see bench/photo_text_search.py).
    """
    encoders = {role: (spec or {}).get("id") for role, spec in manifest["encoders"].items()}
    found = {}
    for name, head in load_heads(PRETRAINED).items():
        trained = head.info.get("encoders") or {}
        if all(trained.get(role) == encoders.get(role) for role in ("image", "text")):
            found[name] = head
    return found


def _apply_heads(
    gen: Generation, heads: dict[str, Head], new_dir: Path, manifest: dict
) -> dict[str, np.ndarray]:
    """Project every item through each head; store the head beside its vectors."""
    image_id = gen.manifest["encoders"]["image"]["id"]
    vectors = {}
    for name, head in heads.items():
        trained_for = (head.info.get("encoders") or {}).get("image")
        if trained_for != image_id:
            raise UserError(
                f"head {name!r} was trained on image encoder {trained_for}, this index uses {image_id}"
            )
        vectors[name] = head(gen.vectors[head.source_space])
        np.save(new_dir / f"{name}.npy", vectors[name])
        head.save(new_dir)
        manifest["spaces"][name] = {"file": f"{name}.npy", "dim": head.dim, "head": f"{name}.json"}
    return vectors


def _build_generation(
    st: Store, gen: Generation, trees: int | None, heads: dict[str, Head]
) -> dict[str, dict]:
    with st.building() as new_dir:
        head_files = {f"{n}{ext}" for n in heads for ext in (".npy", ".npz", ".json")}
        for f in gen.dir.iterdir():
            if f.suffix != ".ann" and f.name != "manifest.json" and f.name not in head_files:
                _link_or_copy(f, new_dir / f.name)
        manifest = json.loads(json.dumps(gen.manifest))
        vectors = {**gen.vectors, **_apply_heads(gen, heads, new_dir, manifest)}
        built = {}
        for space in ANN_SPACES:
            if space not in vectors:
                continue
            info = ann.build_index(vectors[space], new_dir / f"{space}.ann", trees=trees)
            manifest["spaces"][space]["index"] = {
                **info,
                "file": f"{space}.ann" if info["method"] == "annoy" else None,
            }
            built[space] = manifest["spaces"][space]["index"]
        (new_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        read_generation(new_dir)  # refuse to publish anything a reader would refuse
    return built


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
