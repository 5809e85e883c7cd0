"""`imgsearch index DIR --watch`: keep an index current while the folder changes.

The folder is watched (watchdog: inotify on Linux, FSEvents on macOS) and re-indexed once its
changes have settled for a moment, so a copy of 500 photos is one re-index, not 500. Each
re-index is a plain incremental `index`: it embeds what changed and publishes a generation
atomically, as always, so `query` and `serve` (which re-opens new generations by itself) see the
change, and a watcher killed mid-run loses nothing: the next `index` resumes.

Reading a file is not a change: the re-index itself opens every new image, and a watcher that
counted those opens would re-index forever. Changes inside the store are not the folder's either.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

SETTLE_S = 2.0  # quiet time after the last change before re-indexing (a copy in progress keeps it busy)
# watchdog event types that change nothing: a file opened or closed without writing
READS = ("opened", "closed_no_write")


class Changes:
    """When the folder last changed (outside the store), as watchdog reports it."""

    def __init__(self, store_dir: Path) -> None:
        self.store = os.path.realpath(store_dir)
        self.lock = threading.Lock()
        self.last: float | None = None

    def dispatch(self, event) -> None:  # watchdog's handler interface
        if event.event_type in READS:
            return
        # a folder's own "modified" only echoes an entry created, deleted or moved in it, which
        # comes as its own event (and the store's folder appearing must not count as a change)
        if event.is_directory and event.event_type == "modified":
            return
        paths = [p for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        if all(self._in_store(os.fsdecode(p)) for p in paths):
            return
        with self.lock:
            self.last = time.monotonic()

    def _in_store(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self.store or real.startswith(self.store + os.sep)

    def settled(self, settle: float) -> bool:
        """True once per burst of changes, when none came for ``settle`` seconds."""
        with self.lock:
            if self.last is None or time.monotonic() - self.last < settle:
                return False
            self.last = None
            return True


def watch_folder(
    folder: Path,
    store_dir: Path,
    reindex: Callable[[], None],
    settle: float = SETTLE_S,
    stop: threading.Event | None = None,
) -> None:
    """Call ``reindex`` after each settled burst of changes in ``folder`` until ``stop`` is set
    (or Ctrl-C, which the caller turns into a clean exit)."""
    from watchdog.observers import Observer

    stop = stop or threading.Event()
    changes = Changes(store_dir)
    observer = Observer()
    observer.schedule(changes, str(folder), recursive=True)
    observer.start()
    try:
        while not stop.wait(min(0.2, settle / 4)):
            if changes.settled(settle):
                reindex()
    finally:
        observer.stop()
        observer.join()
