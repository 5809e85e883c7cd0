"""Duplicate finding on a labelled set made from the fashion catalog, side by side with imagededup.

    python bench/dups.py                         # set in bench/out/dups, CLI runs, sweep, 10k timing
    python bench/dups.py --imagededup-python /work/venv-imagededup/bin/python

The set (``recipes/dups_set.py``, which ``recipes/dups_model.py`` fits the shipped pair model
``imgsearch/pretrained/dups.json`` on, development half only): seeded originals from the catalog,
each with edited copies (downscale 50-60 % + JPEG quality 30-40; 5-7 % cropped off each side + 15 %
brighter; a small text watermark) and a horizontal flip (scored apart: some users count a mirror
image as a duplicate, some do not), among look-alike products of the same articleType (half also
of the same baseColour): the hard negatives.
Everything goes through the CLI (`imgsearch index`, `imgsearch dups --format json`). Pair
precision, recall and F1 are reported on a seeded development half of the originals (where the
default threshold was tuned) and on the held-out half, for imgsearch and for imagededup's PHash and
DHash (run by another Python, the venv holding imagededup; skipped with a message when absent).
Last, `dups` is timed on an index of the whole catalog plus this set (over 10,000 items).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, ROOT, machine

from imgsearch.store import Store
from recipes.dups_set import (
    EDITS,
    FLIP,
    cli,
    imgsearch_groups,
    kind_recall,
    make_set,
    pairs_of_groups,
    score,
)

SWEEP_SCORE = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
HASH_SWEEP = (0, 2, 4, 6, 8, 10, 12, 14, 16)  # imagededup max_distance_threshold (10 is its default)
IMAGEDEDUP_DEFAULT = 10


# --- imagededup in its own venv -------------------------------------------------------------------

_IMAGEDEDUP = r"""
import importlib.util, json, os, sys, time, types
# imagededup's package __init__ files import torch (for its CNN method); the hashing module needs
# none of it, so its parent packages are registered empty and only hashing.py is imported.
root = importlib.util.find_spec("imagededup").submodule_search_locations[0]
for sub in ("utils", "methods"):
    m = types.ModuleType("imagededup." + sub); m.__path__ = [os.path.join(root, sub)]
    sys.modules[m.__name__] = m
from imagededup.methods.hashing import PHash, DHash
folder, thresholds = sys.argv[1], [int(t) for t in sys.argv[2].split(",")]
out = {}
for cls in (PHash, DHash):
    t0 = time.perf_counter()
    hasher = cls(verbose=False)
    encodings = hasher.encode_images(image_dir=folder)
    encode_s = time.perf_counter() - t0
    runs = {}
    for t in thresholds:
        t1 = time.perf_counter()
        dups = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=t)
        runs[t] = {"pairs": sorted({tuple(sorted((a, b))) for a, bs in dups.items() for b in bs}),
                   "find_s": time.perf_counter() - t1}
    out[cls.__name__] = {"encode_s": encode_s, "runs": runs}
