"""What every file gets at embed time for duplicate finding: a SHA-256 of its bytes, a 64-bit DCT
perceptual hash (pHash), a 32×32 grayscale thumbnail and one of the image's centre (CROP_KEEP of
each side), which a copy cropped by about that much matches as it is."""

from __future__ import annotations

import base64
import hashlib

import numpy as np
from PIL import Image

from imgsearch.files.images import open_image, read_file, resize_center_crop

THUMB = 32  # thumbnail side: 32×32 gray lined up separated copies from look-alikes as well as 32×32 RGB
# The centre thumbnail's share of each side: issue 24's crops cut 6 % off each side.
CROP_KEEP = 0.88
_DCT_SIDE = 32  # pHash: 32×32 grayscale, DCT, the 8×8 lowest frequencies against their median


def decode_and_sign(source: str | bytes, size: int) -> tuple[np.ndarray, dict[str, str]]:
    """Model pixels (``size``×``size``×3 uint8) and the item's duplicate signature, one read
    (``source``: a path, or the file's bytes already read, e.g. by a Beam worker)."""
    data = source if isinstance(source, bytes) else read_file(source)
    img = open_image(data, min_size=size)
    pixels = np.asarray(resize_center_crop(img, size), dtype=np.uint8)
    return pixels, signature(data, img)


def signature(data: bytes, img: Image.Image) -> dict[str, str]:
    """``sha256`` of the bytes, ``phash`` (16 hex digits), ``thumb`` (base64 32×32 gray) and
    ``centre`` (the same of the image's centre CROP_KEEP)."""
    gray = img.convert("L")
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "phash": f"{phash(gray):016x}",
        "thumb": base64.b64encode(thumbnail_gray(gray).tobytes()).decode("ascii"),
        "centre": base64.b64encode(thumbnail_gray(centre_crop(gray)).tobytes()).decode("ascii"),
    }


def centre_crop(img: Image.Image) -> Image.Image:
    """The centre CROP_KEEP of each side. A copy cropped by about that much is compared with this
    thumbnail as it is, where lining it up with the whole one resamples 32 px to 28 and blurs
    away the detail that tells a copy from a look-alike (bench/dups.py --originals 240,
    development half: copies cut 5-7 % a side and 15 % brighter found 0.842 → 0.958)."""
    w, h = img.size
    dw, dh = round(w * (1 - CROP_KEEP) / 2), round(h * (1 - CROP_KEEP) / 2)
    return img.crop((dw, dh, w - dw, h - dh))


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    d[0] /= np.sqrt(2.0)
    return d


DCT = _dct_matrix(_DCT_SIDE)


def phash(gray: Image.Image) -> int:
    """64-bit perceptual hash: signs of the 8×8 lowest DCT frequencies against their median."""
    small = gray.resize((_DCT_SIDE, _DCT_SIDE), Image.Resampling.LANCZOS)
    low = (DCT @ np.asarray(small, np.float64) @ DCT.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])  # the DC term says only how bright, not what
    return int("".join("1" if b else "0" for b in bits), 2)


def thumbnail_gray(gray: Image.Image) -> np.ndarray:
    """The whole image squeezed to THUMB×THUMB (aspect ignored, as an edited copy keeps it)."""
    return np.asarray(gray.resize((THUMB, THUMB), Image.Resampling.BOX), np.uint8)
