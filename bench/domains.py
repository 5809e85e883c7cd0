"""Text search on three domains, through the CLI: the default, and each text-side space alone.

    python bench/domains.py [--work bench/out/domains] [--json OUT] [--spaces text photo wordnet]
        [--only fashion grocery captions] [--index-args=--no-calibrate] [--imgsearch CLI]

Rows (each on data nothing was trained, fitted or chosen on):
- fashion: the shared products with id mod 5 == 0 (``bench/heldout.py``'s ``products_test.csv``),
  indexed without titles; "<colour> <type>" text P@10 (``../shared/tools/search_eval.py --no-meta``);
- grocery: the val split of ``../shared/data/grocery`` as a plain folder; text P@10 by coarse name
  (``../shared/tools/grocery_eval.py --split val``);
- captions: the Flickr8k photos of ``bench/flickr8k_holdout.txt`` as 200-px 4:3 thumbnails;
  caption → image R@10 (``../shared/tools/caption_eval.py``);
- grocery-train (``--only grocery-train``): the grocery train split, 2,640 photos, the same way: more
  queries than val's 8. Not held out from everything: 300 of its photos fitted the shipped familiarity
  threshold (``recipes/trust.py``), though not the grocery fold's (fitted on fashion and flickr).

Columns: the default query, then each space alone (weight 1, the other text-side spaces 0), on the
same index (built once, under --work; each tool's ``index`` then finds it up to date).
``--index-args`` passes options to every ``index`` (a wrapper CLI in --work), e.g. ``--calibrate``.
Every figure is what ``imgsearch query --batch`` gives; nothing here calls the library's search.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, FLICKR, ROOT, machine, require
from heldout import TEXT_SPACES, prepare

TOOLS = ROOT.parent / "shared" / "tools"
GROCERY = ROOT.parent / "shared" / "data" / "grocery"
DOMAINS = ("fashion", "grocery", "captions", "grocery-train")
METRIC = {"fashion": "text_P@10", "grocery": "text_P@10", "captions": "R@10", "grocery-train": "text_P@10"}
STORE = {d: f"{d}/catalog" for d in DOMAINS} | {"captions": "captions/photos"}
# recipes/trust.py's fold names
FOLD = {"fashion": "fashion", "grocery": "grocery", "captions": "flickr", "grocery-train": "grocery"}


def wrapper(work: Path, name: str, real: str, index_args: list[str], weights: dict | None) -> str:
    """An ``imgsearch`` for the tools: ``index`` gets ``index_args``; ``query --batch`` lines get
    ``weights`` (caption_eval.py has no weights option of its own)."""
    script = work / f"imgsearch-{name}"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, subprocess, sys\n"
        f"real, extra, weights = {real!r}, {index_args!r}, {weights!r}\n"
        "args = sys.argv[1:]\n"
        "if args[:1] == ['index']:\n"
        "    sys.exit(subprocess.call([real, *args, *extra]))\n"
        "if weights is None or '--batch' not in args:\n"
        "    sys.exit(subprocess.call([real, *args]))\n"
        "lines = [json.dumps({**json.loads(x), 'weight': weights}) if 'text' in json.loads(x) else x\n"
        "         for x in sys.stdin.read().splitlines() if x.strip()]\n"
        "sys.exit(subprocess.run([real, *args], input='\\n'.join(lines) + '\\n', text=True).returncode)\n"
    )
    script.chmod(0o755)
    return str(script)


def tool(*args: str, env: dict | None = None) -> dict:
    """Run one of ../shared/tools with the venv's Python; its last line is a JSON object."""
    out = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if out.returncode != 0:
        sys.exit(f"{Path(args[0]).name} failed: {out.stderr.strip()[-600:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(domain: str, work: Path, img: str, weights: dict | None) -> dict:
    """One domain's figures with ``img`` as the CLI (the index under ``work`` is reused)."""
    if domain == "fashion":
        products = str(work / "products_test.csv")
        extra = ["--weights", json.dumps(weights)] if weights else []
        args = [str(TOOLS / "search_eval.py"), img, str(FASHION / "images"), products]
        # no --reuse: `index` runs each time, finds the store up to date, or re-derives what changed
        return tool(*args, str(work / "runs" / "fashion"), "--no-meta", *extra)
    if domain.startswith("grocery"):
        env = {"EXTRA": json.dumps({"weight": weights})} if weights else {}
        args = [str(TOOLS / "grocery_eval.py"), img, str(GROCERY), str(work / "runs" / domain)]
        return tool(*args, "--split", "train" if domain == "grocery-train" else "val", env=env)
    captions = str(work / "captions_holdout.csv")
    folder = str(work / "flickr-thumbs")
    return tool(str(TOOLS / "caption_eval.py"), img, folder, captions, str(work / "runs" / "captions"))


def alone(space: str) -> dict:
    return {s: float(s == space) for s in TEXT_SPACES}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "domains")
    parser.add_argument("--json", type=Path, default=None, help="also write every tool's figures here")
    parser.add_argument("--spaces", nargs="*", default=list(TEXT_SPACES), help="single-space columns")
    parser.add_argument("--only", nargs="*", default=list(DOMAINS[:3]), choices=DOMAINS)
    parser.add_argument("--imgsearch", default=str(ROOT / ".venv" / "bin" / "imgsearch"), help="the CLI")
    parser.add_argument("--index-args", default="", help="options for every `index`, e.g. --calibrate")
    args = parser.parse_args()
    for path in (FASHION / "products.csv", FLICKR / "captions.csv", GROCERY / "items.csv", TOOLS):
        require(path)
    prepare(args.work)  # products_test.csv, flickr-thumbs/, captions_holdout.csv
    index_args = shlex.split(args.index_args)
    columns = {"default": None, **{space: alone(space) for space in args.spaces}}
    figures: dict[str, dict[str, dict]] = {}
    for domain in args.only:
        for column, weights in columns.items():
            injected = weights if domain == "captions" else None  # the other tools take weights
            img = wrapper(args.work, column, args.imgsearch, index_args, injected)
            figures.setdefault(domain, {})[column] = measure(domain, args.work, img, weights)
            print(f"{domain} {column}: {figures[domain][column][METRIC[domain]]}", file=sys.stderr)
    print(f"# text search through the CLI on {machine()}; index {args.index_args or '(defaults)'}")
    print(table(figures, list(columns)))
    print(left_out_check(args.work, args.only))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "figures": figures}, indent=2) + "\n")


