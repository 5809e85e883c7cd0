"""Frozen-feature metric head vs fine-tuning the top backbone block, on a fashion subset.

    python bench/finetune_eval.py [--every 4] [--blocks 1] [--epochs 3]

Fine-tuning runs the whole network on every step, so on a 2-core CPU it is measured on a
subset (every 4th product, ~2,400 photos; split by product id as everywhere). Prints image →
image mAP@10 / P@10 (relevant = same articleType) on the subset's test split for: the
off-the-shelf features, the frozen-feature metric head, and the fine-tuned encoder + head,
with the training times.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, machine, require

BIN = Path(sys.executable).with_name("imgsearch")


def run(*args: str) -> str:
    done = subprocess.run([str(BIN), *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"imgsearch {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def evaluate(index: Path, meta: Path) -> str:
    m = json.loads(
        run(
            "eval",
            "--meta",
            str(meta),
            "--index",
            str(index),
            "--label-column",
            "articleType",
            "--split",
            "test",
            "--sample",
            "0",
            "-f",
            "json",
        )
    )
    return f"{m['mAP']['10']:.3f} | {m['precision']['10']:.3f} | {m['queries']}"


def timed(*args: str) -> float:
    t = time.perf_counter()
    run(*args)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    require(FASHION)
    work = Path(tempfile.mkdtemp(prefix="imgsearch-ft-"))
    photos = work / "photos"
    photos.mkdir()
    with open(FASHION / "products.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:: args.every]
    for r in rows:
        os.symlink(FASHION / r["filename"], photos / Path(r["filename"]).name)
    meta = FASHION / "products.csv"
    print(f"machine: {machine()}; {len(rows)} fashion photos (every {args.every}th product)")
    run("index", str(photos), "--meta", str(meta), "--text-columns", "productDisplayName", "-q")
    base = photos / ".imgsearch"
    print("| image → image, same articleType, subset test split | mAP@10 | P@10 | queries | training |")
    print("|---|---|---|---|---|")
    print(f"| off-the-shelf Lite0 features | {evaluate(base, meta)} | — |")
    frozen = work / "frozen"
    t_frozen = timed(
        "train", "--meta", str(meta), "--heads", "metric", "--out", str(frozen), "--index", str(base)
    )
    run("index", str(base), "--model", str(frozen), "-q")
    print(f"| metric head on frozen features | {evaluate(base, meta)} | {t_frozen:.0f} s |")
    tuned = work / "tuned"
    t_tuned = timed(
        "train",
        "--meta",
        str(meta),
        "--heads",
        "metric",
        "--out",
        str(tuned),
        "--index",
        str(base),
        "--finetune-blocks",
        str(args.blocks),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
    )
    tuned_index = work / "tuned-index"
    run(
        "index",
        str(photos),
        "--out",
        str(tuned_index),
        "--image-encoder",
        f"finetuned:{tuned}",
        "--model",
        str(tuned),
        "--meta",
        str(meta),
        "--text-columns",
        "productDisplayName",
        "-q",
    )
    name = f"top {args.blocks} block(s) fine-tuned + head, {args.epochs} epochs, batch {args.batch_size}"
    print(f"| {name} | {evaluate(tuned_index, meta)} | {t_tuned:.0f} s |")


if __name__ == "__main__":
    main()
