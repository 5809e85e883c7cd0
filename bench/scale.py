"""Embedding throughput of the local engine vs the Beam engine with 1 and 2 worker processes.

    python bench/scale.py [--n 1000] [--repeats 3] [--shards 4]

Embeds N fashion photos of ../shared/data/fashion (read in place through a folder of links, with
their catalog titles) into temporary stores through the command a user runs (`imgsearch embed
... [--engine beam -- --direct_num_workers=W]`, a new process each time, so both engines load
their models), alternating the engines `repeats` times, and prints the best wall time of each
(the machine is shared, so the best run is the least disturbed one) and the CPU seconds of that
run (user + system, every process). Also: the Beam engine's fixed cost (a rerun that finds every
shard complete: start the workers, list, check, merge, compare) and the shard merge alone (read
the shards back in path order). Needs the beam extra: pip install 'imgsearch[beam]'.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FASHION, machine, require

from imgsearch import store

BIN = Path(sys.executable).with_name("imgsearch")


def link_folder(tmp: Path, n: int) -> Path:
    folder = tmp / "photos"
    folder.mkdir()
    for path in sorted((FASHION / "images").glob("*.jpg"))[:n]:
        (folder / path.name).symlink_to(path)
    return folder


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the command and every process it started)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    require(FASHION)
    meta = ["--meta", str(FASHION / "products.csv"), "--text-columns", "productDisplayName", "--quiet"]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = link_folder(tmp, args.n)
        n = sum(1 for _ in folder.iterdir())
        print(f"machine: {machine()}; {n} fashion photos with titles, {args.shards} shards")
        print(f"1-min load average before: {os.getloadavg()[0]:.1f}")

        def embed(out: str, *engine: str) -> list[str]:
            return [str(BIN), "embed", str(folder), "--out", str(tmp / out), *meta, *engine]

        beam = ["--engine", "beam", "--shards", str(args.shards), "--"]
        runs = {
            "local": embed("local"),
            "beam, 1 worker": embed("beam1", *beam, "--direct_num_workers=1"),
            "beam, 2 workers": embed("beam2", *beam, "--direct_num_workers=2"),
        }
        timed(runs["local"])  # the LiteRT export and the page cache, once, unmeasured
        best = {name: (float("inf"), 0.0) for name in runs}
        for _ in range(args.repeats):
            for name, cmd in runs.items():
                shutil.rmtree(cmd[4], ignore_errors=True)
                best[name] = min(best[name], timed(cmd))
        fixed, fixed_cpu = timed(runs["beam, 2 workers"])  # every shard complete: start, list, check, merge
        t = time.perf_counter()
        store.read_shards(tmp / "beam2", args.shards, _key(tmp / "beam2", args.shards))
        merge = time.perf_counter() - t

    print(f"{'engine':18s} {'wall s':>8s} {'img/s':>8s} {'vs local':>9s} {'overhead/img':>13s} {'CPU s':>7s}")
    for name, (seconds, cpu) in best.items():
        extra = (seconds - best["local"][0]) / n * 1000
        ratio = seconds / best["local"][0] - 1
        print(f"{name:18s} {seconds:8.2f} {n / seconds:8.1f} {ratio:+9.1%} {extra:+10.2f} ms {cpu:7.1f}")
    print(
        f"beam fixed cost (rerun, all {args.shards} shards complete): "
        f"{fixed:.2f} s wall, {fixed_cpu:.1f} s CPU"
    )
    print(f"shard merge ({n} items, {args.shards} shards read back in path order): {merge * 1000:.0f} ms")


def _key(root: Path, shards: int) -> dict:
    import json

    meta = json.loads((store.shard_dir(root, 0, shards) / store.SHARD_META).read_text())
    return meta["key"]


if __name__ == "__main__":
    main()
