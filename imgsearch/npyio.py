"""Reading ``.npy``/``.npz`` files safely from several threads.

numpy parses array headers with ``ast.literal_eval``, which CPython 3.11 breaks when two threads
run it at once ("SystemError: AST constructor recursion depth mismatch", CPython gh-106905): a
server, or queries running while ``index`` publishes, hit it. Every read of an array file goes
through here and holds one lock while headers are parsed; ``.npy`` files are memory-mapped, so
the lock is held for microseconds.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

_LOCK = threading.Lock()


def load_npy(path: Path, *, mmap: bool = False) -> np.ndarray:
    """One array, never unpickled; memory-mapped with ``mmap``."""
    with _LOCK:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read at once (headers are parsed member by member)."""
    with _LOCK, np.load(path, allow_pickle=False) as z:
        return {name: z[name] for name in z.files}
