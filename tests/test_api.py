"""imgsearch.api: the public face (``from imgsearch import Index``), and the CLI and ``serve`` as its
clients, importing nothing private across the subsystem packages."""

from __future__ import annotations

import ast
import doctest
import shutil
import sys
from pathlib import Path

import pytest
from conftest import skimage_data

import imgsearch
from imgsearch import DuplicateGroup, Hit, Index, UserError

PACKAGE = Path(imgsearch.__file__).parent


@pytest.mark.slow
def test_the_documented_examples_run_with_the_real_models(tmp_path, monkeypatch):
    """The module's doctest, on four sample photos, with the shipped encoders."""
    from imgsearch import api
    from imgsearch.search import searcher

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("chelsea.png", "rocket.jpg", "coffee.png", "astronaut.png"):
        shutil.copy2(skimage_data() / name, photos / name)
    monkeypatch.chdir(tmp_path)
    for module, extra in ((api, {"photos": str(photos)}), (searcher, {})):
        failed, tried = doctest.testmod(module, extraglobs=extra, optionflags=doctest.ELLIPSIS)
        assert tried and not failed, module.__name__


def test_build_open_search_and_duplicates(photos, tiny):
    shutil.copy2(photos / "rocket.jpg", photos / "rocket copy.jpg")
    built = Index.build(photos)
    assert built.report is not None and built.report.rebuilt
    assert len(built) == 7 and built.path == photos / ".imgsearch"

    index = Index.open(photos)
    hits = index.search(image=photos / "rocket.jpg", k=3)
    assert all(isinstance(h, Hit) for h in hits) and [h.rank for h in hits] == [1, 2, 3]
    assert {Path(h.path).name for h in hits[:2]} == {"rocket.jpg", "rocket copy.jpg"}
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert hits[0].scores and hits[0].id and hits[0].to_json()["path"] == hits[0].path

    liked = index.search(like=[hits[0].id], k=1)
    assert liked[0].id == hits[0].id

    groups = index.duplicates()
    assert [sorted(Path(p).name for p in g.paths) for g in groups] == [["rocket copy.jpg", "rocket.jpg"]]
    assert isinstance(groups[0], DuplicateGroup) and groups[0].similarity[0] == 1.0


def test_results_changed_since_the_index_are_left_out_and_said(photos, tiny):
    index = Index.build(photos)
    (photos / "rocket.jpg").unlink()
    hits = index.search(image=str(photos / "motorcycle_left.png"), k=10)
    assert "rocket.jpg" not in {Path(h.path).name for h in hits}
    assert index.notes and "left out 1 result(s)" in index.notes[0]


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda i: i.search(text="x", k=0), "-k/--top"),
        (lambda i: i.search(text="x", weights={"nope": 1}), "nope"),
        (lambda i: i.search(text="x", taken_after="last week"), "taken-after"),
        (lambda i: i.duplicates(threshold=2), "--threshold"),
    ],
)
def test_bad_arguments_are_user_errors(photos, tiny, call, says):
    index = Index.build(photos)
    with pytest.raises(UserError, match=says):
        call(index)


def test_opening_a_folder_without_an_index_is_a_user_error(tmp_path):
    with pytest.raises(UserError):
        Index.open(tmp_path)


def test_unknown_build_options_are_named(photos, tiny):
    with pytest.raises(UserError, match=r"unknown index option.*colour_space"):
        Index.build(photos, colour_space="lab")


def test_importing_the_package_loads_no_search_code():
    import subprocess

    code = "import sys, imgsearch.errors; print('imgsearch.api' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# --- the clients import nothing private across packages --------------------------------------------


def _subsystem(module: str) -> str:
    """``imgsearch.search.searcher`` → ``search``; a top-level module is its own subsystem."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def private_imports(package: str) -> list[str]:
    """Every ``from imgsearch.X... import _name``, import of a ``_module``, or ``module._name``
    use in ``package``'s files, where X is another subsystem."""
    found = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}  # local name → imported imgsearch module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("imgsearch"):
                if _subsystem(node.module) == package:
                    continue
                where = f"{path.name}:{node.lineno}"
                if any(part.startswith("_") for part in node.module.split(".")):
                    found.append(f"{where} {node.module}")
                for alias in node.names:
                    if alias.name.startswith("_"):
                        found.append(f"{where} {node.module}.{alias.name}")
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append(f"{path.name}:{node.lineno} {aliases[node.value.id]}.{node.attr}")
    return found


@pytest.mark.parametrize("package", ["cli", "serve"])
def test_the_cli_and_serve_import_nothing_private_from_other_packages(package):
    assert private_imports(package) == []


def test_the_private_import_check_sees_one(tmp_path, monkeypatch):
    fake = tmp_path / "imgsearch"
    (fake / "cli").mkdir(parents=True)
    (fake / "cli" / "app.py").write_text(
        "from imgsearch.store.format import _has_mark\nfrom imgsearch.dups import pairs\npairs._refine(1)\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert private_imports("cli") == [
        "app.py:1 imgsearch.store.format._has_mark",
        "app.py:3 imgsearch.dups.pairs._refine",
    ]


def test_the_cli_searches_through_the_api():
    """`query`, `index` and `dups` open, build and search through ``Index``, not around it."""
    source = (PACKAGE / "cli" / "app.py").read_text(encoding="utf-8")
    for bypass in ("Searcher(", "index_folder(", "find_groups("):
        assert bypass not in source


def test_a_catalog_given_as_a_string_titles_the_items(photos, tiny, tmp_path):
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("filename,title\nchelsea.png,tabby cat on a rug\n", encoding="utf-8")
    index = Index.build(photos, meta=str(catalog), text_columns=["title"])
    titled = [h.text for h in index.search(text="tabby cat", k=len(index)) if h.text]
    assert "tabby cat on a rug" in titled
