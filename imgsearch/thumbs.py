"""Thumbnails of indexed items, made once and cached on disk inside the store (``STORE/thumbs``)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from imgsearch import sheet
from imgsearch.cache import atomic_path
from imgsearch.store import Item

THUMB_SIZE = 256  # longest side in pixels: sharp in a ~200 px grid cell on a 1.25× laptop screen
JPEG_QUALITY = 82


def thumb_key(item: Item) -> str:
    """Names the thumbnail of this exact file (path, size, mtime): a changed photo gets a new one."""
    return hashlib.sha1(repr(item.fingerprint()).encode("utf-8", "surrogateescape")).hexdigest()[:24]


def thumbnail(item: Item, cache: Path) -> tuple[bytes, str]:
    """(JPEG bytes, key) of the item's thumbnail; decoded with the same guards as embedding.

    Raises ``ImageError`` when the file is gone or unreadable. Written atomically, so
    concurrent requests for one thumbnail at worst both make it.
    """
    key = thumb_key(item)
    path = cache / key[:2] / f"{key}.jpg"
    try:
        return path.read_bytes(), key
    except FileNotFoundError:
        pass
    out = io.BytesIO()
    sheet.thumbnail(item.path, THUMB_SIZE).save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(out.getvalue())
    return out.getvalue(), key
