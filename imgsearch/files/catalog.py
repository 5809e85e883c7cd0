"""Catalog scanning (which files are images, and their fingerprints) and metadata join.

An item is keyed by its resolved path; (size, mtime) is its fingerprint, so
re-indexing embeds only new or changed files (rclip's approach). Metadata
(CSV or JSON lines) joins onto items by path, file name, or id = file stem.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imgsearch.errors import UserError
from imgsearch.files import exclusions
from imgsearch.files.images import is_image_path

JOIN_COLUMNS = ("path", "filename", "file", "image", "id")


@dataclass(frozen=True)
class FileEntry:
    path: str  # absolute, normalised path
    size: int
    mtime: float

    @property
    def id(self) -> str:
        return item_id(self.path)

    def fingerprint(self) -> tuple[str, int, float]:
        return (self.path, self.size, self.mtime)


def item_id(path: str) -> str:
    """Stable short id of an item: the hash of its resolved path."""
    return hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _walk(root: Path, skipped: list[tuple[str, str]]) -> Iterator[Path]:
    """The non-hidden files under ``root``, depth first, by name. A stack, not recursion: Python 3.11's
    ``os.walk`` recurses, so a folder 10,000 levels deep ended the run. A folder that cannot be
    listed (too long a path, no permission) goes into ``skipped``, where os.walk dropped it quietly.
    Links to folders are not followed, as with os.walk: they could loop."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted((e for e in listing if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as exc:
            skipped.append((os.path.abspath(folder), f"folder not searched: {_os_reason(exc, folder)}"))
            continue
        folders = []
        for entry in entries:
            if not _is_dir(entry):
                yield Path(entry.path)
            elif not entry.is_symlink():
                folders.append(Path(entry.path))
        stack.extend(reversed(folders))


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _path_max() -> int:
    """The longest path the system opens, counting its closing NUL (4,096 on Linux)."""
    try:
        return os.pathconf("/", "PC_PATH_MAX")
    except (OSError, ValueError):
        return 4096


def _os_reason(exc: OSError, path: Path) -> str:
    """Why a path cannot be used, in words; a path over the system's limit (4,096 bytes on Linux)
    says so, with its length, rather than the bare "File name too long"."""
    if exc.errno == errno.ENAMETOOLONG:
        size = len(os.fsencode(os.path.abspath(path)))
        return f"path too long ({size:,} bytes; the system allows {_path_max() - 1:,})"
    if exc.errno == errno.EACCES:
        return "permission denied"
    return f"cannot read ({exc.strerror or exc})"


