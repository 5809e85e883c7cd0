"""Safe image decoding: any file Pillow opens becomes an RGB array of the model's size.

Why a module of its own: photo folders hold CMYK JPEGs, palette PNGs with
transparency, 16-bit TIFFs, rotated phone photos and the odd broken or
gigantic file. Each is normalised here the same way for every encoder, and
bad files raise ``ImageError`` with a short reason instead of crashing a run.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Truncated files must fail, not decode half-grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif", ".pjpeg"}
    # iPhone photos (HEIC) through pillow-heif; AVIF through Pillow itself (its wheels bundle libavif)
    | {".heic", ".heif", ".hif", ".avif"}
)


# Pillow refuses an image over Image.MAX_IMAGE_PIXELS (its warning is made an error below). The
# largest file such an image can plausibly be: every pixel stored raw at 8 bytes (16-bit RGBA,
# uncompressed TIFF or PNG), plus room for metadata (EXIF, ICC, XMP, an embedded preview): 747 MB
# at Pillow's default limit. A bigger file is refused unread: a 3 GB sparse "huge.jpg" used to be
# read whole (3.4 GB of memory, 238 s) before Pillow could say no.
MAX_BYTES_PER_PIXEL = 8
METADATA_ALLOWANCE = 64 * 2**20


class ImageError(ValueError):
    """The file cannot be used as an image; the message is the reason."""


def max_file_bytes() -> int | None:
    """The largest file read as an image (None: Pillow's pixel limit is off, so no limit here)."""
    pixels = Image.MAX_IMAGE_PIXELS
    return None if pixels is None else int(pixels) * MAX_BYTES_PER_PIXEL + METADATA_ALLOWANCE


def read_file(path: str | Path) -> bytes:
    """The bytes of an image file. Only a regular file is read: opening is non-blocking and the
    file type checked first, so a FIFO that appeared after the folder was scanned cannot hang a run."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except IsADirectoryError:
        raise ImageError("is a directory") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as exc:
        raise ImageError(f"cannot open ({exc.strerror})") from None
    # Linux opens a directory read-only without complaint; reading it then fails with a bare errno
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ImageError("is a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file")
    with os.fdopen(fd, "rb") as f:
        check_size(st.st_size)
        _check_header(f)
        f.seek(0)
        return f.read()


def check_size(size: int) -> None:
    """Refuse, unread, a file larger than any image Pillow would open (``max_file_bytes``)."""
    limit = max_file_bytes()
    if limit is not None and size > limit:
        raise ImageError(
            f"file too large for an image ({_mb(size)}; at most {_mb(limit)} at Pillow's pixel limit)"
        )


def _mb(size: int) -> str:
    return f"{size / 2**20:,.0f} MB"


@functools.cache
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF, once, on the first decode: ``--help`` and text-only queries never
    load libheif. Safe from the decode threads: registering twice is harmless."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


def _pillow_open(f: io.IOBase) -> Image.Image:
    """``Image.open`` with every format imgsearch reads registered: all decoding comes through here."""
    _register_heif()
    return Image.open(f)


def _check_header(f: io.BufferedReader) -> None:
    """Refuse a decompression bomb from its header (Pillow reads only that far) before the whole
    file is read into memory."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            _pillow_open(f)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image too large (decompression bomb limit)") from None
    except Exception:  # any other fault is the decoder's to report, from the whole file
        pass


def open_image(source: str | Path | bytes, *, min_size: int | None = None) -> Image.Image:
    """Open, verify size limits, apply EXIF orientation and convert to 8-bit RGB.

    ``min_size`` lets JPEG decode at a reduced scale (DCT draft mode) when the
    caller only needs that many pixels: several times faster on camera photos. A HEIC
    then decodes its embedded thumbnail instead, when it holds a scaled copy at least
    that large (pillow-heif checks crop, rotation and colour profile): 12 MP took 0.4 s.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _pillow_open(io.BytesIO(source if isinstance(source, bytes) else read_file(source)))
            if img.format != "HEIF":  # a HEIF file opens at its primary image, not always the first
                img.seek(0)  # first frame of GIF/WebP animations
            if min_size and img.format in ("JPEG", "HEIF"):
                img.draft("RGB", (min_size, min_size))
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image too large (decompression bomb limit)") from None
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can read") from None
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        # libheif ends its messages with a newline
        raise ImageError(f"corrupt or truncated image ({str(exc).strip()})") from None
    return to_rgb(ImageOps.exif_transpose(img))


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode; transparency is composited on white like a shop page."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() or 1.0
        return Image.fromarray((arr * (255.0 / top)).astype(np.uint8)).convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo or 1.0))
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size`` then centre crop: the ImageNet evaluation policy."""
    w, h = img.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    img = img.resize(new, Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return img.crop((left, top, left + size, top + size))


def load_rgb_array(source: str | Path | bytes, size: int) -> np.ndarray:
    """Decode ``source`` to a ``size``×``size``×3 uint8 array (model input)."""
    img = open_image(source, min_size=size)
    return np.asarray(resize_center_crop(img, size), dtype=np.uint8)


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


# The most bytes read from a stream as one image (`imgsearch query -`): an uncompressed 8-bit RGB
# image at Pillow's pixel limit, which `open_image` enforces (a larger image is refused there as
# a decompression bomb), takes Image.MAX_IMAGE_PIXELS × 3 bytes, just under 256 MiB; compressed
# formats take far less. Without a cap, `query - < /dev/zero` read until memory ran out.
MAX_STREAM_BYTES = 256 * 2**20
_CHUNK = 2**20


def read_stream(stream: BinaryIO, limit: int = MAX_STREAM_BYTES) -> bytes:
    """All of a binary ``stream``, read in bounded chunks; ImageError past ``limit`` bytes."""
    chunks, size = [], 0
    while chunk := stream.read(min(_CHUNK, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise ImageError(f"more than {limit // 2**20} MB, the most an image within the pixel limit takes")
    return b"".join(chunks)
