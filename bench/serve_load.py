"""Bounded local load on `imgsearch serve`: latency percentiles and throughput per query kind.

    python bench/feedback.py --prepare-only          # builds /tmp/imgsearch-feedback/dev/titled
    python bench/serve_load.py [--index /tmp/imgsearch-feedback/dev/titled] [--requests 2000]

Starts ``imgsearch serve --port 0`` on 127.0.0.1 and sends, per kind and per concurrency
(1, 4, 16 keep-alive connections), a fixed number of ``POST /api/query`` requests:

- text: "<colour> <articleType>" texts of the catalog, cycled (after the first round the
  server's text-vector cache answers the encoding);
- text-new: a text never sent before on every request (the MiniLM encoder runs each time);
- image-id: a query image given as an indexed item id (decoded and embedded again);
- text+feedback: text plus 3 liked and 3 unliked item ids.

The load generator is one asyncio process on the same machine, so it takes CPU from the
server: the figures are a floor for a dedicated core.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import FASHION, machine

CONCURRENCY = (1, 4, 16)
KINDS = ("text", "text-new", "image-id", "text+feedback")
WARMUP = 30


def bodies(index: Path, kind: str, n: int, seed: int = 0) -> list[bytes]:
    from imgsearch.store import Store

    items = Store(index).require().items
    rng = random.Random(seed)
    with open(FASHION / "products.csv", encoding="utf-8") as f:
        rows = {Path(r["filename"]).name: r for r in csv.DictReader(f)}
    texts = sorted(
        {f"{r['baseColour']} {r['articleType']}".lower() for i in items if (r := rows.get(Path(i.path).name))}
    )
    out = []
    for j in range(n):
        text = rng.choice(texts)
        if kind == "text":
            spec = {"text": text}
        elif kind == "text-new":
            spec = {"text": f"{text} no{j}"}
        elif kind == "image-id":
            spec = {"image": rng.choice(items).id}
        else:
            picked = rng.sample(items, 6)
            spec = {"text": text, "like": [i.id for i in picked[:3]], "unlike": [i.id for i in picked[3:]]}
        out.append(json.dumps({**spec, "k": 10}).encode())
    return out


async def worker(host: str, port: int, queue: list[bytes], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while queue:
            body = queue.pop()
            head = (
                f"POST /api/query HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            t0 = time.perf_counter()
            writer.write(head + body)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if b" 200 " not in status:
                raise RuntimeError(f"{status!r}")
    finally:
        writer.close()


async def load(host: str, port: int, requests: list[bytes], concurrency: int) -> tuple[list[float], float]:
    queue = list(reversed(requests))
    latencies: list[float] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(host, port, queue, latencies) for _ in range(concurrency)))
    return latencies, time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, default=Path("/tmp/imgsearch-feedback/dev/titled"))
    ap.add_argument("--requests", type=int, default=2000, help="per kind and concurrency (image-id: a third)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of " + ", ".join(KINDS))
    args = ap.parse_args()
    if not (args.index / "CURRENT").exists():
        sys.exit(f"skipped: no index at {args.index} (run bench/feedback.py --prepare-only)")
    from test_serve import start_server

    proc, url = start_server(args.index)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    print(f"# {machine()}; index {args.index}")
    report = {}
    try:
        for kind in args.kinds.split(","):
            n = args.requests // 3 if kind == "image-id" else args.requests
            for conc in CONCURRENCY:
                reqs = bodies(args.index, kind, n + WARMUP, seed=conc)
                asyncio.run(load(host, int(port), reqs[:WARMUP], conc))
                lat, seconds = asyncio.run(load(host, int(port), reqs[WARMUP:], conc))
                row = {"n": n, "p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1)}
                row["qps"] = round(n / seconds, 1)
                report[f"{kind} c={conc}"] = row
                shown = f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, {row['qps']} q/s"
                print(f"{kind:14s} c={conc:2d}: {n} requests, {shown}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
