"""The labelled duplicate set made from the fashion catalog: the data ``recipes/dups_model.py`` fits
the pair model on (its development half) and ``bench/dups.py`` measures on (both halves).

The set: seeded originals from the catalog, each with edited copies (downscale 50-60 % + JPEG
quality 30-40; 5-7 % cropped off each side + 15 % brighter; a small text watermark) and a
horizontal flip (scored apart: some users count a mirror image as a duplicate, some do not), among
look-alike products of the same articleType (half also of the same baseColour): the hard
negatives. A seeded half of the originals (and of the negatives) is the development half.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from recipes.cli import env
from recipes.splits import FASHION, require

EDITS = ("small", "crop", "mark")  # counted as duplicates of their original
FLIP = "flip"  # reported apart

# --- the labelled set ---------------------------------------------------------------------------


def _catalog() -> list[dict[str, str]]:
    """Catalog rows, byte-identical photos dropped: the catalog lists some photos under two ids
    (e.g. 17811 and 17812), and such a pair would count as a false positive."""
    with open(require(FASHION / "products.csv"), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if (FASHION / r["filename"]).is_file()]
    seen: set[str] = set()
    unique = []
    for r in rows:
        digest = hashlib.sha256((FASHION / r["filename"]).read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            unique.append(r)
    return unique


def _edit(img: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, int]:
    """The edited copy and the JPEG quality to save it with."""
    if kind == "small":
        f = rng.uniform(0.5, 0.6)
        size = (round(img.width * f), round(img.height * f))
        return img.resize(size, Image.Resampling.LANCZOS), rng.randint(30, 40)
    if kind == "crop":
        # issue 24's edit: about 6 % off each side (5-7 %, each side drawn apart, so the crop is
        # a little off-centre too) and 15 % brighter
        left, right = (round(img.width * rng.uniform(0.05, 0.07)) for _ in range(2))
        top, bottom = (round(img.height * rng.uniform(0.05, 0.07)) for _ in range(2))
        cropped = img.crop((left, top, img.width - right, img.height - bottom))
        return ImageEnhance.Brightness(cropped).enhance(1.15), 90
    if kind == "mark":
        marked = img.copy()
        draw = ImageDraw.Draw(marked)
        font = ImageFont.load_default(size=max(10, img.width // 16))
        text = rng.choice(("© shop 2024", "SAMPLE", "@fashion_outlet", "sale -30%"))
        x, y = rng.randint(4, img.width // 3), rng.randint(img.height * 3 // 4, img.height - 20)
        draw.text((x, y), text, fill=(120, 120, 120), font=font)
        return marked, 90
    if kind == FLIP:
        return ImageOps.mirror(img), 90
    raise ValueError(kind)


def make_set(out: Path, originals: int, negatives_per: int, seed: int) -> dict:
    """Write the labelled set into ``out`` (replaced); return the labels."""
    rng = random.Random(seed)
    rows = _catalog()
    by_type: dict[str, list[dict]] = {}
    for r in rows:
        by_type.setdefault(r["articleType"], []).append(r)
    common_types = [t for t, rs in by_type.items() if len(rs) >= 100]
    pool = [r for r in rows if r["articleType"] in common_types]
    chosen = rng.sample(pool, originals)
    used = {r["id"] for r in chosen}
    negatives = []
    for r in chosen:
        same_type = [x for x in by_type[r["articleType"]] if x["id"] not in used]
        same_colour = [x for x in same_type if x["baseColour"] == r["baseColour"]] or same_type
        for candidates in (same_colour, same_type):
            for x in rng.sample(candidates, min(len(candidates), negatives_per // 2)):
                if x["id"] not in used:
                    used.add(x["id"])
                    negatives.append(x)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    files: list[tuple[str, int | None, str]] = []  # (source, family, kind)
    for family, r in enumerate(chosen):
        files += [(r["filename"], family, "orig")] + [(r["filename"], family, k) for k in (*EDITS, FLIP)]
    files += [(r["filename"], None, "negative") for r in negatives]
    rng.shuffle(files)  # names say nothing about the labels
    halves = list(range(originals))
    rng.shuffle(halves)
    dev = set(halves[: originals // 2])
    labels = {"seed": seed, "items": {}}
    for n, (source, family, kind) in enumerate(files):
        name = f"img-{n:05d}.jpg"
        src = FASHION / source
        if kind in ("orig", "negative"):
            shutil.copyfile(src, out / name)
        else:
            with Image.open(src) as im:
                edited, quality = _edit(im.convert("RGB"), kind, rng)
            edited.save(out / name, quality=quality)
        half = ("dev" if family in dev else "test") if family is not None else rng.choice(("dev", "test"))
        labels["items"][name] = {"family": family, "kind": kind, "half": half, "source": source}
    return labels


# --- scoring --------------------------------------------------------------------------------------


def pair_sets(labels: dict, half: str) -> tuple[set, set, set]:
    """(duplicate pairs, flip pairs, all names) of one half; a pair is a sorted name tuple."""
    items = {n: v for n, v in labels["items"].items() if v["half"] == half}
    families: dict[int, list[str]] = {}
    for name, v in items.items():
        if v["family"] is not None:
            families.setdefault(v["family"], []).append(name)
    dups, flips = set(), set()
    for members in families.values():
        for a, b in itertools.combinations(sorted(members), 2):
            is_flip = FLIP in (items[a]["kind"], items[b]["kind"])
            (flips if is_flip else dups).add((a, b))
    return dups, flips, set(items)


def score(found: set, labels: dict, half: str) -> dict:
    """Pair precision/recall/F1 on one half; flip pairs neither help nor hurt, their recall apart."""
    dups, flips, names = pair_sets(labels, half)
    found = {p for p in found if p[0] in names and p[1] in names}
    tp = len(found & dups)
    fp = len(found - dups - flips)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / len(dups) if dups else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "flip_recall": len(found & flips) / len(flips) if flips else 0.0,
        "tp": tp,
        "fp": fp,
        "pairs": len(dups),
    }


def kind_recall(found: set, labels: dict, half: str) -> dict[str, tuple[int, int]]:
    """Per edit kind, (found, all) of the pairs (original, that kind's copy) in one half; "copies":
    the pairs between two edited copies (a small copy with the crop...); the flip apart."""
    items = {n: v for n, v in labels["items"].items() if v["half"] == half}
    families: dict[int, dict[str, str]] = {}
    for name, v in items.items():
        if v["family"] is not None:
            families.setdefault(v["family"], {})[v["kind"]] = name
    out = {}
    for kind in (*EDITS, FLIP):
        pairs = {tuple(sorted((f["orig"], f[kind]))) for f in families.values()}
        out[kind] = (len(pairs & found), len(pairs))
    edited = list(itertools.combinations(EDITS, 2))
    copies = {tuple(sorted((f[x], f[y]))) for f in families.values() for x, y in edited}
    out["copies"] = (len(copies & found), len(copies))
    return out


def pairs_of_groups(groups: list[list[str]]) -> set:
    return {tuple(sorted(p)) for g in groups for p in itertools.combinations(g, 2)}


# --- imgsearch through the CLI --------------------------------------------------------------------


def cli(*args: str, check: bool = True) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "imgsearch", *args], capture_output=True, text=True, env=env(), check=False
    )
    seconds = time.perf_counter() - t0
    if check and done.returncode not in (0, 1):
        sys.exit(f"imgsearch {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done, seconds


def imgsearch_groups(store: Path, threshold: float | None) -> tuple[list[list[str]], float]:
    args = ["dups", "--index", str(store), "--format", "json"]
    if threshold is not None:
        args += ["--threshold", str(threshold)]
    done, seconds = cli(*args)
    groups = [[Path(p).name for p in json.loads(line)["paths"]] for line in done.stdout.splitlines()]
    return groups, seconds
