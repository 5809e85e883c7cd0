"""The on-disk format of embeddings and indexes, described once here.

A store is a directory::

    DIR/
      CURRENT              name of the live generation; replaced atomically
      gen-000007/          one immutable generation
        manifest.json      format, version, encoders, spaces, item count
        items.jsonl        one item per line: id, path, size, mtime, text, tags, and the
                           duplicate signature: sha256, phash, thumb (see imgsearch/dups.py)
        image.npy          (n, d_image) float32, L2-normalised
        text.npy           (n, d_text) float32, zero rows for items with no text
        colour.npy         (n, len(PALETTE)) foreground share per colour name
        *.ann              Annoy indexes (written by ``imgsearch index``)
        skipped.tsv        path <TAB> reason, for files that could not be used
      partial/             chunks of an unfinished run, merged by the next run
      lock                 held by the one process that writes

Writers build a new generation beside the live one and then replace CURRENT,
so a reader sees the old store or the new one, never a mix. The previous
generation is kept so a reader that has just read CURRENT can still open it.
A manifest names the encoders by id; a store written by other encoders or by
an unknown format version is refused instead of giving wrong answers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from imgsearch.cache import atomic_path, atomic_write_text
from imgsearch.errors import UserError

FORMAT = "imgsearch-store"
# 2: items carry a duplicate signature (sha256 of the bytes, 64-bit pHash, 32×32 gray thumbnail)
VERSION = 2
CURRENT = "CURRENT"
SPACES = ("image", "text", "colour")


@dataclass
class Item:
    id: str
    path: str
    size: int
    mtime: float
    text: str | None = None
    tags: dict = field(default_factory=dict)
    sha256: str | None = None  # of the file bytes: exact duplicates
    phash: str | None = None  # 64-bit DCT perceptual hash, 16 hex digits
    thumb: str | None = None  # base64 of a 32×32 grayscale thumbnail (uint8)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "path": self.path,
            "size": self.size,
            "mtime": self.mtime,
            "text": self.text,
            "tags": self.tags,
            "sha256": self.sha256,
            "phash": self.phash,
            "thumb": self.thumb,
        }

    @classmethod
    def from_json(cls, d: dict) -> Item:
        return cls(
            d["id"],
            d["path"],
            int(d["size"]),
            float(d["mtime"]),
            d.get("text"),
            d.get("tags") or {},
            d.get("sha256"),
            d.get("phash"),
            d.get("thumb"),
        )

    def fingerprint(self) -> tuple[str, int, float]:
        return (self.path, self.size, self.mtime)


@dataclass
class Generation:
    """One immutable, complete snapshot: manifest, items, and one vector array per space."""

    dir: Path
    manifest: dict
    items: list[Item]
    vectors: dict[str, np.ndarray]

    @property
    def count(self) -> int:
        return len(self.items)


def new_manifest(encoders: dict[str, dict | None], text_source: dict, count: int) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": count,
        "encoders": encoders,
        "text_source": text_source,
        "spaces": {},
    }


def check_manifest(manifest: dict, where: Path) -> None:
    if manifest.get("format") != FORMAT:
        raise UserError(f"{where} is not an imgsearch store (unknown format)")
    if manifest.get("version") != VERSION:
        raise UserError(
            f"{where} was written by format version {manifest.get('version')}, this imgsearch reads "
            f"version {VERSION}: re-index with `imgsearch index DIR --rebuild`"
        )


def check_encoders(manifest: dict, expected: dict[str, str | None], where: Path) -> None:
    """Refuse a store whose encoder ids differ from the ones about to be used."""
    for role, want in expected.items():
        have = (manifest["encoders"].get(role) or {}).get("id")
        if want is not None and have is not None and have != want:
            raise UserError(
                f"{where} was built with {role} encoder {have}, not {want}: "
                "use the same encoder, or rebuild with `imgsearch index --rebuild`"
            )


class Store:
    """A store directory: find, read and atomically replace its live generation."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @staticmethod
    def is_store(path: Path) -> bool:
        return (Path(path) / CURRENT).is_file()

    @property
    def partial_dir(self) -> Path:
        return self.root / "partial"

    def current_dir(self) -> Path | None:
        pointer = self.root / CURRENT
        if not pointer.is_file():
            return None
        return self.root / pointer.read_text().strip()

    def load(self, *, mmap: bool = True) -> Generation | None:
        gen_dir = self.current_dir()
        if gen_dir is None:
            return None
        return read_generation(gen_dir, mmap=mmap)

    def require(self) -> Generation:
        gen = self.load()
        if gen is None:
            raise UserError(f"no index at {self.root}: make one with `imgsearch index DIR`")
        return gen

    def new_generation_dir(self) -> Path:
        existing = [int(p.name[4:]) for p in self.root.glob("gen-*") if p.name[4:].isdigit()]
        path = self.root / f"gen-{max(existing, default=0) + 1:06d}"
        path.mkdir(parents=True)
        return path

    @contextlib.contextmanager
    def building(self) -> Iterator[Path]:
        """A new generation dir: published when the block ends, removed if it fails."""
        gen_dir = self.new_generation_dir()
        try:
            yield gen_dir
        except BaseException:
            shutil.rmtree(gen_dir, ignore_errors=True)
            raise
        self.publish(gen_dir)

    def publish(self, gen_dir: Path) -> None:
        """Make ``gen_dir`` live, then drop generations older than the previous one."""
        previous = self.current_dir()
        atomic_write_text(self.root / CURRENT, gen_dir.name + "\n")
        keep = {gen_dir.name, previous.name if previous else ""}
        for old in self.root.glob("gen-*"):
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time; a second one fails at once with a clear message."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise UserError(f"{self.root} is being written by {holder}; wait for it to finish") from None
            f.seek(0)
            f.truncate()
            f.write(f"imgsearch (pid {os.getpid()})")
            f.flush()
            try:
                yield
            finally:
                f.truncate(0)
                fcntl.flock(f, fcntl.LOCK_UN)


