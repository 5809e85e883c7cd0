"""The lock against pyproject.toml's ranges, or against what an environment has installed.

    python requirements/compare.py ranges      # every range pyproject names is pinned, inside the range
    python requirements/compare.py installed   # this interpreter has exactly the locked versions
    python requirements/compare.py newer       # which installed versions differ from the lock (a report)

The first two exit 1 with one line per mismatch; ``newer`` only reports (``make test-latest``).
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
LOCK = HERE / "lock.txt"
PYPROJECT = HERE.parent / "pyproject.toml"
# the extras `make install` installs, and so the ones the lock covers
LOCKED_EXTRAS = ("dev", "demo", "beam", "efficientnet-lite", "ocr")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def locked(lock: Path = LOCK) -> dict[str, str]:
    """Canonical package name → pinned version."""
    pins = {}
    for line in lock.read_text().splitlines():
        found = PIN.match(line)
        if found:
            pins[canonicalize_name(found[1])] = found[2]
    return pins


def wanted(pyproject: Path = PYPROJECT) -> list[Requirement]:
    """The project's requirements and those of the locked extras, plus the weights file's."""
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in LOCKED_EXTRAS:
        lines += project["optional-dependencies"][extra]
    lines += [ln for ln in (HERE / "weights.in").read_text().splitlines() if ln and not ln.startswith("#")]
    return [Requirement(line) for line in lines]


def range_problems(pins: dict[str, str], requirements: list[Requirement]) -> list[str]:
    problems = []
    for req in requirements:
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req.name}: in pyproject.toml but not in the lock (run `make lock`)")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}: locked {pinned} is outside pyproject's range {req.specifier}")
    return problems


def installed_differences(pins: dict[str, str]) -> list[str]:
    differences = []
    for name, pinned in sorted(pins.items()):
        try:
            have = version(name)
        except PackageNotFoundError:
            have = "not installed"
        if have != pinned:
            differences.append(f"{name}: lock {pinned}, installed {have}")
    return differences


def main(argv: list[str]) -> int:
    mode = argv[1] if len(argv) > 1 else ""
    pins = locked()
    if mode == "ranges":
        problems = range_problems(pins, wanted())
    elif mode in ("installed", "newer"):
        problems = installed_differences(pins)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for line in problems:
        print(line)
    if mode == "newer":
        print(f"{len(problems)} of {len(pins)} locked packages differ from the lock")
        return 0
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
