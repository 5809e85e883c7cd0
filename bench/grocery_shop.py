"""The shop's own answer on grocery photos, through the CLI: what titles and `imgsearch train` add.

    python bench/grocery_shop.py                 # work in bench/out/grocery_shop (indexes are reused)

Text search on a plain folder of photos unlike the shipped heads' (grocery shelves) is poor
(docs/domains.md). A shop has two ways up, both measured here on the val split, which nothing
below is fitted on, with ../shared/tools/grocery_eval.py (text P@10 by coarse name and by brand,
image P@10 by fine class):

1. plain: the val photos as a folder without text (the default a user gets);
2. titles: the same photos indexed with the shop's product text (`--meta`: fine class name and
   description);
3. trained: `imgsearch train` on the train split (titles for the aligned head, the coarse class as
   the metric head's label), then the plain val folder indexed with `--model`.

Prints a JSON line per row and a table last.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, require

GROCERY = ROOT.parent / "shared" / "data" / "grocery"
TOOL = ROOT.parent / "shared" / "tools" / "grocery_eval.py"
OUT = ROOT / "bench" / "out" / "grocery_shop"
IMGSEARCH = str(Path(sys.executable).parent / "imgsearch")


def run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{' '.join(cmd[:3])} failed: {done.stderr[-600:]}")
    return done.stdout


def evaluate(work: Path, *flags: str) -> dict:
    line = run([sys.executable, str(TOOL), IMGSEARCH, str(GROCERY), str(work), "--split", "val", *flags])
    return json.loads(line.strip().splitlines()[-1])


def train_model() -> Path:
    """The train split as a titled catalog, indexed, then both heads trained on it."""
    folder, catalog, model = OUT / "train" / "photos", OUT / "train" / "catalog.csv", OUT / "model"
    folder.mkdir(parents=True, exist_ok=True)
    with open(GROCERY / "items.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    with open(catalog, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "title", "description", "coarse"])
        for r in rows:
            name = r["path"].replace("/", "_")
            if not (folder / name).exists():
                (folder / name).symlink_to((GROCERY / r["path"]).resolve())
            writer.writerow([name, r["fine"].replace("-", " "), r["description"], r["coarse"]])
    meta = ["--meta", str(catalog)]
    run([IMGSEARCH, "index", str(folder), *meta, "--text-columns", "title,description", "--quiet"])
    if not model.exists():  # trained once; delete bench/out/grocery_shop/model to train again
        index = ["--index", str(folder / ".imgsearch")]
        run([IMGSEARCH, "train", *meta, "--label-column", "coarse", "--out", str(model), *index])
    return model


def main() -> None:
    require(GROCERY / "items.csv")
    require(TOOL)
    rows = {"plain": evaluate(OUT / "plain"), "titles": evaluate(OUT / "titles", "--meta")}
    model = train_model()
    trained = OUT / "trained"
    evaluate(trained)  # builds the plain val index the model is then added to
    run([IMGSEARCH, "index", str(trained / "catalog"), "--model", str(model), "--quiet"])
    rows["trained"] = evaluate(trained)
    print(json.dumps({"machine": machine(), **rows}))
    print("| grocery val (296 photos) | text P@10 (coarse) | brand P@10 | image P@10 |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['text_P@10']} | {r['brand_P@10']} | {r['image_P@10']} |")


if __name__ == "__main__":
    main()
