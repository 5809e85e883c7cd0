"""Name the dominant colours of a product photo with numpy and Pillow only.

Why this exists: many catalogue images come without any metadata text, yet shoppers
search with colour words ("red bag", "navy blue jeans").  A cheap, deterministic
colour namer turns pixels into words that the text index can match, and a small
per-colour histogram lets a search engine re-rank results by colour.

How it works, in short:

1. Downsample to about 64x64 (colour naming needs no detail and this keeps it fast).
2. Estimate the background from the image border; on a near-uniform border (the usual
   catalogue shot on white) drop the pixels close to it, otherwise keep every pixel.
3. Convert to CIE Lab (perceptually uniform-ish, so distances mean something) and
   give each foreground pixel one palette name: low-chroma pixels are named by
   lightness only (black / grey / white), so dark, desaturated pixels do not turn
   into navy or brown; coloured pixels go to the nearest chromatic prototype in LCh
   (hue-weighted), the prototypes being muted "as photographed" colours.
4. Weight pixels towards the image centre, where the product sits, and down-weight
   skin tones, so a model's face, arms or jeans count less than the garment on sale.

Measured on the fashion set against its ``baseColour`` labels (bench/colour_accuracy.py,
1,500 images, 125 each of the 12 most frequent colours): top-1 0.61, top-3 0.79.

Everything here is pure numpy; no model weights, no tensorflow.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

__all__ = [
    "CATALOG_COLOURS",
    "PALETTE_NAMES",
    "colour_analysis",
    "colour_histogram",
    "colour_names",
    "colour_text",
    "foreground_mask",
    "names_from_histogram",
    "rgb_to_lab",
    "text_colour_query",
]

# ---------------------------------------------------------------------------
# Palette
# ---------------------------------------------------------------------------

#: Achromatic names, chosen by lightness alone for low-chroma pixels.  Upper L* bound
#: (exclusive) of each band, darkest first; the last band is open-ended.
_ACHROMATIC: tuple[tuple[str, float], ...] = (
    ("black", 40.0),
    ("grey", 78.0),
    ("white", 101.0),
)

#: Chromatic names with one or more prototypes each, as (L*, chroma, hue degrees) in
#: CIE LCh.  They describe what such products look like in studio photos -- mostly
#: darker and far less saturated than the "web colour" of the same name (a navy
#: shirt is L*~20, chroma~12) -- and were set from pixel clusters of a tuning sample
#: of the fashion set, then adjusted by measurement (bench/colour_accuracy.py).
_CHROMATIC: dict[str, tuple[tuple[float, float, float], ...]] = {
    "navy blue": ((20, 12, 282), (32, 18, 285)),
    "blue": ((48, 40, 285), (70, 18, 250), (60, 30, 265), (78, 15, 280)),
    "green": ((70, 45, 137), (40, 20, 155), (75, 15, 170)),
    "olive": ((40, 20, 100),),
    "yellow": ((85, 67, 93), (81, 41, 91)),
    "mustard": ((62, 45, 82),),
    "orange": ((62, 65, 50), (72, 53, 64)),
    "red": ((46, 63, 28), (54, 45, 20)),
    "maroon": ((26, 25, 15), (35, 40, 18)),
    "pink": ((57, 50, 3), (72, 26, 358)),
    "magenta": ((50, 65, 345),),
    "purple": ((24, 15, 328), (44, 40, 327), (54, 15, 319)),
    "lavender": ((70, 25, 315),),
    "brown": ((24, 12, 48), (44, 11, 53), (48, 30, 57)),
    "tan": ((60, 30, 65),),
    "beige": ((73, 18, 80), (87, 12, 84)),
    "cream": ((93, 10, 95),),
}

#: Saturated "web colour" anchors (sRGB) per name.  Studio product colours above are
#: muted, but flat graphics and very saturated products should still get the obvious
#: name -- and Lab hue drifts with chroma (pure sRGB blue sits at hue ~306 degrees,
#: next to purple; pure red at ~40, next to orange), so muted prototypes alone
#: would misname them.
_ANCHORS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "navy blue": ((0, 0, 128), (25, 25, 112)),
    "blue": ((0, 0, 255), (30, 144, 255), (65, 105, 225)),
    "green": ((0, 128, 0), (0, 255, 0), (34, 139, 34)),
    "olive": ((128, 128, 0),),
    "yellow": ((255, 255, 0),),
    "orange": ((255, 165, 0), (255, 140, 0)),
    "red": ((255, 0, 0), (220, 20, 60)),
    "pink": ((255, 192, 203), (255, 105, 180)),
    "magenta": ((255, 0, 255),),
    "purple": ((128, 0, 128),),
    "brown": ((139, 69, 19),),
}

#: Every name the namer can emit, in the fixed order used by histogram vectors.
PALETTE_NAMES: tuple[str, ...] = tuple(n for n, _ in _ACHROMATIC) + tuple(_CHROMATIC)

#: The shop vocabulary: the 12 most frequent catalog ``baseColour`` values (fashion set) and the
#: palette name each should be named; used to measure colour naming against catalogs.
CATALOG_COLOURS: dict[str, str] = {
    "Black": "black",
    "Blue": "blue",
    "White": "white",
    "Grey": "grey",
    "Brown": "brown",
    "Red": "red",
    "Green": "green",
    "Navy Blue": "navy blue",
    "Purple": "purple",
    "Pink": "pink",
    "Beige": "beige",
    "Maroon": "maroon",
}

# Tunables: rules chosen by hand, by measurement with bench/colour_accuracy.py (not fitted).
_SIZE = 64  # working resolution
_BORDER = 2  # border width in pixels at the working resolution
_BG_DELTA = 4.0  # Lab distance from the background colour that counts as "foreground"
_BORDER_UNIFORM = 0.55  # share of border pixels that must match the background
_MIN_FOREGROUND = 0.03  # below this share, fall back to all pixels
# Chroma under which a pixel is achromatic (named by L* only), for normal and for
# dark (L* < _DARK_L) pixels.  Measured: black cloth has chroma ~2 (90th percentile
# ~7), dark navy / brown cloth ~10 and ~6, so the dark limit sits low; a fixed
# chroma limit is already strict for dark pixels relative to their saturation.
_CHROMA_MIN = 6.0
_CHROMA_DARK = 5.0
_DARK_L = 40.0
# Scales of the LCh distance for coloured pixels: hue angle is the most telling
# cue once a pixel has some chroma; lightness and chroma vary with shading.
_SCALE_L = 15.0
_SCALE_C = 15.0
_SCALE_H = 20.0  # degrees
_SKIN_BOX = (35.0, 70.0, 12.0, 35.0, 50.0, 82.0)  # hue lo/hi, chroma lo/hi, L* lo/hi
_SKIN_WEIGHT = 0.3
_CENTRE_SIGMA = 0.35  # Gaussian centre weight, in units of the half image size


# ---------------------------------------------------------------------------
# Colour space
# ---------------------------------------------------------------------------

_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert sRGB (uint8 or float in 0..255, shape ...x3) to CIE Lab (D65).

    Lab is used because Euclidean distance in it roughly tracks perceived colour
    difference, which RGB distance does not (dark blues vs blacks especially).
    """
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _SRGB_TO_XYZ.T / _WHITE_D65
    eps = 216 / 24389
    kappa = 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def _proto_table() -> tuple[np.ndarray, np.ndarray]:
    """Flatten _CHROMATIC and _ANCHORS into (palette index per prototype, Px3 LCh array)."""
    idx = [PALETTE_NAMES.index(name) for name, protos in _CHROMATIC.items() for _ in protos]
    lch = [p for protos in _CHROMATIC.values() for p in protos]
    for name, rgbs in _ANCHORS.items():
        lab = rgb_to_lab(np.array(rgbs, dtype=np.float64))
        hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1])) % 360.0
        idx += [PALETTE_NAMES.index(name)] * len(rgbs)
        lch += [(lab[i, 0], float(np.hypot(lab[i, 1], lab[i, 2])), hue[i]) for i in range(len(rgbs))]
    return np.array(idx), np.array(lch, dtype=np.float64)