def file_entry(path: Path) -> FileEntry | str:
    """The file's entry, or why it cannot be one. Only regular files (or links to them) are
    opened: reading a FIFO named ``pipe.jpg`` would block forever, a device would never end."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "broken symbolic link" if path.is_symlink() else "no such file or directory"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        return _os_reason(exc, path)
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file ({_kind(st.st_mode)})"
    # abspath, not resolve(): a symlinked catalog keeps the names the user gave it
    return FileEntry(os.path.abspath(path), st.st_size, st.st_mtime)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory")):
        if test(mode):
            return name
    return "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"


@dataclass
class Scan:
    entries: list[FileEntry]  # by path
    skipped: list[tuple[str, str]]  # (path, reason)
    excluded: list[str] = field(default_factory=list)  # image files left out (``imgsearch.files.exclusions``)
    ignore_files: list[str] = field(default_factory=list)  # the .imgsearchignore files that applied


def scan(inputs: Iterable[str], stdin: Iterable[str] | None = None, exclude: Sequence[str] = ()) -> Scan:
    """Expand directories (recursive, hidden entries skipped), files and ``-`` (paths on stdin).

    ``skipped`` holds (path, reason) for inputs that named nothing usable and for image-named
    entries that are not regular files (FIFOs, sockets, devices, broken links, link loops). Files
    named explicitly are kept whatever their suffix (decoding decides); files found in directories
    must look like images, and are left out when ``exclude`` (gitignore lines) or the folder's
    ``.imgsearchignore`` matches their path relative to the folder.
    """
    entries: dict[str, FileEntry] = {}
    found = Scan([], [])
    for raw in expand_stdin(inputs, stdin):
        path = Path(raw).expanduser()
        for candidate in _candidates(path, list(exclude), found) if path.is_dir() else [path]:
            entry = file_entry(candidate)
            if isinstance(entry, FileEntry):
                entries[entry.path] = entry
            else:
                found.skipped.append((raw if candidate is path else os.path.abspath(candidate), entry))
    found.entries = sorted(entries.values(), key=lambda e: e.path)
    return found


def _candidates(folder: Path, exclude: list[str], found: Scan) -> Iterator[Path]:
    """The image files under ``folder`` that no exclusion matches (those go into ``found.excluded``)."""
    rules = exclusions.matcher(folder, exclude)
    if rules is not None and rules.ignore_file:
        found.ignore_files.append(rules.ignore_file)
    for path in _walk(folder, found.skipped):
        if not is_image_path(path):
            continue
        if rules is not None and rules.excludes(path):
            found.excluded.append(os.path.abspath(path))
        else:
            yield path


def expand_stdin(inputs: Iterable[str], stdin: Iterable[str] | None) -> Iterator[str]:
    for raw in inputs:
        if raw == "-":
            for line in stdin if stdin is not None else sys.stdin:
                line = line.rstrip("\r\n")
                if line:
                    yield line
        else:
            yield raw


@dataclass
class Metadata:
    """Rows of a catalog file, looked up by path, file name or id (file stem)."""

    rows: dict[str, dict[str, str]]
    columns: list[str]
    source: str

    def lookup(self, path: str) -> dict[str, str] | None:
        p = Path(path)
        for key in (str(p), p.name, p.stem):
            if key in self.rows:
                return self.rows[key]
        return None

    def narrowed(self, columns: list[str]) -> Metadata:
        """The same lookups with only ``columns`` kept: what a pipeline ships to its workers."""
        kept: dict[int, dict[str, str]] = {}
        rows = {
            key: kept.setdefault(id(row), {c: row.get(c) or "" for c in columns})
            for key, row in self.rows.items()
        }
        return Metadata(rows, list(columns), self.source)

    def text(self, path: str, columns: list[str]) -> str | None:
        row = self.lookup(path)
        if row is None:
            return None
        parts = [str(row.get(c) or "").strip() for c in columns]
        joined = " ".join(p for p in parts if p)
        return joined or None


def read_metadata(path: Path, text_columns: list[str]) -> Metadata:
    """Read a CSV or JSON-lines catalog and index its rows for joining.

    Strict, because a catalog mistake otherwise shows up only as wrong titles in search results:
    a malformed row (a quote left open, a stray quote, more or fewer fields than the header, a
    line that is not a JSON object) and two different rows for the same image (same ``id``, or
    the same ``path``/``filename``/``file``/``image`` once resolved) are errors that name the
    line. Rows that repeat another row exactly are harmless and pass.
    """
    if not path.is_file():
        raise UserError(f"metadata file not found: {path}")
    try:
        rows = list(_read_rows(path))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the catalog as UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not rows:
        raise UserError(f"metadata file {path} has no rows")
    columns = list(dict.fromkeys(column for _, row in rows for column in row))
    unknown = [c for c in text_columns if c not in columns]
    if unknown:
        raise UserError(f"{path}: no column {', '.join(unknown)} (columns: {', '.join(columns)})")
    keys = [c for c in JOIN_COLUMNS if c in columns]
    if not keys:
        raise UserError(f"{path}: needs one of the columns {', '.join(JOIN_COLUMNS)} to join rows to images")
    return Metadata(_join_table(path, rows, keys), columns, os.path.abspath(path))


def _join_table(
    path: Path, rows: list[tuple[int, dict[str, str]]], keys: list[str]
) -> dict[str, dict[str, str]]:
    """Every lookup key of every row. Two different rows for one image are an error, not a
    first-row-wins (or last-row-wins) rule: either rule quietly gives some images the wrong text
    (a Flickr-style file with five captions per image would index the first caption only), the
    fix (one row per image, or texts joined into one cell) is the user's choice, and the old index
    keeps answering meanwhile. A warning would scroll by, then repeat on every sticky re-index."""
    table: dict[str, dict[str, str]] = {}
    first: dict[tuple[str, str], tuple[int, dict[str, str]]] = {}
    for line, row in rows:
        for key in keys:
            value = str(row.get(key) or "").strip()
            if not value:
                continue
            same = value if key == "id" else os.path.abspath(path.parent / value)
            seen_line, seen_row = first.setdefault((key, same), (line, row))
            if seen_row != row:
                raise UserError(
                    f"{path}:{line}: {key} {value!r} is also on line {seen_line}, with other values; "
                    "give each image one row"
                )
            table.setdefault(value, row)
            if key != "id":
                resolved = Path(same)
                table.setdefault(str(resolved), row)
                table.setdefault(resolved.name, row)
    return table


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of each row; the line is where the row starts, for error messages."""
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        yield from _json_rows(path)
    else:
        yield from _csv_rows(path)


def _json_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield n, {k: "" if v is None else str(v) for k, v in json.loads(line).items()}
                except (json.JSONDecodeError, AttributeError):
                    raise UserError(f"{path}:{n}: not a JSON object per line") from None


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV with the header's number of fields. ``strict`` makes a quote that is never
    closed (or is followed by text) an error instead of one title that swallows the rows after
    it; a quote that a later quote closes by chance shows up as a row with the wrong field count."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, strict=True)
        header: list[str] | None = None
        start = 1
        try:
            for fields in reader:
                if any(field.strip() for field in fields):  # blank lines are no rows
                    if header is None:
                        header = fields
                    elif len(fields) != len(header):
                        raise UserError(
                            f"{path}:{start}: {len(fields)} fields where the header has {len(header)} "
                            "(a stray comma, or a quote left open?)"
                        )
                    else:
                        yield start, dict(zip(header, fields, strict=True))
                start = reader.line_num + 1
        except csv.Error as exc:
            raise UserError(f"{path}:{start}: a quote left open or stray in this row ({exc})") from None
