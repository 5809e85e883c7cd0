"""LiteRT vs Keras encoder speed, and what each reduced precision costs in cosine to fp32.

Usage: python bench/litert_speed.py [--n 256] [--texts 1024] [--threads 2]
Exports (once, cached under the imgsearch cache) Lite0 at fp32/fp16/int8/int8-full and MiniLM at
fp32/fp16/int8, then times model-only encoding of N fashion images (batch 1 and 16) and of fashion
titles, and a cold text encode in a fresh process that never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, ROOT, machine, require

from imgsearch.files.images import load_rgb_array

IMAGE_PRECISIONS = ("fp32", "fp16", "int8", "int8-full")
TEXT_PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION = slice(2000, 2200)  # int8-full calibration images, disjoint from the timed ones


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def encode_all(encoder, pixels: np.ndarray):
    """Feed in chunks of the encoder's batch size, as the embed step does."""
    from imgsearch.encoders.base import ImageBatchOutput

    outs = [
        encoder.encode(pixels[i : i + encoder.batch_size]) for i in range(0, len(pixels), encoder.batch_size)
    ]
    return ImageBatchOutput(np.concatenate([o.features for o in outs]))


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.sum(a * b, axis=1)))


def bench_images(files: list[Path], calibration: list[Path], threads: int) -> None:
    from imgsearch.encoders import load_image_encoder
    from imgsearch.encoders.litert import LiteRTImageEncoder
    from imgsearch.encoders.litert_export import export_image

    pixels = np.stack([load_rgb_array(f, 224) for f in files])
    keras_enc = load_image_encoder("efficientnet-lite0")
    keras_enc.encode(pixels[: keras_enc.batch_size])  # trace
    seconds, reference = timed(encode_all, keras_enc, pixels)
    n = len(pixels)
    print(f"{'keras lite0':22s} batch {keras_enc.batch_size:2d}   {n / seconds:7.1f} img/s")
    representative = [np.stack([load_rgb_array(f, 224) for f in calibration])]
    fp32 = None
    for precision in IMAGE_PRECISIONS:
        path = export_image(keras_enc, precision, representative)
        for batch in (1, 16):
            enc = LiteRTImageEncoder(path, keras_enc.spec, num_threads=threads, batch_size=batch)
            enc.encode(pixels[:batch])  # allocate + XNNPACK set-up outside the clock
            seconds, out = timed(encode_all, enc, pixels)
            fp32 = out.features if precision == "fp32" and fp32 is None else fp32
            print(
                f"{'litert ' + precision:22s} batch {batch:2d}   {n / seconds:7.1f} img/s   "
                f"cos to fp32 {mean_cosine(out.features, fp32):.5f}   "
                f"to keras {mean_cosine(out.features, reference.features):.5f}   "
                f"{path.stat().st_size / 1e6:5.1f} MB"
            )


def bench_text(titles: list[str], threads: int) -> None:
    from imgsearch.encoders import load_text_encoder
    from imgsearch.encoders.litert import cached_path, load_litert_text
    from imgsearch.encoders.litert_export import export_text

    keras_enc = load_text_encoder("minilm")
    keras_enc.encode(titles[:64])
    seconds, reference = timed(keras_enc.encode, titles)
    print(f"{'keras minilm':22s} batch {keras_enc.batch_size:2d}   {len(titles) / seconds:7.1f} texts/s")
    fp32 = None
    for precision in TEXT_PRECISIONS:
        export_text(keras_enc, precision)
        for batch in (1, 32):
            enc = load_litert_text(keras_enc.spec.id, precision, num_threads=threads, batch_size=batch)
            enc.encode(titles[:64])
            seconds, out = timed(enc.encode, titles)
            fp32 = out if precision == "fp32" and fp32 is None else fp32
            size = cached_path(keras_enc.spec.id, precision).stat().st_size / 1e6
            print(
                f"{'litert ' + precision:22s} batch {batch:2d}   {len(titles) / seconds:7.1f} texts/s "
                f"cos to fp32 {mean_cosine(out, fp32):.5f}   to keras {mean_cosine(out, reference):.5f}"
                f"   {size:5.1f} MB"
            )
    bench_cold_query(keras_enc.spec.id)


COLD = """
import sys, time
t = time.perf_counter()
from imgsearch.encoders.litert import load_litert_text
enc = load_litert_text({spec_id!r})
loaded = time.perf_counter()
enc.encode(["red bag"])
done = time.perf_counter()
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print(f"{{loaded - t:.2f}} {{done - loaded:.3f}} {{heavy}}")
"""


def bench_cold_query(spec_id: str) -> None:
    """What a cold ``query --text`` pays for its text vector: import + load + one encode."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", COLD.format(spec_id=spec_id)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split(maxsplit=2)
    total = time.perf_counter() - start
    print(
        f"cold text encode in a fresh process: {total:.2f} s total (import+load {out[0]} s, "
        f"encode {out[1]} s); tensorflow/keras imported: {out[2]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    require(FASHION / "products.csv")
    with open(FASHION / "products.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    files = [FASHION / r["filename"] for r in rows if (FASHION / r["filename"]).exists()]
    print(f"machine: {machine()}; {args.threads} interpreter threads")
    print(f"images: {min(args.n, len(files))} fashion photos, model only (decoded beforehand)")
    bench_images(files[: args.n], files[CALIBRATION], args.threads)
    titles = [r["productDisplayName"] for r in rows][: args.texts]
    print(f"texts: {len(titles)} fashion titles, sorted and padded per batch")
    bench_text(titles, args.threads)


if __name__ == "__main__":
    main()
