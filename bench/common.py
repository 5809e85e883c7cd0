"""Helpers shared by the benchmarks: where the shared data is, and what machine this is."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FASHION = SHARED / "fashion"
FLICKR = SHARED / "flickr8k"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    py = sys.version.split()[0]
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {py}"


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"skipped: {path} is not present (shared data set)")
    return path
