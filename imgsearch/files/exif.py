"""When, where, which camera: the EXIF of each photo, read once at index time.

Each item keeps an ``exif`` record (``store.Item.exif``)::

    {"taken": "2019-07-14T10:22:01", "camera": "Google Pixel 7", "lens": "...",
     "gps": [38.72, -9.14], "place": "Intendente, Lisbon, Portugal"}

with only the keys the file had; ``{}`` means "read, nothing there", and a missing record
(``None``, stores written before this) means "never read": ``fill`` reads those once, so an old
store gains its EXIF on the next ``imgsearch index`` without re-embedding anything, and an
unchanged file whose record exists is never opened again.

Places come from GPS through ``reverse_geocode`` (GeoNames cities of 1,000+ people, shipped in
its wheel: offline), imported only when some photo has GPS: never at query time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from imgsearch.store import Item

EXIF_IFD = 0x8769
GPS_IFD = 0x8825
DATE_TIME_ORIGINAL = 0x9003
DATE_TIME_DIGITIZED = 0x9004
DATE_TIME = 0x0132  # IFD0: when the file was last changed; the fallback cameras without 0x9003 use
MAKE, MODEL, LENS_MODEL = 0x010F, 0x0110, 0xA434
# the nearest GeoNames city farther than this is not where the photo was (open sea, a bad fix)
MAX_PLACE_KM = 100.0
_EXIF_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


def read_file(path: str) -> dict:
    """The EXIF record of one file ({} when it has none or cannot be read): headers only, no pixels."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            exif = img.getexif()
            return _record(exif, exif.get_ifd(EXIF_IFD), exif.get_ifd(GPS_IFD))
    except Exception:  # a file without readable EXIF is simply a photo without EXIF
        return {}


def _record(ifd0, sub: dict, gps: dict) -> dict:
    record: dict = {}
    taken = _date(sub.get(DATE_TIME_ORIGINAL) or sub.get(DATE_TIME_DIGITIZED) or ifd0.get(DATE_TIME))
    if taken:
        record["taken"] = taken
    camera = _camera(_text(ifd0.get(MAKE)), _text(ifd0.get(MODEL)))
    if camera:
        record["camera"] = camera
    lens = _text(sub.get(LENS_MODEL))
    if lens:
        record["lens"] = lens
    position = _position(gps)
    if position:
        record["gps"] = position
    return record


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value.strip("\x00 ").strip() if isinstance(value, str) else ""


def _date(value) -> str | None:
    """EXIF's "2019:07:14 10:22:01" → "2019-07-14T10:22:01" (ISO: sorts and compares as text)."""
    match = _EXIF_DATE.match(_text(value))
    if not match or match[1] == "0000":  # cameras write 0000:00:00 00:00:00 for "unknown"
        return None
    y, mo, d, h, mi, s = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}"


def _camera(make: str, model: str) -> str:
    """ "Google" + "Pixel 7" → "Google Pixel 7"; "Canon" + "Canon EOS 80D" → "Canon EOS 80D"."""
    if make and model.lower().startswith(make.lower()):
        return model
    return f"{make} {model}".strip()


def _position(gps: dict) -> list[float] | None:
    """[latitude, longitude] in degrees from the GPS IFD, or None if absent or malformed."""
    try:
        lat = _degrees(gps[2]) * (-1 if _text(gps.get(1)).upper() == "S" else 1)
        lon = _degrees(gps[4]) * (-1 if _text(gps.get(3)).upper() == "W" else 1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180):
        return None
    return [round(lat, 6), round(lon, 6)]


def _degrees(dms) -> float:
    d, m, s = (float(x) for x in dms)
    return d + m / 60 + s / 3600


def fill(items: Iterable[Item]) -> int:
    """Read the EXIF of the items that have never been read (new or changed files, old stores)
    and name their places; returns how many were read (non-zero: the generation changed)."""
    todo = [item for item in items if item.exif is None]
    for item in todo:
        item.exif = read_file(item.path)
    located = [item.exif for item in todo if "gps" in item.exif]
    if located:
        for record, place in zip(located, places([r["gps"] for r in located]), strict=True):
            if place:
                record["place"] = place
    return len(todo)


def places(points: list[list[float]]) -> list[str | None]:
    """ "City, county, region, country" of the nearest GeoNames city to each point (None: too far)."""
    import reverse_geocode

    found = reverse_geocode.search([tuple(p) for p in points])
    return [_place(p, f) for p, f in zip(points, found, strict=True)]


def _place(point: list[float], found: dict) -> str | None:
    if _km(point, (found["latitude"], found["longitude"])) > MAX_PLACE_KM:
        return None
    names = [found.get(k) for k in ("city", "county", "state", "country")]
    unique: list[str] = []
    for name in names:
        if name and name not in unique:
            unique.append(name)
    return ", ".join(unique) or None


def _km(a, b) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))
