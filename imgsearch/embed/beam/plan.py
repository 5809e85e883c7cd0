"""What the workers of ``embed --engine beam`` share, as plain functions without Beam (tested directly):
the plan pickled into the pipeline, which listed files to keep, the shard of a file, what a shard
is made from, and writing one shard (a store of its own, see ``store.write_shard``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsearch import spaces, store
from imgsearch.embed.job import EmbedOptions
from imgsearch.encoders import ImageEncoder, TextEncoder
from imgsearch.files.catalog import FileEntry, Metadata, file_entry, item_id
from imgsearch.files.exclusions import compile_lines
from imgsearch.files.images import is_image_path
from imgsearch.store import Item


@dataclass(frozen=True)
class Source:
    """One thing to list: a directory (recursive, images only, hidden entries skipped), a glob
    pattern (images only) or a file named explicitly (kept whatever its suffix, like ``scan``)."""

    pattern: str
    kind: str  # "dir", "glob" or "file"
    root: str = ""  # the directory, for "dir"
    exclude: tuple[str, ...] = ()  # gitignore lines (--exclude, then the folder's .imgsearchignore)


@dataclass
class Plan:
    """Everything the workers need, pickled into the pipeline."""

    sources: list[Source]
    shards: int
    out: str
    key: dict  # a shard is reused only under the same encoders, runtime, precision and text rules
    encoders: dict[str, dict]
    text_source: dict
    options: EmbedOptions
    image_size: int
    dims: dict[str, int]
    meta: Metadata | None  # the catalog's text columns only (Metadata.narrowed)
    threads: int | None = None  # LiteRT threads per worker (local runs: the cores shared out)
    image: ImageEncoder | None = None  # encoder objects to use instead of loading the named ones
    text: TextEncoder | None = None


def listed_entry(path: str, size: int, mtime: float, source: Source) -> FileEntry | str | None:
    """A listed file as an entry, the reason it is skipped, or None when the source does not want it."""
    if source.kind != "file":
        if not is_image_path(Path(path)):
            return None
        if source.kind == "dir" and any(p.startswith(".") for p in _relative(path, source.root)):
            return None
    if "://" in path:
        return FileEntry(path, int(size), float(mtime))
    return file_entry(Path(path))  # regular files only, with the same fingerprint as the local engine


def excluded(path: str, source: Source) -> bool:
    """A file of a folder that its exclusions leave out (``imgsearch.files.exclusions``, matched
    against the path relative to the folder, as the local engine matches it)."""
    if source.kind != "dir" or not source.exclude:
        return False
    return bool(_spec(source.exclude).match_file("/".join(_relative(path, source.root))))


@functools.cache
def _spec(lines: tuple[str, ...]):
    return compile_lines(list(lines), ["--exclude"] * len(lines))


def _relative(path: str, root: str) -> list[str]:
    rest = path[len(root) :] if path.startswith(root) else path
    return [p for p in rest.split("/") if p]


def shard_of(path: str, shards: int) -> int:
    return int(item_id(path), 16) % shards


def shard_digest(files: list[tuple[FileEntry, str | None]], skipped: list[tuple[str, str]]) -> str:
    """What a shard is made from: its files' fingerprints and texts, and the files it skips."""
    digest = hashlib.sha256()
    for entry, text in sorted(files, key=lambda f: f[0].path):
        line = [entry.path, entry.size, entry.mtime, text]
        digest.update(json.dumps(line, ensure_ascii=True).encode("ascii") + b"\n")
    for path, reason in sorted(skipped):
        digest.update(json.dumps(["skipped", path, reason], ensure_ascii=True).encode("ascii") + b"\n")
    return digest.hexdigest()


def save_shard(
    plan: Plan,
    index: int,
    digest: str,
    embedded: list[tuple[Item, dict[str, np.ndarray]]],
    skipped: list[tuple[str, str]],
) -> None:
    embedded = sorted(embedded, key=lambda e: e[0].path)
    items = [item for item, _ in embedded]
    vectors = {
        s: np.stack([v[s] for _, v in embedded]) if embedded else np.zeros((0, plan.dims[s]), np.float32)
        for s in spaces.EMBEDDED
    }
    target = store.shard_dir(Path(plan.out), index, plan.shards)
    store.write_shard(
        target, plan.key, digest, plan.encoders, plan.text_source, items, vectors, sorted(skipped)
    )
