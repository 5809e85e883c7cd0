"""The provenance a recipe writes beside what it builds, and writing an artifact only when it changed.

Each folder of ``imgsearch/pretrained/`` and ``imgsearch/data/`` has one ``provenance.json``:
``{"artifacts": {RECIPE: RECORD}}``, a record per recipe that wrote files there:

- ``recipe``, ``command``: the script and the command line that rebuild the files;
- ``files``: each file's name and sha256 (``tests/test_provenance.py`` checks every shipped file
  has one, and that it matches);
- ``inputs``: the shared data and committed lists read, each with its sha256 (a folder of images:
  its file count, bytes, and the sha256 of its sorted ``name<TAB>size`` list);
- ``commit``, ``dirty``, ``date``, ``machine``, ``versions``: what made them;
- ``development``: the figures the recipe measured (never held-out figures);
- ``rebuilt``: true where the recipe ran; false where the record describes a file made before the
  recipe existed (``note`` says what is known of it).

A rebuild that gives the same artifact as the one on disk (JSON equal but for its dates and
machine; arrays equal) leaves the file's bytes alone, so ``make artifacts`` on unchanged inputs
changes no shipped file and no index re-derives; ``reproduced`` in the record says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from recipes.splits import ROOT, SHARED

NAME = "provenance.json"
PACKAGES = ("numpy", "tensorflow", "keras", "keras-hub", "ai-edge-litert", "tokenizers", "pillow", "wn")
# What a rebuild may change without changing the artifact: when and where it ran.
VOLATILE = frozenset({"date", "machine", "seconds"})


def shared_or_skip(*paths: Path) -> None:
    """Exit 0 with one line where the shared data (or one of ``paths``) is absent."""
    for path in (SHARED, *paths):
        if not path.exists():
            print(f"skipped: {_rel(path)} is not present (recipes rebuild from the shared data sets)")
            sys.exit(0)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _rel(path: Path) -> str:
    return os.path.relpath(Path(path).resolve(), ROOT)


def file_input(path: Path) -> dict:
    return {"sha256": sha256(path), "bytes": path.stat().st_size}


def listing(paths: list[Path], base: Path) -> dict:
    """An image folder (or a chosen part of one) as an input: count, bytes, and the sha256 of the
    sorted ``name<TAB>size`` lines (names relative to ``base``)."""
    lines = sorted(f"{Path(p).relative_to(base).as_posix()}\t{Path(p).stat().st_size}" for p in paths)
    total = sum(int(line.rsplit("\t", 1)[1]) for line in lines)
    return {
        "files": len(lines),
        "bytes": total,
        "listing_sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
    }


def folder_input(folder: Path, pattern: str = "*.jpg") -> dict:
    return listing(sorted(folder.rglob(pattern)), folder)


def inputs_of(files: dict[str, Path] | None = None, folders: dict[str, dict] | None = None) -> dict:
    """``{path relative to the project: description}`` for input files (hashed) and folders
    (``listing`` results, keyed by their path)."""
    out = {_rel(p): file_input(p) for p in (files or {}).values()}
    out |= {_rel(Path(k)): v for k, v in (folders or {}).items()}
    return out


def git_state() -> tuple[str | None, bool | None]:
    """(HEAD commit, whether tracked files outside the artifact folders differ from it)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":!imgsearch/pretrained",
                ":!imgsearch/data",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, bool(status.strip())


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    py = sys.version.split()[0]
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {py}"


