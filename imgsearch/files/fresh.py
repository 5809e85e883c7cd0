"""Is a listed file still the file that was indexed?

Results go into pipelines (``dups --copies -0 | xargs -0 rm``, ``query -f paths | xargs ...``)
that act on the names without looking: a name whose file was deleted, replaced or edited since
``imgsearch index`` must not come out as if the index still described it. So each listed file
is checked right before output against what ``index`` recorded, the same test ``index`` uses
to tell a changed file (size and mtime; one ``stat`` a file). A file changed within the file
system's mtime resolution keeping its size is not seen (the README's known trade-off).
"""

from __future__ import annotations

import os
import stat
from collections import Counter

from imgsearch.store import Item

GONE = "gone"  # deleted, renamed, or its folder can no longer be read
CHANGED = "changed"  # another size or mtime: replaced, edited or touched since the index


def check(item: Item) -> os.stat_result | str:
    """The file's ``stat`` when it is still what was indexed, else why not (GONE or CHANGED)."""
    try:
        st = os.stat(item.path)  # follows links, as the scan that indexed it did
    except (OSError, ValueError):  # ValueError: a path with a NUL byte (a crafted items.jsonl)
        return GONE
    if not stat.S_ISREG(st.st_mode) or st.st_size != item.size or st.st_mtime != item.mtime:
        return CHANGED
    return st


def stale(item: Item) -> str | None:
    """None when the file is still what was indexed, else GONE or CHANGED."""
    found = check(item)
    return found if isinstance(found, str) else None


def describe(left_out: Counter[str]) -> str:
    """``Counter({"gone": 2, "changed": 1})`` → "2 gone, 1 changed"."""
    return ", ".join(f"{n} {why}" for why, n in sorted(left_out.items()) if n)
