"""OCR (`index --ocr`): the engine's speed, and brand / coarse-name text P@10 on grocery val, through the CLI.

    python bench/ocr.py [--work bench/out/ocr] [--speed 40] [--engines 60] [--imgsearch CLI]

1. Speed: ``imgsearch.embed.ocr.read_text`` on the first ``--speed`` val package photos (348 px) and
   as many Flickr8k photos (~500 px, mostly without print), img/s on this machine (the engine
   loaded first, not counted).
2. Quality: ``../shared/tools/grocery_eval.py --split val`` on the val photos as a plain folder
   (no titles), once indexed without OCR, then after ``imgsearch index --ocr`` on the same folder
   (the tool's own ``index`` then finds it up to date and keeps OCR on). Brand queries ("oatly",
   "god morgon", ...) can only be answered by the words on the packages.

3. Engines (``--engines N``, 0 skips): ``imgsearch embed --ocr`` on N val package photos, the local
   engine, then ``--engine beam`` (DirectRunner, its default worker processes), each into a fresh
   directory, wall-clock photos/s including the embedding and, for Beam, its start-up.

Nothing was fitted on the val split: the ocr space's weight is a rule (``search.OCR_WEIGHT``).
Prints one JSON line last; docs/ocr.md has the figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FLICKR, ROOT, machine, require

GROCERY = ROOT.parent / "shared" / "data" / "grocery"
TOOL = ROOT.parent / "shared" / "tools" / "grocery_eval.py"


def speed(n: int) -> dict[str, float]:
    """Photos read per second by the OCR engine, one process (its own threads): on val packages
    (print on nearly every photo), and on everyday photos (Flickr8k, mostly without print: the
    recogniser then has little to read)."""
    from imgsearch.embed import ocr

    with open(GROCERY / "items.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val" and r["group"] == "Packages"]
    found = {}
    for name, paths in (
        ("packages", [str(GROCERY / r["path"]) for r in rows[:n]]),
        ("everyday", sorted(str(p) for p in (FLICKR / "images").glob("*.jpg"))[:n]),
    ):
        ocr.read_text(paths[0])  # loads the engine
        started = time.perf_counter()
        words = ocr.read_all(paths)
        found[name] = round(len(paths) / (time.perf_counter() - started), 2)
        found[f"{name}_with_words"] = sum(bool(w) for w in words)
    return found


def engines(cli: str, work: Path, n: int) -> dict[str, float]:
    """Photos/s of ``embed --ocr`` through the CLI with each engine, on the same n photos."""
    with open(GROCERY / "items.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val" and r["group"] == "Packages"]
    paths = "".join(str(GROCERY / r["path"]) + "\n" for r in rows[:n])
    found = {}
    for engine in ("local", "beam"):
        started = time.perf_counter()
        subprocess.run(
            [cli, "embed", "-", "--out", str(work / engine), "--ocr", "--engine", engine, "--quiet"],
            input=paths,
            text=True,
            check=True,
        )
        found[engine] = round(n / (time.perf_counter() - started), 2)
    return found


def evaluate(cli: str, work: Path) -> dict:
    """grocery_eval's summary line (the last one) on the val split in ``work``."""
    out = subprocess.run(
        [sys.executable, str(TOOL), cli, str(GROCERY), str(work), "--split", "val"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "ocr")
    parser.add_argument("--speed", type=int, default=40, help="photos timed for img/s")
    parser.add_argument("--engines", type=int, default=60, help="photos for the local/Beam comparison")
    parser.add_argument("--imgsearch", default=str(Path(sys.executable).parent / "imgsearch"))
    args = parser.parse_args()
    require(GROCERY / "items.csv")
    shutil.rmtree(args.work, ignore_errors=True)
    img_s = speed(args.speed)
    before = evaluate(args.imgsearch, args.work)
    started = time.perf_counter()
    subprocess.run([args.imgsearch, "index", str(args.work / "catalog"), "--ocr", "--quiet"], check=True)
    ocr_index_s = time.perf_counter() - started  # OCR of every photo (embeddings are reused)
    after = evaluate(args.imgsearch, args.work)
    per_engine = engines(args.imgsearch, args.work, args.engines) if args.engines else None
    keys = ("text_P@10", "brand_P@10", "image_P@10")
    print(
        json.dumps(
            {
                "machine": machine(),
                "ocr_img_per_s": img_s,
                "index_ocr_s": round(ocr_index_s, 1),
                "items": after["items"],
                "before": {k: before[k] for k in keys},
                "after": {k: after[k] for k in keys},
                "embed_ocr_img_per_s": per_engine,
            }
        )
    )


if __name__ == "__main__":
    main()
