"""Learning from use (issue 27), through the CLI: simulated users like results, `train --from-log`
learns from their log, and queries the log never had are measured before and after.

    python bench/learn_from_use.py                  # both domains, logs of 50, 200 and 1000 liked queries
    python bench/learn_from_use.py --domain grocery --sizes 200 --learning-rate 1e-4

Domains (plain folders, no titles, as a user without a catalog has them):
- fashion: the shared catalog's test split (product id mod 5 == 0), never trained on by the
  shipped heads; queries "<colour> <type>" with at least 3 products; relevant = both match.
- grocery: every photo of ../shared/data/grocery; queries are the coarse and fine class names
  ("apple", "granny smith"); relevant = the same class.
The query words are split in two by a hash of the (colour, type) pair or the coarse class: the
users' half and the measured half share no query. A simulated user runs one of their half's
queries (in one of a few phrasings), looks at the first 30 results, likes the relevant ones and
unlikes the first two that are not; `query --batch --log` appends that line to the index's log.
For each log size: `imgsearch log --clear`, replay that many liked queries, `imgsearch train
--from-log`, `imgsearch index DIR --model` when a model was written, P@10 of the measured half,
`imgsearch index DIR --no-model` to go back. Also what the log costs `serve` per query (latency
with and without --no-log, bytes a record takes). Prints JSON lines and a table last.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, ROOT, SHARED, machine, require

OUT = ROOT / "bench" / "out" / "learn_from_use"
IMGSEARCH = str(Path(sys.executable).parent / "imgsearch")
PHRASINGS = ["{q}", "a {q}", "{q} photo", "some {q}", "the {q}", "picture of {q}", "{q} for sale", "my {q}"]


def run(*args: str, stdin: str | None = None, ok=(0, 1)) -> str:
    done = subprocess.run([IMGSEARCH, *args], input=stdin, capture_output=True, text=True, check=False)
    if done.returncode not in ok:
        sys.exit(f"imgsearch {' '.join(args[:2])} failed: {done.stderr[-600:]}")
    return done.stdout


def half(key: str) -> str:
    return "users" if int(hashlib.sha256(key.encode()).hexdigest(), 16) % 2 else "measured"


def fashion(folder: Path) -> tuple[dict[str, set[str]], dict[str, str]]:
    """(query → relevant file names, query → half) for the fashion test split."""
    from imgsearch.train.splits import is_test_item

    with open(FASHION / "products.csv", encoding="utf-8") as f:
        rows = [
            r for r in csv.DictReader(f) if is_test_item(r["filename"]) and (FASHION / r["filename"]).exists()
        ]
    for r in rows:
        link = folder / Path(r["filename"]).name
        if not link.exists():
            link.symlink_to((FASHION / r["filename"]).resolve())
    pairs = Counter((r["baseColour"], r["articleType"]) for r in rows)
    relevant, halves = {}, {}
    for (colour, kind), count in pairs.items():
        if count >= 3 and colour:
            q = f"{colour} {kind}".lower()
            relevant[q] = {
                Path(r["filename"]).name
                for r in rows
                if (r["baseColour"], r["articleType"]) == (colour, kind)
            }
            halves[q] = half(q)
    return relevant, halves


def grocery(folder: Path) -> tuple[dict[str, set[str]], dict[str, str]]:
    root = require(SHARED / "grocery")
    with open(root / "items.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        link = folder / r["path"].replace("/", "_")
        if not link.exists():
            link.symlink_to((root / r["path"]).resolve())
    relevant: dict[str, set[str]] = {}
    halves: dict[str, str] = {}
    for r in rows:
        name = r["path"].replace("/", "_")
        for q in {r["coarse"].replace("-", " ").lower(), r["fine"].replace("-", " ").lower()}:
            relevant.setdefault(q, set()).add(name)
            halves[q] = half(r["coarse"])  # a fine class goes with its coarse one
    return {q: s for q, s in relevant.items() if len(s) >= 3}, halves


def search(index: Path, lines: list[dict]) -> list[list[dict]]:
    out = run(
        "query",
        "--batch",
        "-",
        "-f",
        "json",
        "--index",
        str(index),
        stdin="".join(json.dumps(x) + "\n" for x in lines),
    )
    return [json.loads(line)["results"] for line in out.splitlines()]


def p_at_10(index: Path, relevant: dict[str, set[str]], queries: list[str]) -> float:
    results = search(index, [{"text": q, "k": 10} for q in queries])
    return sum(
        sum(Path(h["path"]).name in relevant[q] for h in hits) / 10
        for q, hits in zip(queries, results, strict=True)
    ) / len(queries)


def liked_lines(
    index: Path, relevant: dict[str, set[str]], queries: list[str], want: int, seed: int = 0
) -> list[dict]:
    """Simulated users: phrasings of their half's queries, liked where the first 30 hold relevant items."""
    rng = random.Random(seed)
    asked = [(q, rng.choice(PHRASINGS).format(q=q)) for q in rng.choices(queries, k=int(want * 1.6) + 20)]
    results = search(index, [{"text": text, "k": 30} for _, text in asked])
    lines = []
    for (q, text), hits in zip(asked, results, strict=True):
        like = [h["id"] for h in hits if Path(h["path"]).name in relevant[q]]
        unlike = [h["id"] for h in hits if Path(h["path"]).name not in relevant[q]][:2]
        if like:
            lines.append({"text": text, "like": like, "unlike": unlike, "k": 30})
    return lines[:want]


