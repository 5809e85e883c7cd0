"""Tests for imgsearch.embed.colors: synthetic images (always) plus a small real-data check.

The synthetic cases pin the behaviours the search relies on: the backdrop is ignored,
dark colours get the right name, ordinary photos keep every pixel, and query words
map onto the palette.  The real-data test guards against regressions that synthetic
images cannot see (a broken Lab conversion or background removal).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsearch.embed.colors import (
    CATALOG_COLOURS,
    PALETTE_NAMES,
    colour_histogram,
    colour_names,
    colour_text,
    foreground_mask,
    rgb_to_lab,
    text_colour_query,
)

FASHION = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion"


def _object_on_background(
    fg: tuple[int, int, int], bg: tuple[int, int, int], size: int = 128, seed: int = 0
) -> np.ndarray:
    """A centred ellipse of colour ``fg`` on a flat ``bg``, with mild sensor-like noise."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), dtype=np.float64)
    img[:] = bg
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    inside = ((yy - c) / (0.38 * size)) ** 2 + ((xx - c) / (0.28 * size)) ** 2 <= 1
    img[inside] = fg
    img += rng.normal(0, 2.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _names(img: np.ndarray) -> list[str]:
    return [n for n, _ in colour_names(img)]


# ---------------------------------------------------------------------------
# Colour space
# ---------------------------------------------------------------------------


def test_rgb_to_lab_reference_values() -> None:
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.1)


# ---------------------------------------------------------------------------
# Synthetic images
# ---------------------------------------------------------------------------


def test_red_on_white_ignores_background() -> None:
    img = _object_on_background((200, 30, 40), (255, 255, 255))
    names = colour_names(img)
    assert names[0][0] == "red"
    assert names[0][1] > 0.9
    assert "white" not in _names(img)
    mask = foreground_mask(img)
    assert mask.shape == img.shape[:2]
    assert mask[64, 64] and not mask[0, 0] and not mask[-1, -1]
    assert 0.2 < mask.mean() < 0.5  # the ellipse covers ~33% of the frame


@pytest.mark.parametrize("navy", [(30, 40, 80), (0, 0, 128), (25, 30, 60)])
def test_navy_on_white(navy: tuple[int, int, int]) -> None:
    assert _names(_object_on_background(navy, (255, 255, 255)))[0] == "navy blue"


def test_black_on_light_grey_background() -> None:
    img = _object_on_background((22, 22, 24), (200, 200, 200))
    names = _names(img)
    assert names[0] == "black"
    assert "grey" not in names  # the light grey backdrop is background, not product


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((30, 90, 200), "blue"),
        ((40, 140, 60), "green"),
        ((240, 210, 40), "yellow"),
        ((240, 130, 40), "orange"),
        ((110, 60, 140), "purple"),
        ((240, 130, 170), "pink"),
        ((100, 65, 40), "brown"),
        ((95, 25, 35), "maroon"),
        ((128, 128, 128), "grey"),
        ((220, 200, 170), "beige"),
    ],
)
def test_common_colours_on_white(rgb: tuple[int, int, int], name: str) -> None:
    assert _names(_object_on_background(rgb, (255, 255, 255)))[0] == name


def test_white_product_on_white_falls_back_to_all_pixels() -> None:
    img = _object_on_background((250, 250, 250), (255, 255, 255))
    assert foreground_mask(img).all()
    assert _names(img)[0] == "white"


