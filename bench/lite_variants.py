"""EfficientNet-Lite0/1/2 as image encoders: embedding speed against photo-head quality.

    python bench/lite_variants.py [--n 1000] [--rounds 3] [--encoders efficientnet-lite0 ...]
        [--skip-speed] [--skip-quality] [--reuse]

Speed: the CLI, `imgsearch embed DIR --out X --image-encoder E` (LiteRT, the default runtime), on
the same N fashion photos (the first N by file name, copied to a temporary folder), into a fresh
store each time. A first untimed run per encoder makes its LiteRT export; then the rounds are
interleaved across encoders, as the machine may be shared: the best and the median img/s are
printed, with the 1-minute load average.

Quality: `recipes/photo_head.py --augment 3 --image-encoder E` (trained and reported, not written),
the recipe and split of the shipped photo head (Flickr8k outside bench/flickr8k_holdout.txt, 3
augmented copies, the same seeds), so only the image features differ. Printed: validation R@10
and held-out caption → image R@1/5/10 of the head alone at 224 px and on the held-out photos as
200-px 4:3 JPEG thumbnails.
These are development figures (library functions, not the CLI); the CLI figures come from
../shared/tools/caption_eval.py. Embedding the ~30,000 images per encoder takes 10-20 minutes on
2 cores; --reuse prints figures already written to bench/out/lite-variants/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, FLICKR, ROOT, machine, require

ENCODERS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
OUT = ROOT / "bench" / "out" / "lite-variants"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def embed_rate(folder: Path, encoder: str, out: Path) -> float:
    """img/s as `imgsearch embed` prints it, into a fresh store."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "imgsearch",
        "embed",
        str(folder),
        "--out",
        str(out),
        "--image-encoder",
        encoder,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), check=True)
    found = re.search(r"([\d.]+) img/s", done.stdout + done.stderr)
    if not found:
        sys.exit(f"no img/s in the output of {' '.join(cmd)}:\n{done.stdout}{done.stderr}")
    return float(found[1])


def speed(encoders: list[str], n: int, rounds: int) -> dict[str, dict]:
    images = sorted((FASHION / "images").glob("*.jpg"))[:n]
    with tempfile.TemporaryDirectory(prefix="lite-speed-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for p in images:
            shutil.copy2(p, folder / p.name)
        for enc in encoders:  # LiteRT export (first use) and file cache warm-up, not timed
            embed_rate(folder, enc, Path(tmp) / "warm")
        rates: dict[str, list[float]] = {enc: [] for enc in encoders}
        loads = []
        for r in range(rounds):
            for enc in encoders if r % 2 == 0 else encoders[::-1]:
                loads.append(os.getloadavg()[0])
                rates[enc].append(embed_rate(folder, enc, Path(tmp) / "store"))
                print(f"  round {r + 1} {enc}: {rates[enc][-1]:.1f} img/s (load {loads[-1]:.1f})")
    return {
        enc: {"best": max(v), "median": statistics.median(v), "runs": v, "load": [min(loads), max(loads)]}
        for enc, v in rates.items()
    }


def quality(encoder: str, reuse: bool) -> dict:
    figures = OUT / f"{encoder}.json"
    if not (reuse and figures.exists()):
        cmd = [
            sys.executable,
            str(ROOT / "recipes" / "photo_head.py"),
            "--augment",
            "3",
            "--image-encoder",
            encoder,
            "--json",
            str(figures),
        ]
        subprocess.run(cmd, env=_env(), check=True)
    return json.loads(figures.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS))
    parser.add_argument("--n", type=int, default=1000, help="fashion photos for the speed runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument(
        "--reuse", action="store_true", help="quality figures already in bench/out/lite-variants"
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    rates = {}
    if not args.skip_speed:
        require(FASHION / "images")
        rates = speed(args.encoders, args.n, args.rounds)
        (OUT / "speed.json").write_text(json.dumps(rates, indent=2))
    elif args.reuse and (OUT / "speed.json").exists():
        rates = json.loads((OUT / "speed.json").read_text())
    found = {}
    if not args.skip_quality:
        require(FLICKR)
        found = {enc: quality(enc, args.reuse) for enc in args.encoders}
    print(f"\nmachine: {machine()}")
    header = ["embed img/s best (median)", "val R@10", "held-out 224 px R@1/5/10", "thumbnails R@1/5/10"]
    print(f"{'encoder':18s} | " + " | ".join(header))
    for enc in args.encoders:
        s = rates.get(enc)
        cells = [f"{s['best']:.1f} ({s['median']:.1f})" if s else "-"]
        q = found.get(enc)
        if q:
            at224, thumbs = q["held_out"]["head"], q["held_out"]["head, 200-px 4:3 thumbnails"]
            cells += [
                f"{q['validation']['224 px']['R@10']:.3f}",
                " / ".join(f"{at224[f'R@{k}']:.3f}" for k in (1, 5, 10)),
                " / ".join(f"{thumbs[f'R@{k}']:.3f}" for k in (1, 5, 10)),
            ]
        print(f"{enc:18s} | " + " | ".join(cells))
    if rates:
        lo, hi = next(iter(rates.values()))["load"]
        print(f"speed: {args.n} fashion photos, {args.rounds} rounds, 1-minute load {lo:.1f}-{hi:.1f}")
    print("quality: development figures (library functions); held-out = bench/flickr8k_holdout.txt")


if __name__ == "__main__":
    main()