def command() -> str:
    """The command line that ran this recipe, as one would type it from the project root."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(".py"):
        argv[0] = _rel(Path(argv[0]))
        return shlex.join(["python", *argv])
    return shlex.join(["python", *argv])


# --- writing an artifact only when it changed -----------------------------------------------------


def _strip(value, volatile: frozenset[str]):
    if isinstance(value, dict):
        return {k: _strip(v, volatile) for k, v in value.items() if k not in volatile}
    if isinstance(value, list):
        return [_strip(v, volatile) for v in value]
    return value


def same_json(old: Path, new: dict, volatile: frozenset[str] = VOLATILE) -> bool:
    try:
        return _strip(json.loads(old.read_text(encoding="utf-8")), volatile) == _strip(
            json.loads(json.dumps(new)), volatile
        )
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def same_arrays(old: Path, new: dict[str, np.ndarray]) -> bool:
    try:
        with np.load(old) as data:
            return set(data.files) == set(new) and all(
                data[k].dtype == np.asarray(v).dtype and np.array_equal(data[k], v) for k, v in new.items()
            )
    except (FileNotFoundError, ValueError, zipfile.BadZipFile):
        return False


def write_json(path: Path, data: dict, indent: int = 2, volatile: frozenset[str] = VOLATILE) -> bool:
    """Write ``data`` unless the file already says the same (but for ``volatile`` keys); True: written."""
    if same_json(path, data, volatile):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")
    return True


def write_npz(path: Path, arrays: dict[str, np.ndarray], compressed: bool = True) -> bool:
    if same_arrays(path, arrays):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return True


def max_abs_diff(path: Path, array: np.ndarray) -> float | None:
    """The largest difference between the array in ``path`` and ``array`` (None: no such file, or
    another shape or dtype)."""
    try:
        old = np.load(path)
    except (FileNotFoundError, ValueError):
        return None
    if old.shape != array.shape or old.dtype != array.dtype:
        return None
    return float(np.abs(old.astype(np.float64) - array.astype(np.float64)).max()) if old.size else 0.0


def write_npy(path: Path, array: np.ndarray, atol: float = 0.0) -> bool:
    """Write ``array`` unless the file holds the same one (same shape and dtype, every value within
    ``atol``); True: written."""
    diff = max_abs_diff(path, array)
    if diff is not None and diff <= atol:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return True


def write_text(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


# --- the record ---------------------------------------------------------------------------------


def load(folder: Path) -> dict:
    path = folder / NAME
    if not path.exists():
        return {"artifacts": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def record(
    folder: Path,
    recipe: str,
    files: list[Path],
    *,
    inputs: dict,
    development: dict | None = None,
    written: dict[str, bool] | None = None,
    cmd: str | None = None,
    extra: dict | None = None,
    tolerance: str | None = None,
) -> dict:
    """Write (or replace) ``recipe``'s record in ``folder/provenance.json``; return it.

    ``written``: file name → whether this run wrote it (False: the rebuilt artifact equalled the
    one on disk, which was kept)."""
    commit, dirty = git_state()
    entry = {
        "recipe": f"recipes/{recipe}.py",
        "command": cmd or command(),
        "rebuilt": True,
        "files": {f.name: sha256(f) for f in files},
        "inputs": inputs,
        "commit": commit,
        "dirty": dirty,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "development": development or {},
    }
    if written is not None:
        kept = sorted(n for n, w in written.items() if not w)
        entry["reproduced"] = {
            "kept": kept,
            "how": "rebuilt and compared with the file on disk: JSON equal but for its date, machine "
            "and seconds; arrays equal (same dtype and values); text byte for byte. A kept file's "
            "bytes (and sha256) are the ones shipped before this run.",
        }
        if tolerance:
            entry["reproduced"]["tolerance"] = tolerance
    entry |= extra or {}
    data = load(folder)
    data.setdefault("artifacts", {})[recipe] = entry
    data["artifacts"] = dict(sorted(data["artifacts"].items()))
    (folder / NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    for f in files:
        state = "kept (same as before)" if written is not None and not written.get(f.name, True) else "wrote"
        print(f"{state} {_rel(f)}")
    print(f"provenance: {_rel(folder / NAME)} [{recipe}]")
    return entry


def last_commit(path: Path) -> tuple[str | None, str | None]:
    """(commit, ISO date) of the last commit that changed ``path``."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%H %cI", "--", str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return (out[0], out[1]) if len(out) == 2 else (None, None)


def describe(
    folder: Path, recipe: str, files: list[Path], *, cmd: str, inputs: dict, development: dict, note: str
) -> dict:
    """A record for files made before their recipe existed, not rebuilt now: the recipe's command,
    the inputs as they are today, the commit that last changed the files (and its date), and
    ``note`` (what is known of how they were made)."""
    commits = {last_commit(f) for f in files}
    commit, date = max(commits, key=lambda c: c[1] or "")
    entry = {
        "recipe": f"recipes/{recipe}.py",
        "command": cmd,
        "rebuilt": False,
        "files": {f.name: sha256(f) for f in files},
        "inputs": inputs,
        "commit": commit,
        "dirty": None,
        "date": date,
        "versions": {},
        "development": development,
        "note": note,
    }
    data = load(folder)
    data.setdefault("artifacts", {})[recipe] = entry
    data["artifacts"] = dict(sorted(data["artifacts"].items()))
    (folder / NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"described {', '.join(_rel(f) for f in files)} in {_rel(folder / NAME)} [{recipe}]")
    return entry
