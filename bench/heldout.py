"""The README's held-out table, measured the way a user runs imgsearch: through the CLI only.

    python bench/heldout.py [--work bench/out/heldout] [--image-encoder efficientnet-lite1] [--json OUT]

1. prepares the splits nothing is trained, fitted or chosen on, under --work: the shared fashion
   products with id mod 5 == 0 (``products_test.csv``), the Flickr8k photos of
   ``bench/flickr8k_holdout.txt`` (``flickr/``, symlinks) with their captions
   (``captions_holdout.csv``), and the same photos as 200-px 4:3 JPEG thumbnails
   (``flickr-thumbs/``);
2. runs ``../shared/tools/search_eval.py`` (titled and untitled catalog: "<colour> <type>" text
   P@10, image P@10, handbag photo + "red") and ``caption_eval.py`` (caption → image R@1/5/10 at
   224 px and on the thumbnails) with the installed ``imgsearch``: default query, then each
   text-side space alone (``--weights``, the others 0) on the same indexes;
3. prints one markdown table and writes every tool's JSON line to --json.

With --image-encoder, ``index`` runs with that encoder (a two-line wrapper around the CLI in
--work). Nothing here calls the library's search: every figure is what ``imgsearch query --batch``
gives (only the split rule, ``imgsearch.train.splits``, is shared).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, FLICKR, ROOT, flickr_holdout, machine, require, thumbnail_4_3

from imgsearch.train.splits import is_test_item

TOOLS = ROOT.parent / "shared" / "tools"
TEXT_SPACES = ("text", "colour", "lexical", "photo", "wordnet")  # what a text query can weigh


def prepare(work: Path) -> None:
    """The held-out inputs (idempotent: existing files are kept)."""
    work.mkdir(parents=True, exist_ok=True)
    products = work / "products_test.csv"
    if not products.exists():
        with open(FASHION / "products.csv", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = [r for r in reader if is_test_item(r["filename"]) and (FASHION / r["filename"]).exists()]
        with open(products, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=reader.fieldnames or [])
            writer.writeheader()
            writer.writerows(rows)
    names = sorted(flickr_holdout())
    photos, thumbs = work / "flickr", work / "flickr-thumbs"
    photos.mkdir(exist_ok=True)
    thumbs.mkdir(exist_ok=True)
    for name in names:
        source = FLICKR / "images" / name
        if not (photos / name).exists():
            (photos / name).symlink_to(source.resolve())
        if not (thumbs / name).exists():
            (thumbs / name).write_bytes(thumbnail_4_3(source.read_bytes()))
    captions = work / "captions_holdout.csv"
    if not captions.exists():
        wanted = set(names)
        with open(FLICKR / "captions.csv", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r["image"] in wanted]
        with open(captions, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["image", "caption"])
            writer.writeheader()
            writer.writerows(rows)


def cli(work: Path, encoder: str | None) -> str:
    """The imgsearch command the tools run: the venv's, or a wrapper that indexes with ``encoder``."""
    binary = ROOT / ".venv" / "bin" / "imgsearch"
    if not encoder:
        return str(binary)
    wrapper = work / f"imgsearch-{encoder}"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = index ]; then exec "{binary}" "$@" --image-encoder {encoder}; fi\n'
        f'exec "{binary}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def tool(*args: str) -> dict:
    """Run one of ../shared/tools with the venv's Python; its last line is a JSON object."""
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"{Path(args[0]).name} failed: {out.stderr.strip()[-600:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def alone(space: str) -> str:
    return json.dumps({s: float(s == space) for s in TEXT_SPACES})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "heldout")
    parser.add_argument("--image-encoder", default=None, help="index with this image encoder")
    parser.add_argument("--json", type=Path, default=None, help="also write every tool's figures here")
    args = parser.parse_args()
    for path in (FASHION / "products.csv", FLICKR / "captions.csv", TOOLS / "search_eval.py"):
        require(path)
    prepare(args.work)
    runs = args.work / (f"runs-{args.image_encoder}" if args.image_encoder else "runs")
    img = cli(args.work, args.image_encoder)
    products = str(args.work / "products_test.csv")
    search = [str(TOOLS / "search_eval.py"), img, str(FASHION / "images"), products]
    captions = str(args.work / "captions_holdout.csv")
    print(f"# held-out through the CLI on {machine()}; image encoder: {args.image_encoder or 'default'}")
    figures: dict[str, dict] = {}
    for split, extra in (("titled", []), ("untitled", ["--no-meta"])):
        figures[split] = tool(*search, str(runs / split), *extra)
        for space in ("lexical", "text", "photo") if split == "titled" else ("text", "photo"):
            figures[f"{split}, {space} alone"] = tool(
                *search, str(runs / split), *extra, "--reuse", "--weights", alone(space)
            )
    for split, folder in (("photos 224 px", "flickr"), ("photos, 200-px thumbnails", "flickr-thumbs")):
        figures[split] = tool(
            str(TOOLS / "caption_eval.py"), img, str(args.work / folder), captions, str(runs / folder)
        )
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "figures": figures}, indent=2) + "\n")


def table(figures: dict[str, dict]) -> str:
    lines = [
        '| run | text P@10 | image P@10 | handbag + "red" (of ceiling) | caption R@1 / 5 / 10 |',
        "|---|---|---|---|---|",
    ]
    for name, f in figures.items():
        if "R@10" in f:
            lines.append(f"| {name} | | | | {f['R@1']:.3f} / {f['R@5']:.3f} / {f['R@10']:.3f} |")
            continue
        bag, single = f.get("fused_red_bag_share@10"), "alone" in name
        cells = [
            f"{f['text_P@10']:.3f}",
            "" if single else f"{f['image_P@10']:.3f}",
            "" if single or bag is None else f"{bag:.3f} ({f['nfused_red_bag_share@10']:.2f})",
        ]
        lines.append(f"| {name} | {' | '.join(cells)} | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
