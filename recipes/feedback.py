"""Recipe: imgsearch/pretrained/feedback.json, how far relevance feedback moves a query (Rocchio's
β for the liked items, γ for the unliked), chosen on a development split with a simulated user.

    python -m recipes feedback              # or: python recipes/feedback.py (choose, write)
    python recipes/feedback.py --dry-run    # print each setting's development gain; write nothing

Data: ../shared/data/fashion, a seeded ``--items`` of the products with id mod 5 != 0
(``splits.fashion_dev_rows``), indexed through the CLI twice: titled (``--meta --text-columns
productDisplayName``) and untitled (photos only). Queries: "<colour> <articleType>" for every
(baseColour, articleType) pair with at least 5 items; relevant = same type and colour. The simulated
user looks at the top 10, likes the relevant ones and unlikes the others (by id, as ``-f json``
prints them), and asks again (``simulate``). Each (β, γ) of ``GRID`` is set through
``IMGSEARCH_FEEDBACK`` (the tuning override); the one with the best mean one-round P@10 gain over
titled and untitled ships. ``bench/feedback.py`` measures the shipped setting on held-out products
(id mod 5 == 0) with the same user.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the project root on the path, as for `-m recipes`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imgsearch.search import feedback
from recipes import provenance
from recipes.cli import WORK, imgsearch
from recipes.splits import FASHION, fashion_dev_rows

OUT = WORK / "feedback"
GRID = [(0.5, 0.25), (1.0, 0.25), (1.0, 0.5), (1.0, 1.0), (2.0, 1.0)]
MIN_RELEVANT = 5


def catalog(work: Path, name: str, rows: list[dict]) -> tuple[Path, dict[str, dict]]:
    """A folder of symlinks to the photos, and a titles CSV for ``--meta``."""
    folder = work / name / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    by_name = {}
    for r in rows:
        file = Path(r["filename"]).name
        link = folder / file
        if not link.exists():
            link.symlink_to((FASHION / "images" / file).resolve())
        by_name[file] = r
    with open(work / name / "titles.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["filename", "title"])
        w.writerows([n, r["productDisplayName"]] for n, r in by_name.items())
    return folder, by_name


def build(work: Path, name: str, folder: Path, titled: bool) -> Path:
    """The index of ``folder``, titled or not: always run, as a user would (incremental when up to
    date, and it re-derives the shipped heads a store made by an older imgsearch lacks)."""
    store = work / name / ("titled" if titled else "untitled")
    args = ["index", str(folder), "--out", str(store), "--quiet"]
    if titled:
        args += ["--meta", str(work / name / "titles.csv"), "--text-columns", "title"]
    imgsearch(*args)
    return store


def queries(by_name: dict[str, dict]) -> list[tuple[str, str]]:
    pairs = Counter((r["baseColour"], r["articleType"]) for r in by_name.values())
    return sorted(p for p, c in pairs.items() if c >= MIN_RELEVANT and p[0])


def ask(store: Path, lines: list[dict], setting: str | None = None) -> list[list[dict]]:
    """``query --batch`` through the CLI; ``setting``: an ``IMGSEARCH_FEEDBACK`` value (None: the
    shipped one)."""
    done = imgsearch(
        *["query", "--batch", "-", "-f", "json", "--index", str(store)],
        check=False,
        capture=True,
        stdin="".join(json.dumps(x) + "\n" for x in lines),
        extra_env={feedback.ENV: setting} if setting else None,
    )
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    bad = [a["error"] for a in answers if "error" in a]
    if done.returncode not in (0, 1) or bad or len(answers) != len(lines):
        sys.exit(f"query --batch failed: {(bad or [done.stderr.strip()[-400:]])[0]}")
    return [a["results"] for a in answers]


def simulate(store: Path, by_name: dict, pairs: list, rounds: int, setting: str | None = None) -> list[float]:
    """P@10 before feedback and after each round of the simulated user's judgements."""
    texts = [f"{colour} {article}".lower() for colour, article in pairs]
    likes: list[set[str]] = [set() for _ in pairs]
    unlikes: list[set[str]] = [set() for _ in pairs]
    p10 = []
    for _ in range(rounds + 1):
        lines = [
            {"text": t, "k": 10, **({"like": sorted(lk), "unlike": sorted(un)} if lk or un else {})}
            for t, lk, un in zip(texts, likes, unlikes, strict=True)
        ]
        hits = 0
        for pair, res, lk, un in zip(pairs, ask(store, lines, setting), likes, unlikes, strict=True):
            for r in res:
                row = by_name[Path(r["path"]).name]
                good = (row["baseColour"], row["articleType"]) == pair
                hits += good
                (lk if good else un).add(r["id"])
        p10.append(hits / (10 * len(pairs)))
    return p10


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--dry-run", action="store_true", help="choose and print; write nothing")
    args = parser.parse_args()
    provenance.shared_or_skip(FASHION / "products.csv")
    print(f"# recipes/feedback.py on {provenance.machine()}")
    rows = fashion_dev_rows(args.items)
    folder, by_name = catalog(OUT, "dev", rows)
    stores = {titled: build(OUT, "dev", folder, titled) for titled in (True, False)}
    pairs = queries(by_name)
    gains = {}
    for beta, gamma in GRID:
        runs = {t: simulate(stores[t], by_name, pairs, 1, f"beta={beta},gamma={gamma}") for t in stores}
        gains[beta, gamma] = {
            "titled": [round(x, 4) for x in runs[True]],
            "untitled": [round(x, 4) for x in runs[False]],
            "gain": round(sum(r[1] - r[0] for r in runs.values()) / 2, 4),
        }
        print(f"β={beta} γ={gamma}: {gains[beta, gamma]}", flush=True)
    beta, gamma = max(gains, key=lambda bg: gains[bg]["gain"])
    print(f"chosen: β={beta} γ={gamma} ({len(pairs)} queries, {len(by_name)} products)")
    if not args.dry_run:
        write(beta, gamma, gains, len(pairs), rows)


def write(beta: float, gamma: float, gains: dict, n_queries: int, rows: list[dict]) -> None:
    development = {f"{b},{g}": v for (b, g), v in gains.items()}
    info = {
        "beta": beta,
        "gamma": gamma,
        "provenance": {
            "fitted_by": "python recipes/feedback.py",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": provenance.machine(),
            "data": f"fashion: {len(rows)} seeded products with id mod 5 != 0, titled and untitled, "
            f"{n_queries} '<colour> <type>' queries; a simulated user likes the relevant of the "
            "top 10 and unlikes the rest, one round",
            "never_used": "fashion products with id mod 5 == 0",
            "rule": "the (beta, gamma) of the grid with the best mean one-round P@10 gain, "
            "titled and untitled",
            "development": development,
        },
    }
    written = {feedback.FILE.name: provenance.write_json(feedback.FILE, info)}
    provenance.record(
        feedback.FILE.parent,
        "feedback",
        [feedback.FILE],
        inputs=provenance.inputs_of(
            {"products": FASHION / "products.csv"},
            {
                f"{FASHION / 'images'} (the {len(rows)} products)": provenance.listing(
                    [FASHION / r["filename"] for r in rows], FASHION
                )
            },
        ),
        development={"beta": beta, "gamma": gamma, **development},
        written=written,
    )


if __name__ == "__main__":
    main()
