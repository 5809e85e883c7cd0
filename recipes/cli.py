"""The recipes' way to run the ``imgsearch`` CLI: this checkout's code (``python -m imgsearch`` with
the project root first on ``PYTHONPATH``), so an artifact is built by the commit its provenance
names, not by whichever imgsearch a venv's console script points at."""

from __future__ import annotations

import os
import subprocess
import sys

from recipes.splits import ROOT

WORK = ROOT / "recipes" / "out"  # scratch: indexes, caches (ignored by git)


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), out.get("PYTHONPATH")]))
    return out


def imgsearch(
    *args: str,
    check: bool = True,
    capture: bool = False,
    stdin: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imgsearch", *args],
        check=check,
        env={**env(), **(extra_env or {})},
        capture_output=capture,
        text=True,
        input=stdin,
    )