_PROTO_INDEX, _PROTO_LCH = _proto_table()


# ---------------------------------------------------------------------------
# Image helpers
# ---------------------------------------------------------------------------


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    """Return an HxWx3 uint8 array, tolerating greyscale and RGBA input."""
    a = np.asarray(rgb)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"expected an HxWx3 image, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError("empty image")
    a = a[..., :3]
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return a


def _downsample(rgb: np.ndarray, size: int = _SIZE) -> np.ndarray:
    """Shrink to at most size x size (keeping aspect) with box filtering, for speed."""
    h, w = rgb.shape[:2]
    if max(h, w) <= size:
        return rgb
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(new, Image.Resampling.BOX))


def _border(a: np.ndarray, width: int) -> np.ndarray:
    """Pixels of the outer ring of an HxWxC array, as an Nx C array."""
    h, w = a.shape[:2]
    width = max(1, min(width, h // 2, w // 2))
    ring = np.zeros((h, w), dtype=bool)
    ring[:width] = ring[-width:] = True
    ring[:, :width] = ring[:, -width:] = True
    return a[ring]


def _backdrop(lab: np.ndarray) -> np.ndarray | None:
    """The backdrop colour when the border is near-uniform (a studio/product shot), else None."""
    border = _border(lab, _BORDER)
    bg = np.median(border, axis=0)
    if np.mean(np.linalg.norm(border - bg, axis=1) < _BG_DELTA) < _BORDER_UNIFORM:
        return None
    return bg


def _foreground_from_lab(lab: np.ndarray) -> np.ndarray:
    """Foreground mask computed on an already converted Lab image."""
    h, w = lab.shape[:2]
    bg = _backdrop(lab)
    if bg is None:
        # A busy border means a normal photo, not a studio shot: keep everything.
        return np.ones((h, w), dtype=bool)
    mask = np.linalg.norm(lab - bg, axis=-1) >= _BG_DELTA
    if mask.mean() < _MIN_FOREGROUND:
        # Almost nothing differs from the background: the product is probably the
        # same colour as it (white shirt on white) -- name the whole image instead.
        return np.ones((h, w), dtype=bool)
    return mask


def foreground_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean HxW mask of pixels that are not background, at the input's resolution.

    Why: catalogue shots put the product on a near-uniform (usually white) backdrop,
    which would otherwise dominate every colour count.  The background colour is the
    median of the border pixels; pixels farther than a small Lab distance from it are
    foreground.  A non-uniform border (an ordinary photo) keeps the whole image, and
    an almost empty mask (product the colour of the backdrop) falls back to all pixels.
    """
    a = _as_rgb(rgb)
    h, w = a.shape[:2]
    small = _downsample(a)
    mask = _foreground_from_lab(rgb_to_lab(small))
    if mask.shape != (h, w):
        img = Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.Resampling.NEAREST)
        mask = np.asarray(img) > 127
    return mask


# ---------------------------------------------------------------------------
# Naming
# ---------------------------------------------------------------------------


def _name_pixels(lab: np.ndarray) -> np.ndarray:
    """Palette index for each Lab pixel of an Nx3 array.

    Low-chroma pixels are named by lightness (black/grey/white): a dark pixel
    with only a faint blue cast is black cloth, not navy.  Coloured pixels take the
    nearest chromatic prototype by a scaled LCh distance whose hue term is an
    angle: Euclidean Lab distance lets a muted purple land on a muted navy just
    because both have low chroma, whereas hue is what tells them apart.
    """
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    limit = np.where(L < _DARK_L, _CHROMA_DARK, _CHROMA_MIN)
    achromatic = chroma < limit

    out = np.empty(len(lab), dtype=np.int64)
    bounds = np.array([ub for _, ub in _ACHROMATIC])
    out[achromatic] = np.minimum(np.searchsorted(bounds, L[achromatic], side="right"), len(bounds) - 1)

    if not achromatic.all():
        col = ~achromatic
        dl = (L[col, None] - _PROTO_LCH[None, :, 0]) / _SCALE_L
        dc = (chroma[col, None] - _PROTO_LCH[None, :, 1]) / _SCALE_C
        hue = np.degrees(np.arctan2(b[col], a[col]))
        dh = np.abs((hue[:, None] - _PROTO_LCH[None, :, 2] + 180.0) % 360.0 - 180.0) / _SCALE_H
        out[col] = _PROTO_INDEX[np.argmin(dl * dl + dc * dc + dh * dh, axis=1)]
    return out


def _centre_weights(h: int, w: int) -> np.ndarray:
    """Gaussian weights favouring the image centre, where products are placed."""
    y = (np.arange(h) + 0.5) / h * 2 - 1
    x = (np.arange(w) + 0.5) / w * 2 - 1
    g = np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * _CENTRE_SIGMA**2))
    return g


def _skin_weights(lab: np.ndarray) -> np.ndarray:
    """Down-weight skin-toned pixels (Nx3 Lab): catalogue models show faces and arms.

    Skin sits in a narrow warm band (hue ~35-70 degrees, moderate chroma, mid-high
    lightness); beige and tan products overlap it only partly, so they survive a
    partial down-weighting while a red top worn by a model stops losing to her arms.
    """
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a))
    lo_h, hi_h, lo_c, hi_c, lo_l, hi_l = _SKIN_BOX
    skin = (hue >= lo_h) & (hue <= hi_h) & (chroma >= lo_c) & (chroma <= hi_c) & (lo_l <= L) & (hi_l >= L)
    return np.where(skin, _SKIN_WEIGHT, 1.0)


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """Share of the (centre-weighted) foreground per palette name, in PALETTE_NAMES order.

    Why: a small fixed-length vector (sums to 1) that a search engine can store per
    image and dot with :func:`text_colour_query` to re-rank results by colour.
    """
    return colour_analysis(rgb)[0]


def colour_analysis(rgb: np.ndarray) -> tuple[np.ndarray, bool]:
    """(``colour_histogram``, whether the image is a product shot on a plain backdrop), from one
    Lab conversion. Why the second: search treats the two kinds differently (an everyday-photo
    text head is out of its domain on catalog shots, where auto tags work better)."""
    lab = rgb_to_lab(_downsample(_as_rgb(rgb)))
    mask = _foreground_from_lab(lab)
    fg = lab[mask]
    weights = _centre_weights(*mask.shape)[mask] * _skin_weights(fg)
    idx = _name_pixels(fg)
    hist = np.bincount(idx, weights=weights, minlength=len(PALETTE_NAMES))
    total = hist.sum()
    return (hist / total if total > 0 else hist), _backdrop(lab) is not None


def colour_names(rgb: np.ndarray, *, top: int = 3, min_share: float = 0.1) -> list[tuple[str, float]]:
    """Up to ``top`` (name, share of foreground) pairs, best first, with share >= ``min_share``.

    Why: the dominant colour names are what a shopper types, so they make good item
    text for images that come without any description.
    """
    return names_from_histogram(colour_histogram(rgb), top=top, min_share=min_share)


def names_from_histogram(
    hist: np.ndarray, *, top: int = 3, min_share: float = 0.1
) -> list[tuple[str, float]]:
    """``colour_names`` for an already computed ``colour_histogram`` (saves a second pass)."""
    order = np.argsort(-hist, kind="stable")
    out = [(PALETTE_NAMES[i], float(hist[i])) for i in order[:top] if hist[i] >= min_share]
    if not out and hist.sum() > 0:
        # Very mixed images: still return the single most common name.
        i = int(order[0])
        out = [(PALETTE_NAMES[i], float(hist[i]))]
    return out


def colour_text(rgb: np.ndarray, *, top: int = 2, min_share: float = 0.15) -> str:
    """A short phrase of the dominant colours, e.g. ``"red, black"``, usable as item text."""
    return ", ".join(name for name, _ in colour_names(rgb, top=top, min_share=min_share))


# ---------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------

#: Query words -> palette names with weights.  Multi-word phrases are matched first so
#: "navy blue" is not read as "blue"; cheap synonyms and near neighbours are included.
_QUERY_WORDS: dict[str, dict[str, float]] = {
    # blues
    "navy blue": {"navy blue": 1.0, "blue": 0.3},
    "navy": {"navy blue": 1.0, "blue": 0.3},
    "dark blue": {"navy blue": 1.0, "blue": 0.6},
    "indigo": {"navy blue": 1.0, "blue": 0.6},
    "light blue": {"blue": 1.0, "lavender": 0.3},
    "sky blue": {"blue": 1.0, "lavender": 0.3},
    "turquoise blue": {"blue": 1.0, "green": 0.6},
    "turquoise": {"blue": 1.0, "green": 0.6},
    "aqua": {"blue": 1.0, "green": 0.6},
    "cyan": {"blue": 1.0, "green": 0.6},
    "teal": {"green": 1.0, "blue": 0.7},
    "blue": {"blue": 1.0, "navy blue": 0.4},
    # achromatic
    "off white": {"white": 1.0, "cream": 0.6},
    "white": {"white": 1.0, "cream": 0.3},
    "ivory": {"cream": 1.0, "white": 0.6},
    "black": {"black": 1.0},
    "dark grey": {"grey": 1.0, "black": 0.5},
    "dark gray": {"grey": 1.0, "black": 0.5},
    "charcoal": {"grey": 1.0, "black": 0.5},
    "light grey": {"grey": 1.0, "white": 0.4},
    "light gray": {"grey": 1.0, "white": 0.4},
    "grey": {"grey": 1.0},
    "gray": {"grey": 1.0},
    "silver": {"grey": 1.0, "white": 0.3},
    "steel": {"grey": 1.0},
    # reds and pinks
    "dark red": {"maroon": 1.0, "red": 0.6},
    "red": {"red": 1.0, "maroon": 0.3},
    "maroon": {"maroon": 1.0, "red": 0.3},
    "burgundy": {"maroon": 1.0, "red": 0.3},
    "wine": {"maroon": 1.0, "red": 0.3},
    "pink": {"pink": 1.0, "magenta": 0.3},
    "peach": {"pink": 1.0, "orange": 0.6, "beige": 0.3},
    "coral": {"orange": 1.0, "pink": 0.6, "red": 0.3},
    "magenta": {"magenta": 1.0, "pink": 0.4, "purple": 0.3},
    "fuchsia": {"magenta": 1.0, "pink": 0.4},
    # purples
    "purple": {"purple": 1.0, "lavender": 0.3},
    "violet": {"purple": 1.0, "lavender": 0.3},
    "lavender": {"lavender": 1.0, "purple": 0.4},
    "lilac": {"lavender": 1.0, "purple": 0.4},
    "mauve": {"lavender": 1.0, "purple": 0.4},
    # greens
    "dark green": {"green": 1.0, "olive": 0.3},
    "sea green": {"green": 1.0, "blue": 0.3},
    "green": {"green": 1.0, "olive": 0.3},
    "olive": {"olive": 1.0, "green": 0.3},
    "khaki": {"beige": 1.0, "olive": 0.6, "tan": 0.4},
    # yellows and oranges
    "yellow": {"yellow": 1.0, "mustard": 0.4},
    "mustard": {"mustard": 1.0, "yellow": 0.6},
    "gold": {"mustard": 1.0, "yellow": 0.8},
    "golden": {"mustard": 1.0, "yellow": 0.8},
    "orange": {"orange": 1.0},
    "rust": {"orange": 1.0, "brown": 0.6},
    # browns and neutrals
    "copper": {"brown": 1.0, "orange": 0.6},
    "bronze": {"brown": 1.0, "mustard": 0.4},
    "coffee brown": {"brown": 1.0},
    "dark brown": {"brown": 1.0, "black": 0.3},
    "coffee": {"brown": 1.0},
    "chocolate": {"brown": 1.0},
    "brown": {"brown": 1.0, "tan": 0.4},
    "tan": {"tan": 1.0, "brown": 0.6, "beige": 0.4},
    "camel": {"tan": 1.0, "brown": 0.6},
    "beige": {"beige": 1.0, "cream": 0.4, "tan": 0.3},
    "nude": {"beige": 1.0, "tan": 0.3},
    "cream": {"cream": 1.0, "beige": 0.5, "white": 0.3},
}

# Words that also name things ("a cup of coffee", "an orange", "gold"): they are taken as
# colours only in modifier position (followed by another word, "gold watch"), or alone.
_AMBIGUOUS = frozenset(
    {
        "coffee",
        "chocolate",
        "wine",
        "gold",
        "silver",
        "copper",
        "bronze",
        "steel",
        "rust",
        "cream",
        "camel",
        "peach",
        "orange",
        "olive",
        "coral",
        "nude",
        "tan",
        "lavender",
        "mustard",
        "khaki",
        "navy",
        "ivory",
        "charcoal",
        "aqua",
        "lilac",
        "violet",
    }
)

_QUERY_RE = re.compile(
    r"\b(" + "|".join(re.escape(k) for k in sorted(_QUERY_WORDS, key=len, reverse=True)) + r")\b"
)


def text_colour_query(text: str) -> np.ndarray | None:
    """Target weight vector over PALETTE_NAMES for the colour words in ``text``, or None.

    Why: a search engine can score ``colour_histogram(image) @ target`` to push
    images of the asked-for colour up.  Multi-word colours ("navy blue", "dark grey")
    win over their single words; related names get a small weight so near misses
    (maroon for "red") still rank above unrelated colours.  The vector peaks at 1.
    """
    norm = re.sub(r"[^a-z]+", " ", text.lower().replace("-", " ")).strip()
    words = norm.split()
    hits = [
        m.group(1)
        for m in _QUERY_RE.finditer(norm)
        if m.group(1) not in _AMBIGUOUS or len(words) == 1 or m.end() < len(norm)
    ]
    if not hits:
        return None
    vec = np.zeros(len(PALETTE_NAMES))
    for word in hits:
        for name, weight in _QUERY_WORDS[word].items():
            i = PALETTE_NAMES.index(name)
            vec[i] = max(vec[i], weight)
    return vec
