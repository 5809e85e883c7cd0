"""Recipe: imgsearch/pretrained/fusion.json, the fusion weights per query kind fitted on development
splits, with their provenance.

    python -m recipes fusion              # or: python recipes/fusion.py (fit, write)
    python recipes/fusion.py --dry-run    # fit and print the development figures; write nothing
    python recipes/fusion.py --kinds text@shots   # refit one kind, keep the others' weights

The shipped file was fitted by the whole recipe (every kind, and ``compose``: how much a query photo
counts beside the words in a text head's query, chosen from ``COMPOSE_GRID`` by the image+text
kinds' cross-validated figures), 2026-12-08; it gave the weights the earlier partial fits had shipped.

Development data (never the held-out data the README reports on):
- fashion: a seeded 3,000 of the products with id mod 5 != 0, which the product-shot head never
  trained on (it is weighed by every fashion kind), indexed through the CLI with their titles
  (``text@titled``, ``image+text``: a query for every (colour, type) pair with >= 5 items) and
  without (``text@shots``, ``image+text@shots``: the 60 commonest pairs). Queries
  "<colour> <articleType>", relevant = same colour and type, metric P@10; ``image+text``: a photo
  of that type in another colour + the colour word, same relevance. (On 2026-12-02 the titled
  kinds fitted for a while on all 7,671 development products, when they weighed no shipped head.)
- flickr8k: the 521 images outside ``flickr8k_holdout.txt`` that ``recipes/photo_head.py``
  kept out of the photo head's training for early stopping (``text@photos``), every caption (5
  each), metric hit@10. (Until 2026-12-02 these were 1,000 images the head had trained on, which
  flattered it: every other space looked useless beside it.)

For each query the candidates of every space are gathered once and every space's standardised
score computed (``Searcher`` internals), then each weight combination of a grid and each clip
``c`` of ``fusion.calibrate`` is scored with numpy. Weights are chosen by 5-fold cross-validation
over the queries (the printed CV figure is the mean over held-out folds of the weights picked on
the other four); the shipped weights are the best on all development queries, unless that CV
figure falls below the best single space's (the fit would not beat one of its own spaces out of
sample): then that space alone ships. These are
development figures: the README's figures come from ``../shared/tools`` through
``imgsearch query --batch`` on the held-out splits.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import random
import sys
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: the project root on the path, as for `-m recipes`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imgsearch.search import fusion
from imgsearch.search.query import build_query
from imgsearch.search.searcher import Searcher
from imgsearch.store import find_store
from recipes import provenance
from recipes.cli import WORK, imgsearch
from recipes.splits import FASHION, FLICKR, FLICKR_HOLDOUT, fashion_dev_rows, flickr_names, flickr_split

OUT = WORK / "fusion"
GRID = (0.0, 0.25, 0.5, 1.0, 2.0)
CLIPS = (None, 2.0, 3.0, 5.0)
# how much a query photo counts beside the words in a text head's query (``fusion.compose``),
# chosen with the image+text kinds' weights: the value whose fits score best out of sample
COMPOSE_GRID = (0.5, 1.0, 2.0)
IMAGE_TEXT = ("image+text", "image+text@shots")
METRICS = {
    "text@titled": "P@10",
    "text@shots": "P@10",
    "image+text": "P@10 (photo of the type in another colour + the colour word)",
    "image+text@shots": "P@10 (the same, on the product shots without titles)",
    "text@photos": "hit@10, every caption (the photo head's validation images: never trained on)",
}
KIND_SPACES = {
    "text@titled": ("text", "colour", "lexical", "photo", "wordnet"),
    "text@shots": ("text", "colour", "lexical", "photo", "wordnet"),
    "text@photos": ("photo", "colour", "text", "lexical", "wordnet"),
    "image+text": ("image", "classes", "text", "colour", "lexical", "photo"),
    "image+text@shots": ("image", "classes", "text", "colour", "photo"),
}


def cli_index(folder: Path, meta: Path | None = None) -> Path:
    args = ["index", str(folder), "--quiet"]
    if meta:
        args += ["--meta", str(meta), "--text-columns", "title"]
    imgsearch(*args)
    return folder / ".imgsearch"


def fashion_dev(n: int | None, name: str = "fashion-dev") -> tuple[Path, Path, list[dict]]:
    rows = fashion_dev_rows(n)
    folder = OUT / name / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        link = folder / Path(r["filename"]).name
        if not link.exists():
            link.symlink_to((FASHION / r["filename"]).resolve())
    meta = OUT / name / "catalog.csv"
    with open(meta, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "title"])
        w.writerows((Path(r["filename"]).name, r["productDisplayName"]) for r in rows)
    return folder, meta, rows


def catalog_queries(searcher: Searcher, rows: list[dict], most: int | None = 60) -> tuple[list, list]:
    """Text queries and image+colour queries with their relevant rows (dev catalog): one per
    (colour, type) pair with at least 5 items, the ``most`` commonest (None: every one)."""
    by_name = {Path(r["filename"]).name: r for r in rows}
    row_of = {Path(i.path).name: n for n, i in enumerate(searcher.gen.items)}
    key = {row_of[n]: (r["baseColour"], r["articleType"]) for n, r in by_name.items() if n in row_of}
    pairs = [p for p, c in Counter(key.values()).most_common() if c >= 5][:most]
    text, image = [], []
    rng = random.Random(1)
    for colour, kind in pairs:
        relevant = {r for r, k in key.items() if k == (colour, kind)}
        text.append((build_query(texts=[f"{colour} {kind}".lower()], k=10), relevant))
        others = [r for r, k in key.items() if k[1] == kind and k[0] != colour]
        if others:
            photo = searcher.gen.items[rng.choice(others)].path
            image.append((build_query(images=[photo], texts=[colour.lower()], k=10), relevant))
    return text, image


def photo_head_validation() -> list[str]:
    """The Flickr8k images the shipped photo head never trained on outside the hold-out: the 10 %
    ``recipes/photo_head.py`` kept for early stopping (its seeded split of the sorted names)."""
    names = flickr_names()
    return [names[i] for i in flickr_split(names)[1]]


def caption_queries(searcher: Searcher, names: list[str], captions: dict[str, list[str]]) -> list:
    """Every caption of every image: its own image is the one relevant item."""
    row_of = {Path(i.path).name: n for n, i in enumerate(searcher.gen.items)}
    return [(build_query(texts=[c], k=10), {row_of[n]}) for n in names if n in row_of for c in captions[n]]


def score_table(searcher: Searcher, queries: list, kind_spaces: tuple[str, ...]) -> list:
    """Per query: candidate rows, per-space standardised scores (0 where a space is inactive)."""
    table = []
    for q, relevant in queries:
        # every space the kind may weigh, whatever the shipped weights give it (the searcher builds
        # the wordnet space only where it can count)
        vectors = searcher.query_vectors(replace(q, weights={s: 1.0 for s in kind_spaces}))
        active = {s: v for s, v in vectors.items() if s in kind_spaces}
        bias = searcher.bias_columns(q, vectors)
        candidates = searcher._candidates(active, 10, None, bool(q.images), bias)
        z = np.zeros((len(kind_spaces), len(candidates)), np.float32)
        for i, space in enumerate(kind_spaces):
            if space in active:
                raw = searcher._raw_scores(space, active[space], candidates, bias)
                z[i] = searcher._standardise(space, active[space], raw, candidates, bias)
        table.append((candidates, z, relevant))
    return table


def per_combo(table: list, weights: np.ndarray, clip: float | None) -> np.ndarray:
    """``metric`` of every weight combination (rows of ``weights``) on every query, at once: the
    top 10 by ``argpartition``, which differs from the CLI's stable sort only among tied scores."""
    calib = fusion.Fusion(clip)
    out = np.zeros((len(weights), len(table)), np.float32)
    for q, (candidates, z, relevant) in enumerate(table):
        fused = weights @ calib.calibrate(z)  # combos × candidates
        is_relevant = np.fromiter((int(r) in relevant for r in candidates), bool, len(candidates))
        k = min(10, len(candidates))
        top = np.argpartition(-fused, k - 1, axis=1)[:, :k]
        hits = is_relevant[top].sum(axis=1)
        out[:, q] = hits / 10 if len(relevant) > 1 else hits > 0
    return out


