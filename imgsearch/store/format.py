"""The store's files: its root (markers, lock, CURRENT), generations (manifest, items, vectors,
indexes), and the checks that a directory is one the store made. The format is described in the
package's docstring (``imgsearch.store``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import mmap
import operator
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from imgsearch import spaces
from imgsearch.cache import atomic_path, atomic_write_text
from imgsearch.errors import UserError
from imgsearch.npyio import load_npy, load_npz
from imgsearch.search import fusion

FORMAT = "imgsearch-store"
# 2: items carry a duplicate signature (sha256 of the bytes, 64-bit pHash, 32×32 gray thumbnail)
VERSION = 2
CURRENT = "CURRENT"
LOCK = "lock"
PARTIAL = "partial"
SHARDS = "shards"
STORE_MARK = ".imgsearch-store"  # in the store root: CURRENT and lock here are ours
OWNED_MARK = ".imgsearch-owned"  # in a directory the store made: it and its contents are ours
# every name the store may create directly in its root, besides its generations (generation_name)
LOG = "feedback.jsonl"  # the feedback log (imgsearch/store/log.py)
ROOT_NAMES = (CURRENT, LOCK, PARTIAL, SHARDS, STORE_MARK, OWNED_MARK, LOG)
# Its exact bytes are how a store recognises its own markers: never change them (stores made by
# earlier versions must stay ours, though the format now lives in imgsearch/store/).
_MARK_TEXT = "made by imgsearch: see the store format in imgsearch/store.py\n"
STORE_DIRNAME = ".imgsearch"
_GENERATION = re.compile(r"^gen-\d{6}$")
_CHUNK = re.compile(r"^chunk-\d{6}\.npz$")
_SHARD = re.compile(r"^shard-\d{5}-of-\d{5}$")
_TEMP = re.compile(r"^\..+\.tmp$|^\.[^.]+\.[A-Za-z0-9_]{8}$")  # atomic_path / mkdtemp leftovers
_LOCK_TEXT = re.compile(r"^(imgsearch \(pid \d+\))?$")  # what lock() ever leaves in its file
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a plain name inside the generation dir


class DamagedStore(UserError):
    """The store exists but does not check out; ``imgsearch index`` on its folder repairs it."""


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
    centre: str | None = None  # the same of the image's centre (dups.CROP_KEEP): crops line up with it
    exif: dict | None = None  # imgsearch/files/exif.py: {} read and empty, None never read (older stores)

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
            "centre": self.centre,
            "exif": self.exif,
        }

    @classmethod
    def from_json(cls, d: dict) -> Item:
        if not (isinstance(d.get("id"), str) and isinstance(d.get("path"), str)):
            raise ValueError("an item without id or path")
        text, tags = d.get("text"), d.get("tags") or {}
        if not (text is None or isinstance(text, str)) or not isinstance(tags, dict):
            raise ValueError("an item with a malformed text or tags")
        signature = [d.get(k) for k in ("sha256", "phash", "thumb", "centre")]
        if not all(v is None or isinstance(v, str) for v in signature):
            raise ValueError("an item with a malformed duplicate signature")
        exif = d.get("exif")
        if not (exif is None or isinstance(exif, dict)):
            raise ValueError("an item with a malformed exif record")
        return cls(d["id"], d["path"], int(d["size"]), float(d["mtime"]), text, tags, *signature, exif)

    def fingerprint(self) -> tuple[str, int, float]:
        return (self.path, self.size, self.mtime)


@dataclass
class Generation:
    """One immutable, complete snapshot: manifest, items, and one vector array per space."""

    dir: Path
    manifest: dict
    items: Sequence[Item]  # LazyItems for queries: parsed when asked for
    vectors: dict[str, np.ndarray]

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def encoders(self) -> dict[str, dict]:
        return self.manifest["encoders"]

    @property
    def roots(self) -> list[str]:
        """The folders the items were found in (``roots.covering_roots``): the only places from which
        ``serve``, ``query --sheet`` and ``--preview`` read files (``imgsearch.files.roots``)."""
        roots = self.manifest.get("roots")
        return [r for r in roots if isinstance(r, str)] if isinstance(roots, list) else []

    def present(self, space: str) -> np.ndarray | None:
        """Which rows hold a vector in ``space`` (None: every row, or a store without the mask)."""
        return self._per_row(space, "present", np.bool_, 1)

    def bias(self, space: str) -> np.ndarray | None:
        """(n, banks): each row's biases in ``space``, one per query bank (None: the space has none)."""
        return self._per_row(space, "bias", np.float32, 2)

    def _per_row(self, space: str, key: str, dtype, ndim: int) -> np.ndarray | None:
        """The space's row-aligned array named by its ``key`` entry, memory-mapped and checked."""
        name = self.manifest["spaces"][space].get(key)
        if not name:
            return None
        arr = load_npy(self.dir / name, mmap=True)
        if arr.dtype != dtype or arr.ndim != ndim or arr.shape[0] != self.count:
            raise DamagedStore(f"{self.dir}: {name} does not match the items; run `imgsearch index`")
        return arr

    def index_info(self, space: str) -> tuple[dict, Path | None]:
        """How ``space`` is searched: the index description and its file (None: exact search)."""
        info = self.manifest["spaces"][space].get("index") or {"method": "exact"}
        return info, (self.dir / info["file"]) if info.get("file") else None

    def skipped(self) -> list[tuple[str, str]]:
        """The files the run that made this generation could not use, with reasons."""
        try:
            text = (self.dir / "skipped.tsv").read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            return []
        return [tuple(line.split("\t", 1)) for line in text.splitlines() if "\t" in line]  # type: ignore[misc]

    @property
    def lexical_path(self) -> Path | None:
        """The FTS5 file of the lexical space (None: a store made before it existed)."""
        return self.full_text_path("lexical")

    def full_text_path(self, space: str) -> Path | None:
        """The FTS5 file of a full-text space, ``lexical`` or ``ocr`` (None: the store has none)."""
        info = self.manifest.get(space)
        return self.dir / info["file"] if info else None

    def class_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, sqrt-probs) of every item's top classes: memory-mapped from ``classes.ids.npy`` and
        ``classes.vals.npy`` (``classes.npz`` in stores written before), else from the items."""
        info = self.manifest.get("classes")
        if info:
            try:
                if "ids" in info:
                    ids, vals = (
                        load_npy(self.dir / info["ids"], mmap=True),
                        load_npy(self.dir / info["vals"], mmap=True),
                    )
                else:
                    arrays = load_npz(self.dir / info["file"])
                    ids, vals = arrays["ids"], arrays["vals"]
                if ids.shape == vals.shape and len(ids) == self.count and ids.ndim == 2:
                    return ids, vals
            except Exception:
                pass
            raise self._unreadable("class file")
        from imgsearch.embed.tags import class_arrays

        return class_arrays(self.items)

    def calibration(self) -> CalibrationSample | None:
        """The rows of the calibration sample and their vectors in each space (None: a store
        written before they were stored)."""
        info = self.manifest.get("calibration")
        if not info:
            return None
        try:
            arrays = load_npz(self.dir / info["file"])
            rows = arrays.pop("rows")
            fits = rows.ndim == 1 and all(len(a) == len(rows) for a in arrays.values())
            if fits and (not len(rows) or (rows.min() >= 0 and rows.max() < self.count)):
                return CalibrationSample(rows, arrays)
        except Exception:
            pass
        raise self._unreadable("calibration.npz")

    def dup_arrays(self) -> dict[str, np.ndarray]:
        """The arrays of ``dups.npz`` (``dups.PairTable`` checks them); the manifest says it exists."""
        try:
            return load_npz(self.dir / self.manifest["dups"]["file"])
        except Exception:
            raise self._unreadable("dups.npz") from None

    def _unreadable(self, name: str) -> DamagedStore:
        return DamagedStore(f"{self.dir}: unreadable {name}; run `imgsearch index` on its folder")

    def heads(self) -> dict:
        """The heads stored in this generation, by space name."""
        from imgsearch.encoders.heads import Head

        try:
            return {
                name: Head.load(self.dir, name)
                for name, info in self.manifest["spaces"].items()
                if info.get("head")
            }
        except UserError as exc:
            raise DamagedStore(f"{exc}; run `imgsearch index` on its folder to repair it") from None

    def lexical_index(self, space: str = "lexical"):
        """The ``LexicalIndex`` of a full-text space (None: a store without it); a file that
        SQLite cannot open as one is refused."""
        import sqlite3

        from imgsearch.search.lexical import LexicalIndex

        path = self.full_text_path(space)
        if path is None:
            return None
        try:
            return LexicalIndex(path, self.count)
        except sqlite3.Error as exc:
            raise DamagedStore(
                f"{self.dir}: unreadable {space} index ({exc}); run `imgsearch index` on its folder"
            ) from None

    def check_finite(self) -> None:
        """Refuse vectors holding NaN or inf (a full scan: index time, not query time)."""
        for space, arr in self.vectors.items():
            if not np.all(np.isfinite(arr)):
                raise DamagedStore(f"{self.dir}: {space} vectors that are not finite numbers")


@dataclass
class CalibrationSample:
    """A fixed sample of the items (``fusion.calibration_sample``) and their rows in each space,
    written at index time so a query reads them at once instead of row by row."""

    rows: np.ndarray
    arrays: dict[str, np.ndarray]

    def get(self, space: str):
        """The sample's vectors in ``space`` ((ids, vals) for classes), or None."""
        if space == "classes":
            found = self.arrays.get("classes.ids"), self.arrays.get("classes.vals")
            return None if found[0] is None or found[1] is None else found
        return self.arrays.get(space)


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


