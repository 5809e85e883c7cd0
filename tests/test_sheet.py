"""Thumbnails and contact sheets drawn with Pillow."""

from __future__ import annotations

import pytest
from PIL import Image

from imgsearch.cli.sheet import Cell, contact_sheet, sheet_size, thumbnail
from imgsearch.files.images import ImageError


def test_thumbnail_fits_and_applies_exif_orientation(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    Image.new("RGB", (400, 200), (200, 30, 30)).save(path, exif=exif)
    thumb = thumbnail(path, max_side=100)
    assert thumb.size == (50, 100)
    assert thumb.mode == "RGB"


def test_thumbnail_of_a_broken_file_is_an_image_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a picture")
    with pytest.raises(ImageError):
        thumbnail(bad)


def test_contact_sheet_size_captions_and_placeholder(photos, tmp_path):
    rows = [
        [Cell(photos / "chelsea.png", "0.99 chelsea.png"), Cell(photos / "coffee.png", "a caption")],
        [Cell(tmp_path / "gone.jpg", "moved away")],
    ]
    out = contact_sheet(rows, tmp_path / "out" / "sheet.png", cell=64)
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == sheet_size(rows, cell=64)
        assert im.getpixel((8 + 32, 8 + 64 + 14 + 8 + 8 + 32)) == (225, 225, 225)  # placeholder cell
    assert not list(out.parent.glob(".*tmp"))


def test_empty_sheet_is_refused(tmp_path):
    with pytest.raises(ValueError):
        contact_sheet([], tmp_path / "x.png")