def fit(table: list, n_spaces: int) -> dict:
    combos = [np.array(w, np.float32) for w in itertools.product(GRID, repeat=n_spaces) if any(w)]
    stacked = np.stack(combos)
    results = {clip: per_combo(table, stacked, clip) for clip in CLIPS}  # clip → combos × queries
    folds = np.arange(len(table)) % 5
    cv = []
    for f in range(5):
        best = max(
            ((clip, i) for clip in CLIPS for i in range(len(combos))),
            key=lambda ci: results[ci[0]][ci[1], folds != f].mean(),
        )
        cv.append(results[best[0]][best[1], folds == f].mean())
    best_by_clip = {clip: int(results[clip].mean(axis=1).argmax()) for clip in CLIPS}
    alone = [combos_index(combos, np.eye(n_spaces)[i]) for i in range(n_spaces)]
    singles = [float(results[None][i].mean()) for i in alone]
    return {
        "combos": combos,
        "results": results,
        "cv": float(np.mean(cv)),
        "best_by_clip": best_by_clip,
        "singles": singles,
    }


def combos_index(combos: list[np.ndarray], w: np.ndarray) -> int:
    return next(i for i, c in enumerate(combos) if np.array_equal(c, w.astype(np.float32)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--dry-run", action="store_true", help="fit and print; write nothing")
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=tuple(KIND_SPACES),
        help="refit only these query kinds; the others keep the shipped weights (re-measured)",
    )
    args = parser.parse_args()
    provenance.shared_or_skip(FASHION / "products.csv", FLICKR / "captions.csv")
    print(f"# recipes/fusion.py on {provenance.machine()}")
    tables = {}
    shipped_table = fusion.load()
    refit_compose = not args.kinds or bool(set(args.kinds) & set(IMAGE_TEXT))
    composes = COMPOSE_GRID if refit_compose else (shipped_table.compose,)
    compose_tables: dict[float, dict[str, list]] = {c: {} for c in composes}
    # every fashion kind weighs the product-shot head, so all stay on the sample it never trained on
    dev = fashion_dev(args.items)
    for name, store_dir, with_meta, most in (
        ("text@titled", OUT / "fashion-dev" / "titled", True, None),
        ("text@shots", OUT / "fashion-dev" / "untitled", False, 60),
    ):
        folder, meta, rows = dev
        imgsearch(  # incremental: re-derives the shipped heads when they change
            *["index", str(folder), "--quiet", "--out", str(store_dir)],
            *(["--meta", str(meta), "--text-columns", "title"] if with_meta else []),
        )
        searcher = Searcher(find_store(store_dir).require(), check_files=False)
        text_q, image_q = catalog_queries(searcher, rows, most)
        tables[name] = score_table(searcher, text_q, KIND_SPACES[name])
        kind = "image+text" if with_meta else "image+text@shots"
        for compose in composes:
            searcher.fusion = replace(shipped_table, compose=compose)
            compose_tables[compose][kind] = score_table(searcher, image_q, KIND_SPACES[kind])
    captions: dict[str, list[str]] = {}
    with open(FLICKR / "captions.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            captions.setdefault(r["image"], []).append(r["caption"])
    names = photo_head_validation()
    photos = OUT / "flickr-val"
    photos.mkdir(parents=True, exist_ok=True)
    for n in names:
        if not (photos / n).exists():
            (photos / n).symlink_to((FLICKR / "images" / n).resolve())
    cli_index(photos)  # incremental: re-derives the shipped heads when they change
    searcher = Searcher(find_store(photos).require(), check_files=False)
    tables["text@photos"] = score_table(
        searcher, caption_queries(searcher, names, captions), KIND_SPACES["text@photos"]
    )

    fits = {kind: fit(table, len(KIND_SPACES[kind])) for kind, table in tables.items()}
    compose_fits = {
        c: {kind: fit(table, len(KIND_SPACES[kind])) for kind, table in kinds.items()}
        for c, kinds in compose_tables.items()
    }
    compose, compose_cv = choose_compose(compose_fits)
    tables |= compose_tables[compose]
    fits |= compose_fits[compose]
    # one clip for every kind: the best mean over kinds of each kind's best development score
    clip = max(CLIPS, key=lambda c: np.mean([f["results"][c].mean(axis=1).max() for f in fits.values()]))
    shipped, report = {}, {}
    kept = json.loads(fusion.FILE.read_text())["weights"] if args.kinds else {}
    if args.kinds:  # the kinds kept were fitted with the shipped clip: it stays
        clip = fusion.load().clip
    for kind, f in fits.items():
        i = int(f["results"][clip].mean(axis=1).argmax())
        if args.kinds and kind not in args.kinds and kind in kept:  # keep the shipped weights
            best = float(f["results"][clip][i].mean())
            i = combos_index(f["combos"], np.array([kept[kind].get(s, 0.0) for s in KIND_SPACES[kind]]))
            print(f"{kind:12s} kept the shipped weights (best on the grid now: {best:.3f})")
        elif f["cv"] < max(f["singles"]):
            # out of sample the fit does not beat one of its spaces (the guarantee): that space alone
            s = int(np.argmax(f["singles"]))
            i = combos_index(f["combos"], np.eye(len(KIND_SPACES[kind]))[s])
            print(f"{kind:12s} CV {f['cv']:.3f} < {KIND_SPACES[kind][s]} alone: ships that space alone")
        weights = dict(zip(KIND_SPACES[kind], map(float, f["combos"][i]), strict=True))
        shipped[kind] = weights
        report[kind] = {
            "metric": METRICS[kind],
            "queries": len(tables[kind]),
            "fitted": round(float(f["results"][clip][i].mean()), 3),
            "cv": round(f["cv"], 3),
            "single_spaces_raw": dict(
                zip(KIND_SPACES[kind], (round(s, 3) for s in f["singles"]), strict=True)
            ),
        }
        print(
            f"{kind:12s} dev {report[kind]['fitted']:.3f} (CV {f['cv']:.3f}) weights {weights} "
            f"single spaces {report[kind]['single_spaces_raw']}"
        )
    print(f"clip c = {clip}; compose = {compose} (image+text CV by compose: {compose_cv})")
    if not args.dry_run:
        write(clip, compose, compose_cv, shipped, report, args.kinds, len(dev[2]), names)


def choose_compose(fits: dict[float, dict[str, dict]]) -> tuple[float, dict[float, float]]:
    """The compose value whose image+text fits score best out of sample (the mean over both kinds
    of each fit's cross-validated figure), and those figures; a single value is kept as it is."""
    if len(fits) == 1:
        return next(iter(fits)), {}
    cv = {c: round(float(np.mean([f["cv"] for f in kinds.values()])), 4) for c, kinds in fits.items()}
    return max(cv, key=cv.get), cv


def write(
    clip,
    compose: float,
    compose_cv: dict[float, float],
    weights: dict,
    report: dict,
    kinds: list[str] | None,
    n_fashion: int,
    names: list[str],
) -> None:
    kept = fusion.load().provenance.get("compose")
    table = fusion.Fusion(
        clip,
        weights,
        {
            "fitted_by": "recipes/fusion.py"
            + (f" --kinds {' '.join(kinds)} (the other kinds kept their weights)" if kinds else ""),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": "fashion: 3,000 seeded products with id mod 5 != 0 (never trained on by the "
            "product-shot head), titled (text@titled, image+text: every (colour, type) pair with >= 5 "
            "items) and untitled (text@shots, image+text@shots: the 60 commonest pairs); "
            "flickr8k: the photo head's 521 validation images (outside bench/flickr8k_holdout.txt, "
            "never trained on), every caption",
            "never_used": "fashion products with id mod 5 == 0; the flickr8k hold-out list",
            "photo_head": "product shots: pretrained/shots/photo.npz, trained on fashion development "
            "products outside the 3,000; photos: pretrained/photo.npz; both trained on the flickr8k "
            "images outside the hold-out list and its validation images",
            "grid": list(GRID),
            "clips": [c for c in CLIPS],
            "compose": {"grid": list(COMPOSE_GRID), "image+text_cv": compose_cv} if compose_cv else kept,
            "development": report,
            "machine": provenance.machine(),
        },
        compose,
    )
    # "fitted_by" named the bench script before the recipe existed: the same fit, not a new one
    written = {
        fusion.FILE.name: provenance.write_json(
            fusion.FILE, table.to_json(), volatile=provenance.VOLATILE | {"fitted_by"}
        )
    }
    heads = [fusion.FILE.parent / "photo.npz", fusion.FILE.parent / "shots" / "photo.npz"]
    provenance.record(
        fusion.FILE.parent,
        "fusion",
        [fusion.FILE],
        inputs=provenance.inputs_of(
            {
                "products": FASHION / "products.csv",
                "captions": FLICKR / "captions.csv",
                "holdout": FLICKR_HOLDOUT,
            }
            | {str(h): h for h in heads},
            {
                f"{FASHION / 'images'} (the {n_fashion} products)": provenance.listing(
                    [FASHION / r["filename"] for r in fashion_dev_rows(n_fashion)], FASHION
                ),
                f"{FLICKR / 'images'} (the {len(names)} validation photos)": provenance.listing(
                    [FLICKR / "images" / n for n in names], FLICKR
                ),
            },
        ),
        development={"clip": clip, "compose": compose, **report},
        written=written,
    )


if __name__ == "__main__":
    main()