def check_manifest(manifest: object, where: Path) -> None:
    """Refuse a foreign, stale or malformed manifest with a message that says what to do."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{where} is not an imgsearch store (unknown format)")
    if manifest.get("version") != VERSION:
        raise UserError(
            f"{where} was written by format version {manifest.get('version')}, this imgsearch reads "
            f"version {VERSION}: re-index with `imgsearch index DIR --rebuild`"
        )
    problem = _manifest_problem(manifest)
    if problem:
        raise DamagedStore(f"{where}: damaged index ({problem}); run `imgsearch index` on its folder")


def _manifest_problem(m: dict) -> str | None:
    if not isinstance(m.get("count"), int) or not isinstance(m.get("text_source"), dict):
        return "manifest without count or text_source"
    encoders = m.get("encoders")
    if not isinstance(encoders, dict) or not all(
        isinstance(encoders.get(role), dict) and isinstance(encoders[role].get("id"), str)
        for role in ("image", "text")
    ):
        return "manifest without encoder ids"
    if not isinstance(m.get("spaces"), dict):
        return "manifest without spaces"
    for extra in ("lexical", "ocr", "classes", "calibration", "dups"):
        info = m.get(extra)
        if info is None:
            continue
        names = [info.get(k) for k in ("file", "ids", "vals") if k in info] if isinstance(info, dict) else []
        if not names or not all(_safe_name(name) for name in names):
            return f"the {extra} entry names a file outside the store"
    for name, info in m["spaces"].items():
        if name not in spaces.BY_NAME:
            return f"unknown space {name!r}"
        if not isinstance(info, dict) or not isinstance(info.get("dim"), int):
            return f"space {name} without a dimension"
        index = info.get("index") or {}
        parts = index.get("parts") or []
        if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
            return f"space {name} has a malformed index entry"
        files = [info.get(k) for k in ("file", "head", "present", "bias")] + [index.get("file")]
        files += [p.get("file") for p in parts]
        if not _safe_name(info.get("file")) or not all(f is None or _safe_name(f) for f in files):
            return f"space {name} names a file outside the store"
    return None


def _safe_name(name: object) -> bool:
    return isinstance(name, str) and bool(_FILE_NAME.match(name))


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
        return self.root / PARTIAL

    def claim(self) -> None:
        """Make sure the root is ours to write in, before anything is written: created here, or
        marked by an earlier run, or a store of an earlier version (adopted once), or a folder
        where none of the store's names stand yet. Anything else is refused, never touched."""
        root = self.root
        if _has_mark(root / STORE_MARK):
            return
        if os.path.lexists(root) and not root.is_dir():
            raise UserError(f"{root} exists and is not a directory: choose another place with --out")
        root.mkdir(parents=True, exist_ok=True)
        foreign = _adopt_legacy(root) if _is_legacy_store(root) else _taken_names(root)
        if foreign:
            names = ", ".join(sorted(foreign))
            raise UserError(
                f"{root} already holds {names}, not made by imgsearch, where the index must write: "
                "move it away or choose another place with --out"
            )
        _write_mark(root / STORE_MARK)

    def owned_subdir(self, name: str) -> Path:
        """``root/name`` as a directory the store made (made now if missing); refused if it is not ours."""
        self.claim()
        path = self.root / name
        if not os.path.lexists(path):
            return make_owned_dir(path)
        if not is_owned(path):
            raise UserError(
                f"{path} was not made by imgsearch and the index must write there: "
                "move it away or choose another place with --out"
            )
        return path

    def current_dir(self) -> Path | None:
        """The live generation directory; a pointer that leaves the store is damage."""
        pointer = self.root / CURRENT
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise DamagedStore(f"{self.root}: unreadable {CURRENT} ({exc})") from None
        # a generation that is a link could point anywhere, and its manifest would choose the roots
        # that serve and the sheets read from
        gen_dir = self.root / name
        if not _GENERATION.match(name) or gen_dir.is_symlink() or not gen_dir.is_dir():
            raise DamagedStore(
                f"{self.root}: {CURRENT} does not name a generation of this store; "
                "run `imgsearch index` on its folder to repair it"
            )
        return self.root / name

    def last_manifest(self) -> dict | None:
        """The live generation's manifest as far as it reads, even when the rest is damaged: what a
        repairing run keeps of the user's choices (the sticky catalog)."""
        try:
            gen_dir = self.current_dir()
        except UserError:
            return None
        return _manifest_of(gen_dir) if gen_dir is not None else None

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
        # above every gen-NNNNNN here, ours or not, so the new name is free
        existing = [int(p.name[4:]) for p in self.root.glob("gen-*") if _GENERATION.match(p.name)]
        return make_owned_dir(self.root / generation_name(max(existing, default=0) + 1))

    @contextlib.contextmanager
    def building(self) -> Iterator[GenerationWriter]:
        """A writer for a new generation: published when the block ends, removed if it fails."""
        self.claim()
        writer = GenerationWriter(self.new_generation_dir())
        try:
            yield writer
            writer.finish()
        except BaseException:
            shutil.rmtree(writer.dir, ignore_errors=True)
            raise
        self.publish(writer.dir)

    def publish(self, gen_dir: Path) -> None:
        """Make ``gen_dir`` live, then drop generations other than it and the previous one."""
        try:
            previous = self.current_dir()
        except DamagedStore:
            previous = None
        atomic_write_text(self.root / CURRENT, gen_dir.name + "\n")
        keep = {gen_dir.name, previous.name if previous else ""}
        for old in self.root.iterdir():
            ours = _GENERATION.match(old.name) or _TEMP.match(old.name)  # a user's gen-2019/ stays
            if ours and old.name not in keep and is_owned(old):
                shutil.rmtree(old, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time; a second one fails at once with a clear message."""
        self.claim()
        with open(self.root / LOCK, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise UserError(f"{self.root} is being written by {holder}; wait for it to finish") from None
            f.seek(0)
            if not _LOCK_TEXT.match(f.read().strip()):  # put there since the claim: not ours to empty
                fcntl.flock(f, fcntl.LOCK_UN)
                raise UserError(f"{f.name} was not made by imgsearch: move it away or choose another --out")
            f.seek(0)
            f.truncate()
            f.write(f"imgsearch (pid {os.getpid()})")
            f.flush()
            try:
                yield
            finally:
                f.truncate(0)
                fcntl.flock(f, fcntl.LOCK_UN)


def generation_name(number: int) -> str:
    return f"gen-{number:06d}"


def _has_mark(path: Path) -> bool:
    """A marker file of ours: a plain file holding exactly what ``_write_mark`` writes."""
    try:
        return path.is_file() and not path.is_symlink() and path.read_text(encoding="utf-8") == _MARK_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def _write_mark(path: Path) -> None:
    atomic_write_text(path, _MARK_TEXT)


def is_owned(path: Path) -> bool:
    """A directory the store made (not a link to one): it and everything in it are the store's."""
    return path.is_dir() and not path.is_symlink() and _has_mark(path / OWNED_MARK)


def make_owned_dir(path: Path) -> Path:
    """Create ``path`` already holding its marker (built beside it, then renamed), so no kill ever
    leaves a directory of ours that cannot prove it; an existing ``path`` is never replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        _write_mark(tmp / OWNED_MARK)
        if os.path.lexists(path):  # rename() would silently replace an empty directory
            raise UserError(f"{path} already exists and was not made by imgsearch: move it away")
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _taken_names(root: Path) -> list[str]:
    """The store's root names that something else already holds (a folder the store has not claimed)."""
    return [name for name in ROOT_NAMES if os.path.lexists(root / name)]


def _is_legacy_store(root: Path) -> bool:
    """A store written before the markers existed. Only imgsearch writes a CURRENT that names a
    gen-NNNNNN directory whose manifest.json says format "imgsearch-store": a user's folder does not
    hold that by chance, so that CURRENT, the generations with our manifest, and the working names
    that still look as we leave them (``_adopt_legacy``) were made by an earlier imgsearch."""
    try:
        name = (root / CURRENT).read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return False
    manifest = _manifest_of(root / name)
    return bool(_GENERATION.match(name)) and manifest is not None and manifest.get("format") == FORMAT


def _adopt_legacy(root: Path) -> list[str]:
    """Mark what an earlier version made in ``root``; return the store's names that hold something
    else (an earlier version may have shared the folder with the user's files, ``--out pics``)."""
    foreign = [name for name in (STORE_MARK, OWNED_MARK) if os.path.lexists(root / name)]
    try:
        lock_text = (root / LOCK).read_text(encoding="utf-8").strip() if os.path.lexists(root / LOCK) else ""
    except (OSError, UnicodeDecodeError):
        lock_text = "?"
    if not _LOCK_TEXT.match(lock_text):
        foreign.append(LOCK)
    for name, pattern in ((PARTIAL, _CHUNK), (SHARDS, _SHARD)):
        path = root / name
        if os.path.lexists(path) and not _only(path, pattern):
            foreign.append(name)
    if foreign:
        return foreign
    for gen in root.glob("gen-*"):
        if _GENERATION.match(gen.name) and _our_manifest(gen):
            _write_mark(gen / OWNED_MARK)
    for name in (PARTIAL, SHARDS):
        if (root / name).is_dir():
            _write_mark(root / name / OWNED_MARK)
    return []


def _only(path: Path, pattern: re.Pattern) -> bool:
    """A real directory holding only entries named as the store names them (and temp leftovers)."""
    if path.is_symlink() or not path.is_dir():
        return False
    return all(pattern.match(p.name) or _TEMP.match(p.name) for p in path.iterdir())


def _our_manifest(gen_dir: Path) -> bool:
    manifest = _manifest_of(gen_dir)
    return not gen_dir.is_symlink() and manifest is not None and manifest.get("format") == FORMAT


def _manifest_of(gen_dir: Path) -> dict | None:
    """A generation's manifest as far as it reads (None: missing, unreadable, not a JSON object);
    ``read_generation`` is the strict reader that checks it."""
    try:
        manifest = json.loads((gen_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


class GenerationWriter:
    """Writes the files of one new generation; ``finish`` writes the manifest and reads it all back."""

    def __init__(self, gen_dir: Path) -> None:
        self.dir = gen_dir
        self.manifest: dict = {}
        self._sample = np.empty(0, np.int64)
        self._samples: dict[str, np.ndarray] = {}

    def start(
        self, encoders: dict[str, dict], text_source: dict, items: list[Item], roots: list[str]
    ) -> None:
        self.manifest = new_manifest(encoders, text_source, len(items))
        self.manifest["roots"] = roots
        offsets = np.zeros(len(items) + 1, np.int64)
        with open(self.dir / "items.jsonl", "wb") as f:
            for n, item in enumerate(items):
                line = (json.dumps(item.to_json()) + "\n").encode("ascii")
                f.write(line)
                offsets[n + 1] = offsets[n] + len(line)
        np.save(self.dir / "items.idx.npy", offsets)
        self._sample = fusion.calibration_sample(len(items))

    def add_space(self, name: str, vectors: np.ndarray, head=None, bias: np.ndarray | None = None) -> None:
        """The item vectors of one space (and the head that made them, and each item's bias in it,
        if any). A space where some items have no vector (all-zero rows: items without text) also
        gets the mask of the rows that have one, so a cold query need not read every vector to
        find out. ``bias``: (n, banks), see ``imgsearch.search.hubness``."""
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        np.save(self.dir / f"{name}.npy", arr)
        self._samples[name] = arr[self._sample]
        info: dict = {"file": f"{name}.npy", "dim": int(arr.shape[1])}
        present = np.any(arr != 0, axis=1)
        if not present.all():
            np.save(self.dir / f"{name}.present.npy", present)
            info["present"] = f"{name}.present.npy"
        if head is not None:
            head.save(self.dir)
            info["head"] = f"{name}.json"
        if bias is not None:
            bias = np.ascontiguousarray(bias, dtype=np.float32)
            np.save(self.dir / f"{name}.bias.npy", bias)
            self._samples[f"{name}.bias"] = bias[self._sample]
            info["bias"] = f"{name}.bias.npy"
        self.manifest["spaces"][name] = info

    def index_path(self, space: str) -> Path:
        return self.dir / f"{space}.ann"

    def add_index(self, space: str, info: dict) -> None:
        """What ``index.build_index`` built for ``space`` (an Annoy file, or exact search)."""
        file = f"{space}.ann" if info["method"] == "annoy" else None
        self.manifest["spaces"][space]["index"] = {**info, "file": file}

    def add_classes(self, ids: np.ndarray, vals: np.ndarray) -> None:
        """The class space's sparse rows (``tags.class_arrays``), so a query need not parse every item."""
        # two plain arrays, memory-mapped by queries: a query reads the rows it re-ranks, not 40 MB
        # of npz at 1M items (0.75 s cold, bench/scale_query.py)
        np.save(self.dir / "classes.ids.npy", ids.astype(np.int32))
        np.save(self.dir / "classes.vals.npy", vals.astype(np.float32))
        self._samples["classes.ids"] = ids[self._sample].astype(np.int32)
        self._samples["classes.vals"] = vals[self._sample].astype(np.float32)
        self.manifest["classes"] = {"ids": "classes.ids.npy", "vals": "classes.vals.npy"}

    def add_dups(self, arrays: dict[str, np.ndarray], features: str) -> None:
        """Duplicate candidates (``dups.PairTable.arrays``), so ``dups`` need not search for them."""
        with atomic_path(self.dir / "dups.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        self.manifest["dups"] = {"file": "dups.npz", "features": features, "pairs": len(arrays["a"])}

    def add_trust(self, record: dict) -> None:
        """How far the photo head can be trusted on this folder, and the text weights that follow
        (``imgsearch.indexing.trust``): read by every query, shown by ``query -f json``."""
        self.manifest["trust"] = record

    def add_lexical(self, texts: list[str | None], space: str = "lexical") -> None:
        """A full-text space (``lexical``: the item texts; ``ocr``: the words read off the
        photos): an FTS5 index of ``texts``, row for row."""
        from imgsearch.search import lexical

        lexical.write_index(self.dir / f"{space}.sqlite", texts)
        self.manifest[space] = {"file": f"{space}.sqlite", "tokenizer": lexical.TOKENIZER}

    def write_skipped(self, skipped: list[tuple[str, str]]) -> None:
        text = "".join(f"{_one_line(p)}\t{_one_line(r)}\n" for p, r in skipped)
        (self.dir / "skipped.tsv").write_text(text, encoding="utf-8", errors="surrogateescape")

    def finish(self) -> None:
        if self._samples:
            with open(self.dir / "calibration.npz", "wb") as f:
                np.savez(f, rows=self._sample, **self._samples)
            self.manifest["calibration"] = {"file": "calibration.npz"}
        (self.dir / "manifest.json").write_text(json.dumps(self.manifest, indent=2, ensure_ascii=True))
        read_generation(self.dir)  # refuse to publish anything a reader would refuse


def write_generation(
    store: Store,
    encoders: dict[str, dict],
    items: list[Item],
    vectors: dict[str, np.ndarray],
    *,
    text_source: dict | None = None,
    skipped: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> Path:
    """Write and publish a generation of plain vectors (no heads, exact search)."""
    with store.building() as writer:
        writer.start(encoders, text_source or {}, items, [])
        for space, arr in vectors.items():
            writer.add_space(space, arr)
        writer.write_skipped(list(skipped))
    return writer.dir


def _one_line(text: str) -> str:
    return text.replace("\t", " ").replace("\n", "\\n")


def read_generation(gen_dir: Path, *, mmap: bool = True) -> Generation:
    """Read and check a generation; anything that does not check out raises ``DamagedStore``."""
    try:
        manifest = json.loads((gen_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DamagedStore(
            f"{gen_dir}: missing or unreadable manifest.json; run `imgsearch index` on its folder"
        ) from None
    check_manifest(manifest, gen_dir)
    try:
        items = _open_items(gen_dir, eager=not mmap)
        vectors = {
            space: _read_vectors(gen_dir, info, len(items), mmap)
            for space, info in manifest["spaces"].items()
        }
    except (OSError, ValueError, TypeError, KeyError, EOFError) as exc:
        raise DamagedStore(
            f"{gen_dir}: damaged index ({exc}); run `imgsearch index` on its folder to repair it"
        ) from None
    if manifest["count"] != len(items):
        raise DamagedStore(f"{gen_dir}: item count does not match the manifest; run `imgsearch index`")
    return Generation(gen_dir, manifest, items, vectors)


def _open_items(gen_dir: Path, *, eager: bool) -> Sequence[Item]:
    """The items: parsed all at once (``eager``: index time, where every line is checked), else
    parsed one by one as they are asked for, through the line offsets in ``items.idx.npy``."""
    path, index = gen_dir / "items.jsonl", gen_dir / "items.idx.npy"
    if eager or not index.is_file():  # a store written before the offsets file: read it whole
        return _read_items(path)
    offsets = load_npy(index, mmap=True)
    size = path.stat().st_size
    if offsets.ndim != 1 or offsets.dtype != np.int64 or not len(offsets) or offsets[0] != 0:
        raise ValueError("items.idx.npy is not a list of line offsets")
    if int(offsets[-1]) != size:
        raise ValueError("items.jsonl does not end where items.idx.npy says (cut short?)")
    return LazyItems(path, offsets)


class LazyItems(Sequence[Item]):
    """The items of a generation, each parsed when first asked for: a query reads the k items it
    returns, not the whole file (≈ 130 ms at 9.6k items, seconds at 1M). Iterating parses all."""

    def __init__(self, path: Path, offsets: np.ndarray) -> None:
        self._path = path
        self._offsets = offsets
        self._bytes: mmap.mmap | bytes | None = None
        self._parsed: dict[int, Item] = {}

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = operator.index(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        item = self._parsed.get(i)
        if item is None:
            item = self._parse(i)
            self._parsed[i] = item
        return item

    def __iter__(self) -> Iterator[Item]:
        return (self[i] for i in range(len(self)))

    def _parse(self, i: int) -> Item:
        if self._bytes is None:
            with open(self._path, "rb") as f:
                self._bytes = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if len(self) else b""
        line = self._bytes[int(self._offsets[i]) : int(self._offsets[i + 1])]
        try:
            return Item.from_json(json.loads(line))
        except (ValueError, TypeError, KeyError) as exc:
            raise DamagedStore(
                f"{self._path.parent}: damaged items.jsonl at item {i} ({exc}); "
                "run `imgsearch index` on its folder to repair it"
            ) from None


def _read_items(path: Path) -> list[Item]:
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith("\n"):
                raise ValueError(f"items.jsonl is cut short at line {n}")
            if line.strip():
                items.append(Item.from_json(json.loads(line)))
    return items


def _read_vectors(gen_dir: Path, info: dict, rows: int, mmap: bool) -> np.ndarray:
    path = gen_dir / info["file"]
    if path.is_symlink():
        raise ValueError(f"{info['file']} is a link")
    arr = load_npy(path, mmap=mmap)
    if arr.dtype != np.float32 or arr.shape != (rows, info["dim"]):
        raise ValueError(f"{info['file']} does not match the manifest ({arr.dtype}, {arr.shape})")
    return arr