def test_photo_without_uniform_border_uses_all_pixels() -> None:
    # Sky-like gradient on top, grass-like texture below: no uniform border at all.
    rng = np.random.default_rng(1)
    h, w = 96, 128
    img = np.zeros((h, w, 3), dtype=np.float64)
    t = np.linspace(0, 1, h // 2)[:, None]
    img[: h // 2] = np.stack([60 + 80 * t, 110 + 80 * t, 220 - 20 * t], axis=-1) * np.ones((1, w, 1))
    img[h // 2 :] = (50, 140, 50)
    img[h // 2 :] += rng.normal(0, 25, (h - h // 2, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    assert foreground_mask(img).all()
    names = _names(img)
    assert set(names[:2]) == {"blue", "green"}


def test_histogram_and_text() -> None:
    img = _object_on_background((200, 30, 40), (255, 255, 255))
    img[40:88, 50:78] = (20, 20, 20)  # a black panel on the red object
    hist = colour_histogram(img)
    assert hist.shape == (len(PALETTE_NAMES),)
    assert hist.sum() == pytest.approx(1.0)
    assert hist[PALETTE_NAMES.index("red")] > 0.3
    assert hist[PALETTE_NAMES.index("black")] > 0.3
    assert set(colour_text(img).split(", ")) == {"red", "black"}


def test_accepts_large_greyscale_and_float_input() -> None:
    big = _object_on_background((40, 140, 60), (255, 255, 255), size=600)
    assert _names(big)[0] == "green"
    assert _names(big.astype(np.float32))[0] == "green"
    grey = np.full((50, 80), 255, dtype=np.uint8)
    grey[10:40, 20:60] = 10
    assert _names(grey)[0] == "black"
    with pytest.raises(ValueError):
        colour_names(np.zeros((4, 4, 2), dtype=np.uint8))


def test_palette_is_small_lowercase_and_unique() -> None:
    assert 15 <= len(PALETTE_NAMES) <= 25
    assert len(set(PALETTE_NAMES)) == len(PALETTE_NAMES)
    assert all(n == n.lower() for n in PALETTE_NAMES)


# ---------------------------------------------------------------------------
# Query text
# ---------------------------------------------------------------------------


def _target(text: str) -> str:
    vec = text_colour_query(text)
    assert vec is not None
    assert vec.shape == (len(PALETTE_NAMES),)
    return PALETTE_NAMES[int(np.argmax(vec))]


def test_text_colour_query() -> None:
    assert _target("navy blue jeans") == "navy blue"
    assert _target("Navy shirt") == "navy blue"
    assert _target("red handbag") == "red"
    assert _target("dark-grey sweater") == "grey"
    assert _target("gray socks") == "grey"
    assert text_colour_query("a bag") is None
    assert text_colour_query("bluetooth speaker") is None  # whole words only
    vec = text_colour_query("red and white sneakers")
    assert vec is not None
    assert vec[PALETTE_NAMES.index("red")] == vec[PALETTE_NAMES.index("white")] == 1.0


def test_every_query_word_maps_into_the_palette() -> None:
    from imgsearch.embed.colors import _QUERY_WORDS

    for word, targets in _QUERY_WORDS.items():
        assert set(targets) <= set(PALETTE_NAMES), word
        assert max(targets.values()) == 1.0, word
        vec = text_colour_query(f"a {word} shirt")
        assert vec is not None and vec.max() == 1.0, word


def test_query_ranks_matching_image_first() -> None:
    red = colour_histogram(_object_on_background((200, 30, 40), (255, 255, 255)))
    navy = colour_histogram(_object_on_background((30, 40, 80), (255, 255, 255)))
    q = text_colour_query("red bag")
    assert q is not None
    assert red @ q > navy @ q
    q = text_colour_query("navy blue jeans")
    assert q is not None
    assert navy @ q > red @ q


# ---------------------------------------------------------------------------
# Real data (skipped when the shared fashion set is absent)
# ---------------------------------------------------------------------------

_REAL_TARGETS = CATALOG_COLOURS


def test_real_fashion_images_top3_floor() -> None:
    if not (FASHION / "products.csv").is_file():
        pytest.skip(f"fashion data set not found at {FASHION}")
    with open(FASHION / "products.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["baseColour"] in _REAL_TARGETS]
    rng = random.Random(0)
    sample = []
    for colour in _REAL_TARGETS:
        group = sorted((r for r in rows if r["baseColour"] == colour), key=lambda r: r["id"])
        sample += rng.sample(group, 9)

    top1 = top3 = white_top_on_coloured = coloured = 0
    for r in sample:
        with Image.open(FASHION / r["filename"]) as im:
            names = _names(np.asarray(im.convert("RGB")))
        want = _REAL_TARGETS[r["baseColour"]]
        top1 += names[0] == want
        top3 += want in names[:3]
        if want not in ("white", "grey", "beige"):
            coloured += 1
            white_top_on_coloured += names[0] == "white"

    n = len(sample)
    # Measured ~0.61 top-1 / ~0.79 top-3 on 1,500 images (bench/colour_accuracy.py);
    # floors leave room for sampling noise on ~100 images.  Without Lab chroma
    # handling top-3 falls to ~0.6 or below; without background removal the white
    # backdrop wins on most coloured products.
    assert top3 / n >= 0.65, f"top-3 hit rate {top3 / n:.2f}"
    assert top1 / n >= 0.45, f"top-1 accuracy {top1 / n:.2f}"
    assert white_top_on_coloured / coloured <= 0.1, "background is not being removed"


def test_words_that_also_name_things_are_colours_only_as_modifiers():
    from imgsearch.embed.colors import PALETTE_NAMES, text_colour_query

    assert text_colour_query("a cup of coffee") is None
    assert text_colour_query("an orange") is None
    gold = text_colour_query("gold watch")
    assert gold is not None and PALETTE_NAMES[int(gold.argmax())] == "mustard"
    assert text_colour_query("gold") is not None