def left_out_check(work: Path, domains: list[str]) -> str:
    """Each domain's calibration as ``index`` recorded it, beside the decision its own fold's
    threshold (fitted without it, ``pretrained/trust.json``) gives: where they agree, the figures
    above are leave-one-domain-out figures."""
    from imgsearch.indexing import trust
    from imgsearch.store import find_store

    info = trust.load()
    lines = []
    for domain in domains:
        record = find_store(work / "runs" / STORE[domain] / ".imgsearch").require().manifest.get("trust")
        if not record or "familiarity" not in record or info is None:
            lines.append(f"- {domain}: not calibrated ({(record or {}).get('why', 'no record')})")
            continue
        fold = info["folds"][FOLD[domain]]
        same = (record["familiarity"] >= fold["threshold"]) == record["in_domain"]
        lines.append(
            f"- {domain}: {record['head']} head, familiarity {record['familiarity']:.4f}, shipped threshold "
            f"{record['threshold']} -> {'in' if record['in_domain'] else 'out of'} domain; its fold's "
            f"threshold {fold['threshold']} (fitted on {', '.join(fold['fitted_on'])}): "
            f"{'same decision' if same else 'OTHER DECISION: not a leave-one-out figure'}"
        )
    return "\n".join(lines)


def table(figures: dict[str, dict[str, dict]], columns: list[str]) -> str:
    head = " | ".join(c if c == "default" else f"{c} alone" for c in columns)
    lines = [f"| domain (metric) | {head} |", "|---" * (len(columns) + 1) + "|"]
    for domain, runs in figures.items():
        cells = [f"{runs[c][METRIC[domain]]:.3f}" for c in columns]
        lines.append(f"| {domain} ({METRIC[domain]}) | {' | '.join(cells)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
