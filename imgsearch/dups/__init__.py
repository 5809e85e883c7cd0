"""Exact and near-duplicate images in an index (``imgsearch dups``).

At embed time every file gets a small signature, computed from the bytes and the image that
``embed`` decodes anyway: a SHA-256 of the file bytes (exact duplicates), a 64-bit DCT
perceptual hash (pHash), a 32×32 grayscale thumbnail (1 KB) and one of the image's centre
(CROP_KEEP of each side), which a copy cropped by about that much matches as it is.

When ``imgsearch index`` publishes a generation it also builds the pair table (``pair_table``,
stored as ``dups.npz``): the image vectors only *propose* candidate pairs, each item's nearest
neighbours through the index just built plus items whose pHashes share a 16-bit block (a
resized, recompressed copy can fall out of the vector neighbourhood, since Lite0 sees the blur,
while its pHash barely moves), plus items whose centre-thumbnail hash is near another's whole
one (a cropped copy), plus the pairs that close a triangle of likely pairs. Each pair gets four
features: the image cosine, the correlation of the two thumbnails once lined up (a grid of crops
and shifts, then Gauss-Newton steps to a fraction of a pixel: an edited copy lines up, a
look-alike product does not; one item's centre thumbnail stands in for its whole one where that
lines up better), the colour-histogram cosine, and the correlation of the thumbnails' detail
(high-pass) at that alignment. ``dups`` itself only scores the stored pairs with a logistic model
(``pretrained/dups.json``), joins groups by average linkage and prints them: on 10,661 items it
runs in well under a second, where searching and lining up the pairs costs seconds.

Why not a cosine threshold alone: look-alike products on white backgrounds are as close in Lite0
space as edited copies of one photo (bench/dups.py: no cosine threshold reaches precision 0.5
at recall 0.5 there), while the thumbnails see the pixels.

Modules: ``signatures`` (embed time), ``pairs`` (the pair table and its model), ``groups``
(``dups`` time).
"""

from imgsearch.dups.groups import SAME_FILE, Group, LeftOut, find_groups, fresh_groups
from imgsearch.dups.pairs import (
    DEFAULT_THRESHOLD,
    FEATURE_NAMES,
    FEATURES,
    PairTable,
    Signatures,
    aligned_features,
    image_index_parts,
    pair_features,
    pair_table,
    table_of,
)
from imgsearch.dups.signatures import THUMB, decode_and_sign, signature, thumbnail_gray

__all__ = [
    "DEFAULT_THRESHOLD",
    "FEATURES",
    "FEATURE_NAMES",
    "SAME_FILE",
    "THUMB",
    "Group",
    "LeftOut",
    "PairTable",
    "Signatures",
    "aligned_features",
    "decode_and_sign",
    "find_groups",
    "fresh_groups",
    "image_index_parts",
    "pair_features",
    "pair_table",
    "signature",
    "table_of",
    "thumbnail_gray",
]
