"""Cold and warm query latency of the real command, against `import tensorflow` in the same run.

    python bench/cold_query.py --index /tmp/fashion-meta [--runs 5]

Cold = a new process per query, as from a shell. Prints the median wall time of: `python -c
"import tensorflow"`, `imgsearch --help`, a text query, an image query (each with the
--timings breakdown of its last run), and warm `--batch` text queries per second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, machine, require

BIN = Path(sys.executable).with_name("imgsearch")


def wall(cmd: list[str], runs: int) -> tuple[float, str]:
    times, err = [], ""
    for _ in range(runs):
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        err = done.stderr
    return statistics.median(times), err


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    require(FASHION)
    print(f"machine: {machine()}; median of {args.runs} cold runs each")
    tf, _ = wall([sys.executable, "-c", "import tensorflow"], args.runs)
    print(f"python -c 'import tensorflow'     {tf:6.2f} s")
    cases = {
        "imgsearch --help": [str(BIN), "--help"],
        "query --text 'red bag'": [
            str(BIN),
            "query",
            "--text",
            "red bag",
            "--index",
            str(args.index),
            "--timings",
        ],
        "query IMAGE": [
            str(BIN),
            "query",
            str(FASHION / "images" / "10000.jpg"),
            "--index",
            str(args.index),
            "--timings",
        ],
        "query IMAGE --text red": [
            str(BIN),
            "query",
            str(FASHION / "images" / "10000.jpg"),
            "-t",
            "red",
            "--index",
            str(args.index),
            "--timings",
        ],
    }
    for name, cmd in cases.items():
        seconds, err = wall(cmd, args.runs)
        breakdown = next((line for line in err.splitlines() if line.startswith("timings:")), "")
        print(f"{name:32s} {seconds:6.2f} s  ({seconds / tf:.2f}× import tensorflow)  {breakdown}")
    words = ["red", "black", "white", "blue", "green", "leather", "cotton", "sports", "casual", "formal"]
    things = ["bag", "watch", "shoes", "shirt", "jeans", "dress", "sunglasses", "wallet", "belt", "cap"]
    lines = [
        json.dumps({"text": [f"{w} {t} {i}"], "k": 10})
        for i in range(args.batch // 100 + 1)
        for w in words
        for t in things
    ][: args.batch]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    start = time.perf_counter()
    subprocess.run(
        [str(BIN), "query", "--batch", f.name, "--index", str(args.index)], capture_output=True, check=True
    )
    total = time.perf_counter() - start
    one, _ = wall([str(BIN), "query", "--batch", "/dev/null", "--index", str(args.index)], 1)
    print(
        f"warm --batch text queries: {len(lines) / (total - one):.0f}/s "
        f"({len(lines)} queries in {total:.1f} s incl. {one:.1f} s start-up)"
    )


if __name__ == "__main__":
    main()
