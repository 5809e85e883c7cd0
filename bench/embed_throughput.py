"""Embedding throughput: decode only, model only and end to end (img/s), and texts/s.

    python bench/embed_throughput.py [--n 512]

Reads N images of ../shared/data/fashion in place. Image encoders: EfficientNet-Lite0 on LiteRT
(the default runtime) and on Keras, ResNet50 on Keras with random weights (speed only). End to
end = the whole `embed` job (decode, colour, model, tags, text, writes) into a temporary store.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, machine, require

from imgsearch.embed.job import EmbedOptions, decoded_chunks
from imgsearch.files.catalog import scan
from imgsearch.indexing.build import embed_folder
from imgsearch.store import Store


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:7.1f}/s"


def model_only(enc, pixels: np.ndarray) -> float:
    enc.encode(pixels[: enc.batch_size])  # trace / allocate once
    t = time.perf_counter()
    for start in range(0, len(pixels), enc.batch_size):
        enc.encode(pixels[start : start + enc.batch_size])
    return len(pixels) / (time.perf_counter() - t)


def end_to_end(entries, runtime: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        st = Store(Path(tmp) / "v")
        t = time.perf_counter()
        report = embed_folder([e.path for e in entries], st, EmbedOptions(runtime=runtime))
        total = time.perf_counter() - t
        shutil.rmtree(st.root)
    return len(entries) / total, report.embedded_per_second


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=512)
    args = parser.parse_args()
    require(FASHION)
    entries = scan([str(FASHION / "images")])[0][: args.n]
    print(f"machine: {machine()}; {len(entries)} fashion images (224×224 JPEG)")
    t = time.perf_counter()
    pixels = np.stack([d.pixels for chunk in decoded_chunks(entries, 224, 256) for _, d in chunk])
    print(f"decode + resize + colour (2 threads)     {rate(len(entries), time.perf_counter() - t)}")

    from imgsearch.encoders import (
        load_image_encoder,
        load_text_encoder,
        open_encoder,
    )
    from imgsearch.encoders.resnet import ResNet50Encoder

    lite_rt, lite_keras = open_encoder("image", "efficientnet-lite0"), load_image_encoder()
    figures = {
        "efficientnet-lite0 LiteRT": model_only(lite_rt, pixels),
        "efficientnet-lite0 Keras": model_only(lite_keras, pixels),
        "resnet50 Keras (random weights)": model_only(ResNet50Encoder(weights=None), pixels[:128]),
    }
    for name, value in figures.items():
        print(f"model only, {name:32s} {value:7.1f}/s")
    for runtime, model_key in (
        ("litert", "efficientnet-lite0 LiteRT"),
        ("keras", "efficientnet-lite0 Keras"),
    ):
        total, embedding = end_to_end(entries, runtime)
        share = total / figures[model_key]
        print(f"embed end to end, {runtime:6s} {total:7.1f}/s  (while embedding {embedding:.1f}/s)")
        print(f"  = {share:.0%} of model-only, job start-up included")
    with open(FASHION / "products.csv", encoding="utf-8") as f:
        titles = [r["productDisplayName"] for r in csv.DictReader(f)][: 4 * args.n]
    for name, enc in (
        ("minilm LiteRT", open_encoder("text", "minilm")),
        ("minilm Keras", load_text_encoder()),
    ):
        enc.encode(titles[:64])
        t = time.perf_counter()
        enc.encode(titles)
        print(
            f"text {name:14s} {rate(len(titles), time.perf_counter() - t)} (batch {enc.batch_size}, "
            "padded per batch)"
        )


if __name__ == "__main__":
    main()