def read_generation(gen_dir: Path, *, mmap: bool = True) -> Generation:
    try:
        manifest = json.loads((gen_dir / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise UserError(f"{gen_dir}: missing or unreadable manifest.json; rebuild the index") from None
    check_manifest(manifest, gen_dir)
    with open(gen_dir / "items.jsonl", encoding="utf-8") as f:
        items = [Item.from_json(json.loads(line)) for line in f if line.strip()]
    vectors = {}
    for space, info in manifest["spaces"].items():
        arr = np.load(gen_dir / info["file"], mmap_mode="r" if mmap else None)
        if arr.shape != (len(items), info["dim"]):
            raise UserError(f"{gen_dir}: {info['file']} does not match the manifest; rebuild the index")
        vectors[space] = arr
    if manifest["count"] != len(items):
        raise UserError(f"{gen_dir}: item count does not match the manifest; rebuild the index")
    return Generation(gen_dir, manifest, items, vectors)


def write_generation(
    store: Store,
    manifest: dict,
    items: list[Item],
    vectors: dict[str, np.ndarray],
    skipped: list[tuple[str, str]],
) -> Path:
    """Write a complete generation and publish it."""
    with store.building() as gen_dir:
        with open(gen_dir / "items.jsonl", "w", encoding="utf-8") as f:
            for item in items:
                f.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
        for space, arr in vectors.items():
            np.save(gen_dir / f"{space}.npy", np.ascontiguousarray(arr, dtype=np.float32))
            manifest["spaces"].setdefault(space, {}).update(
                {"file": f"{space}.npy", "dim": int(arr.shape[1])}
            )
        (gen_dir / "skipped.tsv").write_text("".join(f"{p}\t{r}\n" for p, r in skipped), encoding="utf-8")
        manifest["count"] = len(items)
        (gen_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return gen_dir


# Partial chunks: an interrupted run keeps what it embedded.


def save_chunk(
    store: Store, n: int, encoder_ids: dict, items: list[Item], vectors: dict[str, np.ndarray]
) -> None:
    store.partial_dir.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"encoders": encoder_ids, "items": [i.to_json() for i in items]})
    with atomic_path(store.partial_dir / f"chunk-{n:06d}.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, header=np.frombuffer(header.encode("utf-8"), np.uint8), **vectors)


def load_chunks(store: Store, encoder_ids: dict) -> tuple[list[Item], dict[str, list[np.ndarray]]]:
    """Items and vectors from an earlier interrupted run made with the same encoders."""
    items: list[Item] = []
    vectors: dict[str, list[np.ndarray]] = {}
    for path in sorted(store.partial_dir.glob("chunk-*.npz")):
        try:
            with np.load(path) as z:
                header = json.loads(bytes(z["header"]).decode("utf-8"))
                if header["encoders"] != encoder_ids:
                    continue
                for space in z.files:
                    if space != "header":
                        vectors.setdefault(space, []).append(z[space])
                items.extend(Item.from_json(d) for d in header["items"])
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            continue  # a chunk cut short by a kill is simply embedded again
    return items, vectors


def clear_chunks(store: Store) -> None:
    shutil.rmtree(store.partial_dir, ignore_errors=True)
