"""Query filters on the EXIF of the items: --taken-after, --taken-before, --place, --camera.

Dates are YYYY, YYYY-MM or YYYY-MM-DD and name a period: ``taken_after`` keeps photos taken on
or after the start of it, ``taken_before`` those taken before the start of it, so
``--taken-after 2019-06 --taken-before 2019-09`` is June, July and August 2019. ``place``
matches a whole name in the item's place ("Intendente, Lisbon, Portugal": Lisbon, Portugal,
"Lisbon, Portugal"), ``camera`` any part of make and model ("pixel 7"); both ignore case.

A filter picks the rows before any ranking (``Searcher.search`` scores only those), so k
matches come back whenever k exist; alone, it lists its matches by date taken. Photos that lack
the EXIF a filter needs are left out and counted (``Filtered.no_exif``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import numpy as np

from imgsearch.errors import UserError

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
KEYS = ("taken_after", "taken_before", "place", "camera")


@dataclass(frozen=True)
class Filters:
    taken_after: str | None = None  # normalised: "2019", "2019-06" or "2019-06-01"
    taken_before: str | None = None
    place: str | None = None
    camera: str | None = None

    def __bool__(self) -> bool:
        return any((self.taken_after, self.taken_before, self.place, self.camera))

    def needs(self) -> list[str]:
        """The EXIF keys an item must have to be judged."""
        wanted = {"taken": self.taken_after or self.taken_before, "place": self.place, "camera": self.camera}
        return [key for key, value in wanted.items() if value]

    def matches(self, record: dict) -> bool:
        taken = record.get("taken", "")
        # ISO text compares like the dates: "2019-06-01T09:00" >= "2019-06", "2019-08-31T23:59" < "2019-09"
        if self.taken_after and taken < self.taken_after:
            return False
        if self.taken_before and taken >= self.taken_before:
            return False
        if self.place and not _place_matches(self.place, record.get("place", "")):
            return False
        return not (self.camera and self.camera.casefold() not in record.get("camera", "").casefold())


def make(
    taken_after: object = None, taken_before: object = None, place: object = None, camera: object = None
) -> Filters | None:
    """Checked filters from options or batch keys (None: no filter); bad input is one UserError line."""
    filters = Filters(
        _date_arg(taken_after, "taken-after"),
        _date_arg(taken_before, "taken-before"),
        _text_arg(place, "place"),
        _text_arg(camera, "camera"),
    )
    return filters or None


def _date_arg(value: object, name: str) -> str | None:
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    match = _DATE.match(text)
    try:
        if not match:
            raise ValueError
        date(int(match[1]), int(match[2] or 1), int(match[3] or 1))
    except ValueError:
        raise UserError(f"--{name}: {text!r} is not a date; use YYYY, YYYY-MM or YYYY-MM-DD") from None
    return text


def _text_arg(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"--{name} must be some text")
    return value.strip()


def _place_matches(wanted: str, place: str) -> bool:
    """Every comma-separated part of ``wanted`` is one of the place's names, ignoring case."""
    names = {n.strip().casefold() for n in place.split(",")}
    return all(part.strip().casefold() in names for part in wanted.split(",") if part.strip())


@dataclass
class Filtered:
    rows: np.ndarray  # int64 rows that match, in row order
    no_exif: int  # items left out for lacking the EXIF the filter needs


def select(items, filters: Filters) -> Filtered:
    """The rows of ``items`` that match (every item is read: a filter looks at them all)."""
    needs = filters.needs()
    rows, missing = [], 0
    for row, item in enumerate(items):
        record = item.exif or {}
        if not all(record.get(key) for key in needs):
            missing += 1
        elif filters.matches(record):
            rows.append(row)
    return Filtered(np.array(rows, np.int64), missing)


def by_date(items, rows: np.ndarray) -> list[int]:
    """``rows`` ordered by date taken (undated last), then by path."""
    return sorted(
        (int(r) for r in rows),
        key=lambda r: ((items[r].exif or {}).get("taken") or "9999", items[r].path),
    )
