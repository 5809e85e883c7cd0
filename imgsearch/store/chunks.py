"""Partial chunks: an interrupted run keeps what it embedded."""

from __future__ import annotations

import json
import shutil

import numpy as np

from imgsearch.cache import atomic_path
from imgsearch.npyio import load_npz
from imgsearch.store.format import PARTIAL, Item, Store, is_owned


def save_chunk(
    store: Store, n: int, encoder_ids: dict, items: list[Item], vectors: dict[str, np.ndarray]
) -> None:
    store.owned_subdir(PARTIAL)
    header = json.dumps({"encoders": encoder_ids, "items": [i.to_json() for i in items]})
    with atomic_path(store.partial_dir / chunk_name(n)) as tmp, open(tmp, "wb") as f:
        np.savez(f, header=np.frombuffer(header.encode("ascii"), np.uint8), **vectors)


def chunk_name(n: int) -> str:
    return f"chunk-{n:06d}.npz"


def load_chunks(store: Store, encoder_ids: dict) -> tuple[list[Item], dict[str, list[np.ndarray]]]:
    """Items and vectors from an earlier interrupted run made with the same encoders."""
    items: list[Item] = []
    vectors: dict[str, list[np.ndarray]] = {}
    for path in sorted(store.partial_dir.glob("chunk-*.npz")):
        try:
            arrays = load_npz(path)
            header = json.loads(bytes(arrays.pop("header")).decode("utf-8"))
            if header["encoders"] != encoder_ids:
                continue
            chunk_items = [Item.from_json(d) for d in header["items"]]
            chunk = arrays
            if any(len(v) != len(chunk_items) for v in chunk.values()):
                continue
            items.extend(chunk_items)
            for space, arr in chunk.items():
                vectors.setdefault(space, []).append(arr)
        except (OSError, ValueError, KeyError, EOFError, TypeError):
            continue  # a chunk cut short by a kill is simply embedded again
    return items, vectors


def clear_chunks(store: Store) -> None:
    if is_owned(store.partial_dir):  # a partial/ we did not make is never emptied
        shutil.rmtree(store.partial_dir, ignore_errors=True)


def next_chunk_number(store: Store) -> int:
    if not store.partial_dir.exists():
        return 0
    numbers = [int(p.stem[6:]) for p in store.partial_dir.glob("chunk-*.npz") if p.stem[6:].isdigit()]
    return max(numbers, default=-1) + 1
