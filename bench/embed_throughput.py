"""Embedding throughput: decode+colour, model only, end to end (img/s), and text encoder (texts/s).

Usage: python bench/embed_throughput.py [--n 512] [--encoders efficientnet-lite0,resnet50]
Reads N images of ../shared/data/fashion in place. resnet50 runs with random weights (speed only).
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

from imgsearch.catalog import scan
from imgsearch.embed import EmbedOptions, _decoded_chunks, embed
from imgsearch.store import Store


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:7.1f}/s"


def image_encoder(name: str):
    from imgsearch.encoders import load_image_encoder
    from imgsearch.encoders.resnet import ResNet50Encoder

    return ResNet50Encoder(weights=None) if name == "resnet50" else load_image_encoder(name)


def bench_images(name: str, entries, n: int) -> None:
    enc = image_encoder(name)
    t = time.perf_counter()
    pixels = [d.pixels for chunk in _decoded_chunks(entries, enc.image_size, 256) for _, d in chunk]
    decode_s = time.perf_counter() - t
    batch = np.stack(pixels)
    enc.encode(batch[: enc.batch_size])  # trace once
    t = time.perf_counter()
    for start in range(0, n, enc.batch_size):
        enc.encode(batch[start : start + enc.batch_size])
    model_s = time.perf_counter() - t
    print(
        f"{name:20s} decode+colour {rate(n, decode_s)}   model only {rate(n, model_s)}"
        f"   (batch {enc.batch_size})"
    )
    return model_s


def bench_end_to_end(entries, n: int, model_s: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        st = Store(Path(tmp) / "v")
        t = time.perf_counter()
        report = embed([e.path for e in entries], st, EmbedOptions())
        total = time.perf_counter() - t
        shutil.rmtree(st.root)
    print(
        f"{'embed end to end':20s} {rate(n, total)} (whole job incl. tags, colours, text, writes; "
        f"{report.embedded_per_second:.1f} img/s while embedding) = "
        f"{(n / total) / (n / model_s):.0%} of model-only"
    )


def bench_text(n: int) -> None:
    from imgsearch.encoders import load_text_encoder

    with open(FASHION / "products.csv", encoding="utf-8") as f:
        titles = [r["productDisplayName"] for r in csv.DictReader(f)][:n]
    enc = load_text_encoder("minilm")
    enc.encode(titles[:64])
    t = time.perf_counter()
    enc.encode(titles)
    print(
        f"{'minilm titles':20s} {rate(len(titles), time.perf_counter() - t)} "
        f"(batch {enc.batch_size}, padded per batch)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--encoders", default="efficientnet-lite0,resnet50")
    args = parser.parse_args()
    require(FASHION)
    entries, _ = scan([str(FASHION / "images")])
    entries = entries[: args.n]
    print(f"machine: {machine()}; {len(entries)} fashion images")
    model_s = {name: bench_images(name, entries, len(entries)) for name in args.encoders.split(",")}
    if "efficientnet-lite0" in model_s:
        bench_end_to_end(entries, len(entries), model_s["efficientnet-lite0"])
    bench_text(4 * args.n)


if __name__ == "__main__":
    main()
