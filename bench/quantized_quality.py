"""What reduced precision costs in search quality and buys in speed, on the fashion test split.

    python bench/quantized_quality.py [--n 1912]

Encodes the test-split images (product id mod 5 == 0) with the LiteRT image encoder at fp32,
fp16, int8 (dynamic range) and int8-full (calibrated on 200 training-split images), and prints
model-only img/s (batch 1, 2 threads, one run each, same process) and image → image mAP@10 / P@10
(relevant = same articleType) of each against fp32.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, machine, require

from imgsearch.encoders import load_image_encoder
from imgsearch.encoders.litert import load_litert_image
from imgsearch.encoders.litert_export import export_image
from imgsearch.files.images import load_rgb_array
from imgsearch.train.evaluate import image_to_image
from imgsearch.train.splits import is_test_item


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1912)
    args = parser.parse_args()
    require(FASHION)
    with open(FASHION / "products.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    test = [r for r in rows if is_test_item(r["filename"])][: args.n]
    calib = [r for r in rows if not is_test_item(r["filename"])][:200]
    print(f"machine: {machine()}; {len(test)} test-split images")
    pixels = np.stack([load_rgb_array(FASHION / r["filename"], 224) for r in test])
    labels = [r["articleType"] for r in test]
    keras_encoder = load_image_encoder()
    calibration = [load_rgb_array(FASHION / r["filename"], 224)[None] for r in calib]
    base = None
    print("| precision | img/s (model only) | speed vs fp32 | mAP@10 | P@10 | recall@10 vs fp32 | cosine |")
    print("|---|---|---|---|---|---|---|")
    for precision in ("fp32", "fp16", "int8", "int8-full"):
        export_image(keras_encoder, precision, calibration if precision == "int8-full" else None)
        enc = load_litert_image(keras_encoder.spec.id, precision)
        enc.encode(pixels[:1])
        t = time.perf_counter()
        feats = np.concatenate([enc.encode(pixels[i : i + 1]).features for i in range(len(pixels))])
        rate = len(pixels) / (time.perf_counter() - t)
        m = image_to_image(feats, labels, sample=None, ks=(10,))
        if base is None:
            base = (rate, feats)
        cos = float(np.mean(np.sum(feats * base[1], axis=1)))
        quality = f"{m.values['mAP'][10]:.4f} | {m.values['precision'][10]:.4f}"
        same = top10_overlap(feats, base[1])
        print(f"| {precision} | {rate:.1f} | {rate / base[0]:.2f}× | {quality} | {same:.4f} | {cos:.5f} |")


def top10_overlap(feats: np.ndarray, reference: np.ndarray) -> float:
    """recall@10 against fp32: the share of each item's fp32 top-10 neighbours still in its top 10."""

    def top(v):
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1)[:, :10]

    a, b = top(feats), top(reference)
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]))


if __name__ == "__main__":
    main()
