"""Thumbnails and contact sheets: rows of captioned images in one PNG, drawn with Pillow.

Used by ``dups --sheet`` (one row per duplicate group); any command that wants to show a few
images at a glance can pass its own rows of ``Cell``s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from imgsearch.cache import atomic_path
from imgsearch.files.images import ImageError, open_image
from imgsearch.files.roots import Roots

BACKGROUND = (255, 255, 255)
PLACEHOLDER = (225, 225, 225)
TEXT = (40, 40, 40)


@dataclass
class Cell:
    path: str | Path
    caption: str = ""


def thumbnail(source: str | Path | bytes, max_side: int = 256) -> Image.Image:
    """The image (a path or its bytes; safe decode, EXIF orientation applied) shrunk to fit
    ``max_side``; ImageError if not."""
    img = open_image(source, min_size=max_side)
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img


def sheet_size(rows: list[list[Cell]], cell: int = 160, margin: int = 8, caption_lines: int = 2) -> tuple:
    """Pixel size of the sheet ``contact_sheet`` draws for ``rows`` (width, height)."""
    columns = max((len(r) for r in rows), default=0)
    return (
        margin + columns * (cell + margin),
        margin + len(rows) * (cell + _caption_height(caption_lines) + margin),
    )


def contact_sheet(
    rows: list[list[Cell]],
    out: Path,
    *,
    cell: int = 160,
    margin: int = 8,
    caption_lines: int = 2,
    roots: Roots | None = None,
) -> Path:
    """Draw ``rows`` as rows of ``cell``-sized thumbnails with captions; write ``out`` (PNG) atomically.

    An image that can no longer be read (moved, broken) gets a grey placeholder, not an error;
    so does one outside ``roots`` (the paths come from an index: only its folders are read).
    """
    if not rows or not any(rows):
        raise ValueError("a contact sheet needs at least one cell")
    sheet = Image.new("RGB", sheet_size(rows, cell, margin, caption_lines), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font()
    row_height = cell + _caption_height(caption_lines) + margin
    for r, row in enumerate(rows):
        y = margin + r * row_height
        for c, item in enumerate(row):
            x = margin + c * (cell + margin)
            _paste(sheet, draw, item.path, x, y, cell, roots)
            lines = _wrap(draw, item.caption, font, cell)[:caption_lines]
            for n, line in enumerate(lines):
                draw.text((x, y + cell + 2 + n * _LINE), line, fill=TEXT, font=font)
    out = Path(out)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
    return out


_LINE = 14


def _caption_height(lines: int) -> int:
    return 4 + lines * _LINE


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=11)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _paste(sheet: Image.Image, draw: ImageDraw.ImageDraw, path, x: int, y: int, cell: int, roots) -> None:
    try:
        thumb = thumbnail(roots.read(str(path)) if roots is not None else path, cell)
    except ImageError:
        draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=PLACEHOLDER)
        return
    sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    """Caption lines that fit ``width`` pixels; characters, not words, since captions are paths."""
    lines, line = [], ""
    for ch in text:
        if ch == "\n" or draw.textlength(line + ch, font=font) > width:
            lines.append(line)
            line = "" if ch == "\n" else ch
        else:
            line += ch
    return [*lines, line] if line else lines