def serve_cost(index: Path, queries: list[str]) -> dict:
    """Mean latency of POST /api/query with and without the log, and bytes per record."""
    figures = {}
    for flag in ([], ["--no-log"]):
        proc = subprocess.Popen(
            [IMGSEARCH, "serve", "--index", str(index), "--port", "0", *flag],
            stderr=subprocess.PIPE,
            text=True,
        )
        line = proc.stderr.readline()
        url = line.split()[-1]
        log = index / "feedback.jsonl"
        size = log.stat().st_size if log.exists() else 0
        times = []
        for q in queries * 3:
            body = json.dumps({"text": q, "k": 10}).encode()
            t = time.perf_counter()
            urllib.request.urlopen(
                urllib.request.Request(url + "/api/query", body, {"Content-Type": "application/json"})
            ).read()
            times.append(time.perf_counter() - t)
        proc.terminate()
        proc.wait()
        grown = (log.stat().st_size if log.exists() else 0) - size
        times = sorted(times[len(queries) :])  # the first round warms up
        figures["no_log" if flag else "log"] = {
            "mean_ms": round(1000 * sum(times) / len(times), 2),
            "p50_ms": round(1000 * times[len(times) // 2], 2),
            "bytes_per_query": round(grown / (3 * len(queries)), 1),
        }
    return figures


def domain(name: str, sizes: list[int], lr: float, out: Path) -> list[dict]:
    folder = out / name / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    relevant, halves = (fashion if name == "fashion" else grocery)(folder)
    users = sorted(q for q in relevant if halves[q] == "users")
    measured = sorted(q for q in relevant if halves[q] == "measured")
    index = folder / ".imgsearch"
    if not (index / "CURRENT").exists():
        run("index", str(folder), "-q")
    run("index", str(folder), "--no-model", "-q")
    before = p_at_10(index, relevant, measured)
    pool = liked_lines(index, relevant, users, max(sizes))
    rows = [{"domain": name, "liked_queries": 0, "P@10": round(before, 3), "written": None}]
    print(
        json.dumps(
            {
                **rows[0],
                "users_queries": len(users),
                "measured_queries": len(measured),
                "items": sum(1 for p in folder.iterdir() if not p.name.startswith(".")),
            }
        ),
        flush=True,
    )
    for n in sizes:
        run("log", "--clear", "--index", str(index))
        lines = pool[:n]
        run(
            "query",
            "--batch",
            "-",
            "--log",
            "--index",
            str(index),
            stdin="".join(json.dumps(x) + "\n" for x in lines),
        )
        model = out / name / f"model-{n}"
        t = time.perf_counter()
        done = subprocess.run(
            [
                IMGSEARCH,
                "train",
                "--from-log",
                "--out",
                str(model),
                "--index",
                str(index),
                "--learning-rate",
                str(lr),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - t
        said = [line for line in done.stderr.splitlines() if "epoch" not in line]
        written = done.returncode == 0
        if written:
            run("index", str(folder), "--model", str(model), "-q")
            after = p_at_10(index, relevant, measured)
            run("index", str(folder), "--no-model", "-q")
        else:
            after = before
        row = {
            "domain": name,
            "liked_queries": len(lines),
            "P@10": round(after, 3),
            "written": written,
            "train_s": round(seconds, 1),
            "said": said[-2:],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if name == "fashion":
        cost = serve_cost(index, measured[:30])
        print(json.dumps({"domain": name, "serve": cost}), flush=True)
    run("log", "--clear", "--index", str(index))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", choices=["fashion", "grocery"], action="append")
    parser.add_argument("--sizes", default="50,200,1000")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    args = parser.parse_args()
    require(FASHION)
    print(json.dumps({"machine": machine(), "learning_rate": args.learning_rate}), flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for name in args.domain or ["fashion", "grocery"]:
        rows += domain(name, sizes, args.learning_rate, OUT)
    print(
        "\n| domain | liked queries in the log | measured-half text P@10 | model written |\n|---|---|---|---|"
    )
    said = {None: "", True: "yes", False: "no: not better on held-out log queries"}
    for r in rows:
        print(f"| {r['domain']} | {r['liked_queries']} | {r['P@10']:.3f} | {said[r['written']]} |")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
