"""Files an index leaves out: ``--exclude GLOB`` and a ``.imgsearchignore`` at the root of the folder.

Both are gitignore lines (pathspec's ``GitIgnoreSpec``: ``*.gif``, ``raw/``, ``/top.png``,
``!keep.jpg``), matched against each file's path relative to the folder given, so a rule means
the same wherever the folder is mounted. ``--exclude`` is kept in the manifest and applies again
on later runs (like ``--meta``); the ignore file lives in the folder and is read on every run.
Files named explicitly (not found by walking a folder) are never excluded: naming one is asking
for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from imgsearch.errors import UserError

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

IGNORE_FILE = ".imgsearchignore"


class Matcher:
    """Which files under one folder are excluded."""

    def __init__(self, root: Path, lines: list[str], spec: GitIgnoreSpec, ignore_file: str | None) -> None:
        self.root = root
        self.lines = tuple(lines)  # the gitignore lines ``spec`` is made of (the Beam workers get these)
        self._spec = spec
        self.ignore_file = ignore_file  # the .imgsearchignore read (absolute), if any

    def excludes(self, path: Path) -> bool:
        return bool(self._spec.match_file(os.path.relpath(path, self.root)))


def ignore_lines(root: Path) -> list[str] | None:
    """The lines of ``root``'s ignore file, or None when it has none."""
    path = root / IGNORE_FILE
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except OSError as exc:  # a folder by that name, no permission: say so rather than index it all
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None


def matcher(root: Path, globs: list[str]) -> Matcher | None:
    """The exclusions under ``root`` (``globs``, then its ignore file's lines), or None if none."""
    from_file = ignore_lines(root) or []
    lines = [*globs, *from_file]
    if not any(line.strip() and not line.lstrip().startswith("#") for line in lines):
        return None
    where = ["--exclude"] * len(globs) + [f"{root / IGNORE_FILE}:{n}" for n in range(1, len(from_file) + 1)]
    ignore_file = os.path.abspath(root / IGNORE_FILE) if from_file else None
    return Matcher(root, lines, compile_lines(lines, where), ignore_file)


def compile_lines(lines: list[str], where: list[str]) -> GitIgnoreSpec:
    """``lines`` as one gitignore spec. A line pathspec cannot read is a one-line error that says
    where it came from (``where``, one per line), not a rule dropped quietly: the files it was
    meant to leave out would be indexed."""
    from pathspec import GitIgnoreSpec

    try:
        return GitIgnoreSpec.from_lines(lines)
    except ValueError:  # pathspec's GitIgnorePatternError
        for line, origin in zip(lines, where, strict=True):
            try:
                GitIgnoreSpec.from_lines([line])
            except ValueError:
                raise UserError(f"{origin}: {line!r} is not a gitignore pattern") from None
        raise


def check_globs(globs: list[str]) -> None:
    """Refuse a bad ``--exclude`` before anything is scanned."""
    compile_lines(globs, ["--exclude"] * len(globs))
