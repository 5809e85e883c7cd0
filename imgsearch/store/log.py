"""The feedback log: every query that ``serve`` answers, and every ``query --batch --log`` line
that carries likes, appended to ``STORE/feedback.jsonl`` (JSON lines) for ``train --from-log``.

Append-only: each record is one ``write`` of one whole line under an exclusive ``flock``, so
writers (a ``serve`` and a batch run) never interleave, and a process killed mid-write leaves
at most a torn last line, which readers skip. The first line is a header, so the store only
ever appends to a log it wrote; the file is opened without following links (a store from
someone else cannot point it at another file). Records name items by id and keep the query's
words; query photos are kept as the id of the indexed item they are, or as ``null`` (an
upload): never a copy of an image.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from imgsearch.errors import UserError
from imgsearch.store.format import LOG, Store

HEADER = {"format": "imgsearch-feedback-log", "version": 1}
_HEADER_LINE = json.dumps(HEADER, sort_keys=True) + "\n"


@dataclass
class Record:
    """One query as a user ran it: what they asked and which results they judged."""

    via: str  # "serve" or "batch"
    generation: str  # the index generation that answered
    texts: list[str] = field(default_factory=list)
    images: list[str | None] = field(default_factory=list)  # indexed item ids; None: an upload
    like: list[str] = field(default_factory=list)  # item ids
    unlike: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)  # the ids answered, best first

    def to_json(self) -> dict:
        return {"t": datetime.now(UTC).isoformat(timespec="seconds"), **self.__dict__}


class FeedbackLog:
    """The log of one store; ``append`` writes one record, ``records`` reads them back."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path = store.root / LOG
        self.skipped = 0  # lines ``records`` could not read (a torn last line after a kill)

    def append(self, record: Record) -> int:
        """Append ``record``; the bytes written (header included, the first time)."""
        line = json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise UserError(f"cannot write the feedback log {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise UserError(f"{self.path} is not a feedback log imgsearch wrote; move it away")
            data = line.encode("utf-8")
            if info.st_size == 0:
                data = _HEADER_LINE.encode("utf-8") + data
            elif os.pread(fd, len(_HEADER_LINE.encode("utf-8")), 0) != _HEADER_LINE.encode("utf-8"):
                raise UserError(f"{self.path} is not a feedback log imgsearch wrote; move it away")
            os.write(fd, data)
            return len(data)
        finally:
            os.close(fd)

    def records(self) -> Iterator[dict]:
        """The records, oldest first; lines that are not whole records are counted in ``skipped``."""
        self.skipped = 0
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise UserError(f"cannot read the feedback log {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as f:
            if f.readline() != _HEADER_LINE:
                raise UserError(f"{self.path} is not a feedback log imgsearch wrote")
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    self.skipped += 1
                    continue
                if isinstance(record, dict) and line.endswith("\n"):
                    yield record
                else:
                    self.skipped += 1

    def summary(self) -> dict:
        """What the log holds (``imgsearch log``): queries, likes, unlikes, items touched, when, by whom."""
        queries = liked = unliked = with_likes = 0
        touched: set[str] = set()
        first = last = None
        via: Counter[str] = Counter()
        for record in self.records():
            queries += 1
            like, unlike = record.get("like") or [], record.get("unlike") or []
            liked, unliked, with_likes = liked + len(like), unliked + len(unlike), with_likes + bool(like)
            touched.update(i for i in like + unlike if isinstance(i, str))
            first, last = first or record.get("t"), record.get("t")
            via[str(record.get("via"))] += 1
        return {
            "log": str(self.path),
            "queries": queries,
            "queries_with_likes": with_likes,
            "likes": liked,
            "unlikes": unliked,
            "items_touched": len(touched),
            "first": first,
            "last": last,
            "via": dict(via),
            "unreadable_lines": self.skipped,
        }

    def clear(self) -> bool:
        """Remove the log (True), if there is one and imgsearch wrote it."""
        if not os.path.lexists(self.path):
            return False
        list(self.records())  # refuses a file that is not our log
        self.path.unlink()
        return True