print(json.dumps(out))
"""


def imagededup_pairs(python: str | None, folder: Path) -> dict | None:
    if not python or not Path(python).exists():
        print(
            "imagededup: skipped (no --imagededup-python / $IMAGEDEDUP_PYTHON; make one with "
            "`python3 -m venv /work/venv-imagededup && /work/venv-imagededup/bin/pip install --no-deps "
            "imagededup && /work/venv-imagededup/bin/pip install numpy scipy PyWavelets Pillow tqdm`)"
        )
        return None
    thresholds = ",".join(str(t) for t in HASH_SWEEP)
    done = subprocess.run(
        [python, "-c", _IMAGEDEDUP, str(folder), thresholds], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        print(f"imagededup: failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(done.stdout)


# --- the run --------------------------------------------------------------------------------------


def _row(name: str, dev: dict, test: dict, seconds: float | None = None) -> str:
    t = f"{seconds:6.2f} s" if seconds is not None else ""
    return (
        f"{name:<28} dev P {dev['precision']:.3f} R {dev['recall']:.3f} F1 {dev['f1']:.3f} | held-out "
        f"P {test['precision']:.3f} R {test['recall']:.3f} F1 {test['f1']:.3f} "
        f"R {'/'.join(EDITS)} {'/'.join(f'{test[k]:.2f}' for k in EDITS)} "
        f"flip R {test['flip_recall']:.2f} {t}"
    )


def scored(found: set, labels: dict, half: str) -> dict:
    """``score`` plus each kind's recall (``kind_recall``) under the kind's name."""
    kinds = {k: n / total if total else 1.0 for k, (n, total) in kind_recall(found, labels, half).items()}
    return {**score(found, labels, half), **kinds}


def kind_table(found: set, labels: dict) -> str:
    """Rows per half: each edit kind's recall (found/pairs, original–copy), copy–copy pairs,
    the flip apart, and the pair precision."""
    head = ["half", *EDITS, "copies", FLIP, "precision"]
    lines = ["  " + "".join(f"{h:<16}" for h in head)]
    for half, title in (("dev", "dev"), ("test", "held-out")):
        kinds = kind_recall(found, labels, half)
        s = score(found, labels, half)
        cells = [f"{n / t:.3f} ({n}/{t})" for n, t in (kinds[k] for k in (*EDITS, "copies", FLIP))]
        cells.append(f"{s['precision']:.3f} ({s['tp']}/{s['tp'] + s['fp']})")
        lines.append("  " + "".join(f"{c:<16}" for c in [title, *cells]))
    return "\n".join(lines)


def run_imgsearch(store: Path, labels: dict, sweep: bool = True) -> float:
    print("\nimgsearch dups (pair score threshold; dev = tuning half, held-out = the other half)")
    for t in SWEEP_SCORE if sweep else ():
        groups, seconds = imgsearch_groups(store, t)
        found = pairs_of_groups(groups)
        dev, test = scored(found, labels, "dev"), scored(found, labels, "test")
        print(_row(f"  --threshold {t}", dev, test, seconds))
    groups, seconds = imgsearch_groups(store, None)
    found = pairs_of_groups(groups)
    print(_row("  default", scored(found, labels, "dev"), scored(found, labels, "test"), seconds))
    print("\nper edit kind, default threshold: recall of (original, copy) pairs; pair precision")
    print(kind_table(found, labels))
    return seconds


def run_imagededup(python: str | None, folder: Path, labels: dict) -> None:
    result = imagededup_pairs(python, folder)
    if result is None:
        return
    for method, info in result.items():
        print(f"\nimagededup {method} (max_distance_threshold; encode {info['encode_s']:.2f} s)")
        for t, run in info["runs"].items():
            found = {tuple(p) for p in run["pairs"]}
            mark = " (imagededup default)" if int(t) == IMAGEDEDUP_DEFAULT else ""
            dev, test = scored(found, labels, "dev"), scored(found, labels, "test")
            print(_row(f"  {t}{mark}", dev, test, info["encode_s"] + run["find_s"]))


def time_large(folder: Path, work: Path) -> None:
    """`dups` on an index of the whole catalog plus the labelled set (over 10,000 items), and what
    the pair table it reads costs `imgsearch index` (built once per published generation)."""
    import numpy as np

    from imgsearch import dups as dp

    store = work / "large.imgsearch"
    if not Store.is_store(store):
        print(f"\nembedding the catalog + set into {store} (once; minutes)")
        cli("embed", str(FASHION / "images"), str(folder), "--out", str(store), "--quiet")
    _, index_s = cli("index", str(store), "--quiet")  # adds the pair table to an older store
    gen = Store(store).require()
    t0 = time.perf_counter()
    image, colour = np.asarray(gen.vectors["image"]), gen.vectors["colour"]
    table = dp.pair_table(list(gen.items), image, colour, dp.image_index_parts(gen))
    table_s = time.perf_counter() - t0
    load = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    times = [imgsearch_groups(store, None)[1] for _ in range(3)]
    groups, _ = imgsearch_groups(store, None)
    print(
        f"\n`imgsearch dups` on {gen.count:,} items ({gen.index_info('image')[0]['method']}): "
        f"wall {min(times):.2f} s best of 3 (all: {', '.join(f'{t:.2f}' for t in times)}), "
        f"{len(groups)} groups; 1-min load average before: {load:.1f}"
    )
    print(
        f"index time: `imgsearch index` on the store {index_s:.1f} s, of which the pair table "
        f"({len(table.a):,} pairs) {table_s:.1f} s (timed again here)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "dups")
    parser.add_argument("--originals", type=int, default=240)  # 120 pairs per edit kind and half
    parser.add_argument("--negatives-per-original", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--imagededup-python", default=os.environ.get("IMAGEDEDUP_PYTHON"))
    parser.add_argument("--skip-large", action="store_true", help="skip timing on the 10,000+ item index")
    parser.add_argument("--no-sweep", action="store_true", help="the default threshold only")
    args = parser.parse_args()
    print(machine())
    folder = args.out / "set"
    labels = make_set(folder, args.originals, args.negatives_per_original, args.seed)
    (args.out / "labels.json").write_text(json.dumps(labels))
    kinds = [v["kind"] for v in labels["items"].values()]
    print(
        f"set: {len(kinds)} images, {kinds.count('orig')} originals x ({', '.join(EDITS)}) + {FLIP}, "
        f"{kinds.count('negative')} look-alike negatives; seed {args.seed}"
    )
    store = args.out / "set.imgsearch"
    shutil.rmtree(store, ignore_errors=True)
    _, index_s = cli("index", str(folder), "--out", str(store), "--quiet")
    dups_s = run_imgsearch(store, labels, sweep=not args.no_sweep)
    print(f"wall time, whole folder: imgsearch index {index_s:.1f} s + dups {dups_s:.2f} s")
    run_imagededup(args.imagededup_python, folder, labels)
    if not args.skip_large:
        time_large(folder, args.out)


if __name__ == "__main__":
    main()
