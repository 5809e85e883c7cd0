"""Every shipped file (``imgsearch/pretrained``, ``imgsearch/data``) has a provenance record beside
it (``provenance.json`` in its folder, written by its recipe in ``recipes/``), and the sha256 the
record gives is the file's: a file changed by hand, or by a recipe whose record was not written,
fails here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from imgsearch.shipped import DATA, PRETRAINED

ROOT = PRETRAINED.parents[1]
NAME = "provenance.json"
SHIPPED = sorted(
    p for folder in (PRETRAINED, DATA) for p in folder.rglob("*") if p.is_file() and p.name != NAME
)
KEYS = {"recipe", "command", "rebuilt", "files", "inputs", "commit", "date", "versions", "development"}


def _records(folder: Path) -> dict[str, dict]:
    path = folder / NAME
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))["artifacts"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_there_are_shipped_files():
    assert len(SHIPPED) >= 20 and any(p.suffix == ".npz" for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_shipped_file_has_a_record_with_its_sha256(path: Path):
    found = [(name, r) for name, r in _records(path.parent).items() if path.name in r["files"]]
    assert len(found) == 1, f"{path.relative_to(ROOT)}: {len(found)} records in {path.parent / NAME}"
    recipe, record = found[0]
    assert record["files"][path.name] == _sha256(path), (
        f"{path.relative_to(ROOT)} is not the file its provenance describes: rebuild it with "
        f"`python -m recipes {recipe}` (or record it)"
    )


@pytest.mark.parametrize(
    "folder", sorted({p.parent for p in SHIPPED}), ids=lambda p: str(p.relative_to(ROOT))
)
def test_records_are_complete_and_name_only_files_that_exist(folder: Path):
    for name, record in _records(folder).items():
        assert set(record) >= KEYS, f"{folder / NAME} [{name}] lacks {KEYS - set(record)}"
        assert (ROOT / record["recipe"]).is_file(), record["recipe"]
        assert record["recipe"] == f"recipes/{name}.py"
        for file in record["files"]:
            assert (folder / file).is_file(), f"{folder / NAME} [{name}] names {file}, which is not there"
        if not record["rebuilt"]:
            assert record.get("note"), f"{folder / NAME} [{name}]: a record not rebuilt says why (note)"


def test_package_data_ships_each_folders_provenance():
    """pyproject's package-data takes each folder's provenance.json along with its files (a few KB:
    an installed copy says where its models came from). Nothing reads it at run time."""
    import tomllib
    from fnmatch import fnmatch

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["imgsearch"]
    for folder in sorted({p.parent for p in SHIPPED}):
        rel = (folder / NAME).relative_to(ROOT / "imgsearch").as_posix()
        assert (folder / NAME).exists(), f"{rel} is missing"
        assert any(fnmatch(rel, pattern) and rel.count("/") == pattern.count("/") for pattern in patterns), (
            rel
        )


def test_a_recipe_without_the_shared_data_says_so_in_one_line_and_stops(tmp_path, capsys, monkeypatch):
    import sys

    sys.path.insert(0, str(ROOT))
    from recipes import provenance

    monkeypatch.setattr(provenance, "SHARED", tmp_path)  # the data sets there or not, as on CI or a clone
    with pytest.raises(SystemExit) as stop:
        provenance.shared_or_skip(tmp_path / "absent.csv")
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("skipped: ") and "absent.csv" in out
