"""Results as pictures: a contact sheet file, or thumbnails inline in terminals that can show them.

Inline images use the kitty graphics protocol (kitty, WezTerm, Ghostty) or iTerm2's (iTerm2,
WezTerm); a terminal that speaks neither gets the table and one note. Sixel is not drawn: it
needs a palette encoder that Pillow does not ship.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from pathlib import Path

from imgsearch.cli.render import display
from imgsearch.cli.sheet import Cell, contact_sheet, thumbnail
from imgsearch.files.images import ImageError
from imgsearch.files.roots import Roots

SHEET_COLUMNS = 5
PREVIEW_SIDE = 160
KITTY_CHUNK = 4096  # the kitty protocol takes base64 payloads of at most 4096 bytes per escape


def hit_cells(hits: list) -> list[list[Cell]]:
    """Hits as rows of captioned cells: rank, score, file name."""
    cells = [Cell(h.item.path, f"#{h.rank} {h.score:.2f} {display(Path(h.item.path).name)}") for h in hits]
    return [cells[i : i + SHEET_COLUMNS] for i in range(0, len(cells), SHEET_COLUMNS)]


def write_sheet(hits: list, out: Path, roots: Roots) -> Path:
    """The hits as a contact sheet; only files under the index's ``roots`` are drawn."""
    return contact_sheet(hit_cells(hits), out, roots=roots)


def terminal_protocol(env: Mapping[str, str]) -> str | None:
    """``kitty``, ``iterm`` or None, from what the terminal says about itself."""
    if env.get("KITTY_WINDOW_ID") or env.get("TERM") == "xterm-kitty" or env.get("TERM") == "xterm-ghostty":
        return "kitty"
    if env.get("TERM_PROGRAM") in ("iTerm.app", "WezTerm"):
        return "iterm"
    return None


def inline_image(png: bytes, protocol: str) -> str:
    """The escape sequence that draws ``png`` at the cursor."""
    data = base64.b64encode(png).decode("ascii")
    if protocol == "iterm":
        return f"\x1b]1337;File=inline=1;size={len(png)};preserveAspectRatio=1:{data}\x07"
    chunks = [data[i : i + KITTY_CHUNK] for i in range(0, len(data), KITTY_CHUNK)] or [""]
    out = []
    for n, chunk in enumerate(chunks):
        more = int(n < len(chunks) - 1)
        head = f"a=T,f=100,m={more}" if n == 0 else f"m={more}"
        out.append(f"\x1b_G{head};{chunk}\x1b\\")
    return "".join(out)


def preview(hits: list, protocol: str, roots: Roots) -> str:
    """Each hit's thumbnail inline (only files under the index's ``roots``), then its rank, score and path."""
    parts = []
    for h in hits:
        try:
            buffer = io.BytesIO()
            thumbnail(roots.read(h.item.path), PREVIEW_SIDE).save(buffer, format="PNG")
            parts.append(inline_image(buffer.getvalue(), protocol) + "\n")
        except (ImageError, OSError):
            parts.append("[image unavailable]\n")
        parts.append(f"#{h.rank}  {h.score:.2f}  {display(h.item.path)}\n")
    return "".join(parts)
