"""imgsearch: image search by example, by words, or both — from the shell or from Python.

>>> from imgsearch import Index                                   # doctest: +SKIP
>>> Index.open("~/Pictures").search(text="a red bag", k=5)        # doctest: +SKIP

The names below load on first use, so ``import imgsearch.store`` (or ``imgsearch --help``)
does not load the search code with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

# TensorFlow bundles its own SQLite (3.50, without FTS5) and its symbols win if it loads first:
# the lexical space's FTS5 table then fails with "no such module: fts5". Loading Python's sqlite3
# (the system library, with FTS5) before anything else keeps it (tests/test_fusion.py checks).
import sqlite3 as _sqlite3  # noqa: F401

__all__ = ["DamagedStore", "DuplicateGroup", "Hit", "Index", "Item", "UserError", "__version__"]

_HOMES = {
    "Index": "imgsearch.api",
    "DuplicateGroup": "imgsearch.api",
    "Hit": "imgsearch.search.searcher",
    "Item": "imgsearch.store",
    "DamagedStore": "imgsearch.store",
    "UserError": "imgsearch.errors",
}

if TYPE_CHECKING:
    from imgsearch.api import DuplicateGroup, Index
    from imgsearch.errors import UserError
    from imgsearch.search.searcher import Hit
    from imgsearch.store import DamagedStore, Item


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'imgsearch' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
