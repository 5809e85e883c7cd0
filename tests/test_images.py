"""Safe decoding: every odd file a photo folder holds becomes RGB, or a clear skip reason."""

import io

import numpy as np
import pytest
from PIL import Image

from imgsearch.files.images import ImageError, load_rgb_array, open_image


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_modes_become_rgb(tmp_path):
    red = Image.new("RGB", (40, 30), (220, 10, 10))
    cases = {
        "cmyk.jpg": red.convert("CMYK"),
        "palette.png": red.convert("P"),
        "gray16.png": Image.fromarray((np.ones((30, 40)) * 40000).astype(np.uint16)),
        "la.png": red.convert("LA"),
        "first.gif": red.convert("P"),
        "photo.webp": red,
        "photo.bmp": red,
        "photo.tif": red,
    }
    for name, img in cases.items():
        out = open_image(_save(img, tmp_path / name))
        assert out.mode == "RGB", name
        assert out.size == (40, 30), name


def test_transparent_png_is_composited_on_white(tmp_path):
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgb = np.asarray(open_image(_save(img, tmp_path / "t.png")))
    assert (rgb == 255).all()


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    assert open_image(path).size == (20, 60)


def test_resize_is_centre_crop_of_model_size(tmp_path):
    arr = np.zeros((100, 300, 3), np.uint8)
    arr[:, 100:200] = 255  # white centre third
    out = load_rgb_array(_save(Image.fromarray(arr), tmp_path / "wide.png"), 64)
    assert out.shape == (64, 64, 3)
    assert out.mean() > 240  # only the centre survives the crop


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "not an image"), (b"hello, not a picture", "not an image")],
)
def test_bad_files_raise_image_error(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        open_image(path)


def test_truncated_jpeg_is_refused(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(buf, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated"):
        open_image(path)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (200, 200)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(ImageError, match="too large"):
        open_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        open_image(tmp_path / "nope.jpg")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    """A FIFO that appears after the folder was scanned must not hang the decode (no writer ever comes)."""
    import os

    from imgsearch.files.images import ImageError, load_rgb_array

    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(ImageError, match="not a regular file"):
        load_rgb_array(tmp_path / "pipe.jpg", 32)


def test_a_directory_is_refused_as_one(tmp_path):
    """Linux opens a directory read-only; the reason must still be "is a directory", not an errno."""
    with pytest.raises(ImageError, match=r"^is a directory$"):
        open_image(tmp_path)
