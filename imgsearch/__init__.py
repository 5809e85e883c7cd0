"""imgsearch: command-line image search by example, by words, or both."""

__version__ = "0.1.0"

# TensorFlow bundles its own SQLite (3.50, without FTS5) and its symbols win if it loads first:
# the lexical space's FTS5 table then fails with "no such module: fts5". Loading Python's sqlite3
# (the system library, with FTS5) before anything else keeps it (tests/test_fusion.py checks).
import sqlite3 as _sqlite3  # noqa: F401
