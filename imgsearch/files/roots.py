"""The indexed roots: the only folders that ``serve``, ``query --sheet`` and ``query --preview`` read.

An index names its files in ``items.jsonl``, and whoever can write that file could name any
path (``/home/me/.ssh/...``, ``photos/../../etc``, a link in the folder that points out of it).
Every read for showing an item therefore goes through ``Roots``: the path must resolve, after
symbolic links, under one of the folders the manifest records (``manifest["roots"]``, the
folders the items were found in). Anything else reads as a missing file, with the same words
("not found"), so an answer never tells whether some other path exists.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from imgsearch.files.images import MAX_STREAM_BYTES, ImageError, read_stream

NOT_FOUND = "not found"
# a read is refused above this (the most bytes one image within Pillow's pixel limit takes, as for
# `query -`): a 3 GB sparse file named huge.jpg is not read into memory to find out
MAX_FILE_BYTES = MAX_STREAM_BYTES
_PROC_FD = "/proc/self/fd"  # Linux: where an open file descriptor says which file it really is


def covering_roots(paths: Iterable[str]) -> list[str]:
    """The folders holding ``paths``, none inside another: what a manifest records as its roots."""
    kept: set[str] = set()
    for folder in sorted({os.path.dirname(p) for p in paths}, key=len):
        if not any(parent in kept for parent in _ancestors(folder)):
            kept.add(folder)
    return sorted(kept)


def _ancestors(path: str) -> Iterable[str]:
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


class Roots:
    """Reads confined to the indexed roots; every refusal is ``ImageError("not found")``."""

    def __init__(self, roots: Iterable[str]) -> None:
        # resolved once: a root that is itself a link (~/pics -> /data/pics) holds what it points to
        self.real = [os.path.realpath(r) for r in roots if isinstance(r, str) and os.path.isabs(r)]

    @classmethod
    def of(cls, gen) -> Roots:
        """The roots of a store generation (``Generation.roots``)."""
        return cls(gen.roots)

    def resolve(self, path: str) -> str:
        """``path`` after every symbolic link, if that lies under a root; else "not found"."""
        try:
            real = os.path.realpath(path)
        except (OSError, ValueError):  # a link loop, a NUL in a crafted name
            raise ImageError(NOT_FOUND) from None
        if not any(_inside(real, root) for root in self.real):
            raise ImageError(NOT_FOUND)
        return real

    def exists(self, path: str) -> bool:
        """A regular file under a root (what a search shows; the rest it leaves out as gone)."""
        try:
            return stat.S_ISREG(os.stat(self.resolve(path)).st_mode)
        except (ImageError, OSError, ValueError):
            return False

    def read(self, path: str) -> bytes:
        """The bytes of the file ``path`` names, if it is a regular file under a root."""
        real = self.resolve(path)
        try:
            # no link may be followed now: one swapped in since resolve() fails instead
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (OSError, ValueError):
            raise ImageError(NOT_FOUND) from None
        with os.fdopen(fd, "rb") as f:
            if not self._still_inside(fd):
                raise ImageError(NOT_FOUND)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
                raise ImageError(NOT_FOUND)
            try:
                return read_stream(f, MAX_FILE_BYTES)  # bounded: it may have grown since fstat
            except (OSError, ImageError):
                raise ImageError(NOT_FOUND) from None

    def _still_inside(self, fd: int) -> bool:
        """Where the open file really is (a folder above it may have been swapped for a link
        between resolve() and open); without /proc, the resolve() check stands alone."""
        try:
            opened = os.readlink(f"{_PROC_FD}/{fd}")
        except OSError:
            return True
        return any(_inside(opened, root) for root in self.real)
