"""Shards: stores written in parallel by ``embed --engine beam``, merged into one generation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from imgsearch.cache import atomic_dir
from imgsearch.errors import UserError
from imgsearch.store.format import _SHARD, SHARDS, Item, Store, write_generation

SHARD_META = "shard.json"


def shard_dir(root: Path, index: int, count: int) -> Path:
    return Path(root) / SHARDS / f"shard-{index:05d}-of-{count:05d}"


def write_shard(
    target: Path,
    key: dict,
    digest: str,
    encoders: dict[str, dict],
    text_source: dict,
    items: list[Item],
    vectors: dict[str, np.ndarray],
    skipped: list[tuple[str, str]],
) -> None:
    """One shard as a store of its own plus ``shard.json`` (what it was made from), all appearing at once:
    a shard directory that exists is complete, one cut short by a kill is never seen. It replaces
    only a shard of ours: the shards directory must be one the store made."""
    Store(target.parent.parent).owned_subdir(SHARDS)
    with atomic_dir(target) as tmp:
        write_generation(Store(tmp), encoders, items, vectors, text_source=text_source, skipped=skipped)
        meta = {"key": key, "inputs": digest, "count": len(items)}
        (tmp / SHARD_META).write_text(json.dumps(meta, ensure_ascii=True), encoding="utf-8")


def complete_shard(target: Path, key: dict, digest: str | None = None) -> int | None:
    """The item count of a complete shard made with ``key`` (and from inputs ``digest``), else None."""
    try:
        meta = json.loads((target / SHARD_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key:
        return None
    if digest is not None and meta.get("inputs") != digest:
        return None
    return meta.get("count") if isinstance(meta.get("count"), int) else None


def prepare_shards(root: Path, count: int) -> None:
    """The shards directory, made (or checked to be ours) before any worker writes to it, without
    the shards of a run with another shard count: they cover other files and are never merged."""
    shards = Store(root).owned_subdir(SHARDS)
    for path in shards.glob("shard-*-of-*"):
        if _SHARD.match(path.name) and not path.name.endswith(f"-of-{count:05d}"):
            shutil.rmtree(path, ignore_errors=True)


def read_shards(
    root: Path, count: int, key: dict
) -> tuple[list[Item], dict[str, np.ndarray], list[tuple[str, str]]]:
    """Every item of the ``count`` shards in path order, their vectors, and the skipped files."""
    items: list[Item] = []
    parts: dict[str, list[np.ndarray]] = {}
    skipped: list[tuple[str, str]] = []
    for index in range(count):
        target = shard_dir(root, index, count)
        if complete_shard(target, key) is None:
            raise UserError(f"{target}: shard missing or made by other encoders; run the same command again")
        gen = Store(target).require()
        items.extend(gen.items)
        for space, arr in gen.vectors.items():
            parts.setdefault(space, []).append(np.asarray(arr))
        skipped.extend(gen.skipped())
    order = np.argsort(np.array([i.path for i in items], dtype=object), kind="stable")
    vectors = {space: np.concatenate(arrs)[order] for space, arrs in parts.items()}
    return [items[i] for i in order], vectors, sorted(skipped)
