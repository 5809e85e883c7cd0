"""Thumbnails of indexed items, made once and cached: on disk inside the store (``STORE/thumbs``)
when it can be written, else in memory (a read-only store, a full disk still shows thumbnails)."""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections import OrderedDict
from pathlib import Path

from imgsearch.cache import atomic_path
from imgsearch.cli import sheet
from imgsearch.files.roots import Roots
from imgsearch.store import Item

THUMB_SIZE = 256  # longest side in pixels: sharp in a ~200 px grid cell on a 1.25× laptop screen
JPEG_QUALITY = 82
MEMORY_THUMBS = 1024  # kept in memory, most recent first: ~20 MB of 256 px JPEGs
log = logging.getLogger("imgsearch.serve")


def thumb_key(item: Item) -> str:
    """Names the thumbnail of this exact file (path, size, mtime): a changed photo gets a new one."""
    return hashlib.sha1(repr(item.fingerprint()).encode("utf-8", "surrogateescape")).hexdigest()[:24]


def make(item: Item, roots: Roots) -> bytes:
    """The JPEG thumbnail of the item's file, decoded with the same guards as embedding.

    Raises ``ImageError`` when the file is gone, outside ``roots`` or not an image."""
    out = io.BytesIO()
    sheet.thumbnail(roots.read(item.path), THUMB_SIZE).save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


class Thumbnails:
    """The thumbnails made so far. Disk writes are atomic, so concurrent requests for one thumbnail
    at worst both make it; a cache that cannot be written is given up once, with one log line."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self._disk = True
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        try:
            return self._path(key).read_bytes()
        except OSError:  # not made yet, or a cache that is not a readable folder
            return None

    def put(self, key: str, data: bytes) -> None:
        if self._disk:
            try:
                with atomic_path(self._path(key)) as tmp:
                    tmp.write_bytes(data)
                return
            except OSError as exc:
                self._disk = False
                log.warning("imgsearch: thumbnails kept in memory: cannot write %s (%s)", self.cache, exc)
        with self._lock:
            self._memory[key] = data
            while len(self._memory) > MEMORY_THUMBS:
                self._memory.popitem(last=False)

    def _path(self, key: str) -> Path:
        return self.cache / key[:2] / f"{key}.jpg"
