"""Speeds of the photo-library features: EXIF reading at index time, and `index --watch` latency.

    python bench/live.py                  # work in bench/out/live; prints one JSON line last

1. EXIF: 1,000 generated 640x480 JPEGs with date, camera, lens and GPS (random points in Europe):
   ms to read their EXIF (headers only) and to name their places (GeoNames, `reverse-geocode`),
   the loading of the place data apart (once per `index` run that meets a new GPS photo).
2. Watch: `imgsearch index DIR --watch --settle 0.5` on a folder of scikit-image's sample photos;
   a photo is copied in, five times; seconds from the copy to the published generation holding it
   (what the next `query` opens), median and max. The settle time is part of it by design.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine

from imgsearch.files import exif
from imgsearch.store import Store

OUT = ROOT / "bench" / "out" / "live"
IMGSEARCH = str(Path(sys.executable).parent / "imgsearch")
SETTLE = 0.5


def exif_photos(folder: Path, n: int = 1000) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    paths = []
    for i in range(n):
        path = folder / f"p{i:04d}.jpg"
        if not path.exists():
            e = Image.Exif()
            e[exif.MAKE], e[exif.MODEL] = "Google", "Pixel 7"
            sub = e.get_ifd(exif.EXIF_IFD)
            sub[exif.DATE_TIME_ORIGINAL] = f"2019:{1 + i % 12:02d}:{1 + i % 28:02d} 12:00:00"
            sub[exif.LENS_MODEL] = "Pixel 7 back camera"
            gps = e.get_ifd(exif.GPS_IFD)
            lat, lon = rng.uniform(36, 60), rng.uniform(-9, 25)
            gps[1], gps[2] = "N", (int(lat), int(lat % 1 * 60), 0.0)
            gps[3], gps[4] = ("E" if lon >= 0 else "W"), (int(abs(lon)), int(abs(lon) % 1 * 60), 0.0)
            Image.fromarray(pixels).save(path, quality=85, exif=e)
        paths.append(path)
    return paths


def time_exif() -> dict:
    paths = exif_photos(OUT / "exif")
    started = time.perf_counter()
    records = [exif.read_file(str(p)) for p in paths]
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    exif.places([[36.0, -9.0]])  # loads the place data
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    named = exif.places([r["gps"] for r in records])
    place_s = time.perf_counter() - started
    return {
        "exif_read_ms_per_1000": round(read_s * 1000 * 1000 / len(paths)),
        "places_ms_per_1000": round(place_s * 1000 * 1000 / len(paths)),
        "place_data_load_ms": round(load_s * 1000),
        "named": sum(p is not None for p in named),
    }


def time_watch(rounds: int = 5) -> dict:
    import skimage

    samples = sorted((Path(skimage.__file__).parent / "data").glob("*.png"))[:12]
    folder = OUT / "watched"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for p in samples[:4]:
        shutil.copy(p, folder / p.name)
    cmd = [IMGSEARCH, "index", str(folder), "--watch", "--settle", str(SETTLE), "--quiet"]
    watcher = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    st = Store(folder / ".imgsearch")
    try:
        _wait(lambda: st.current_dir() is not None, 300)
        latencies = []
        for i, sample in enumerate(samples[4 : 4 + rounds]):
            new = folder / f"new-{i}-{sample.name}"
            before = st.current_dir()
            started = time.perf_counter()
            shutil.copy(sample, new)
            _wait(lambda b=before: st.current_dir() != b, 120)
            latencies.append(time.perf_counter() - started)
            assert str(new) in {item.path for item in st.require().items}
    finally:
        watcher.terminate()
        watcher.wait(30)
    return {
        "watch_settle_s": SETTLE,
        "watch_latency_s_median": round(statistics.median(latencies), 2),
        "watch_latency_s_max": round(max(latencies), 2),
    }


def _wait(done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            sys.exit("timed out waiting for the watcher")
        time.sleep(0.05)


def main() -> None:
    figures = {**time_exif(), **time_watch()}
    print(json.dumps({"machine": machine(), **figures}))


if __name__ == "__main__":
    main()
