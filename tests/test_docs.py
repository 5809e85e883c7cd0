"""The README stays a user's page, and no relative link in it or in docs/ points at nothing.

`make docs` (mkdocs build --strict, in CI) checks the site's own links and anchors; this checks
the same files as they read on a code host, without MkDocs installed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE = re.compile(r"`[^`\n]*`")


def relative_links(page: Path) -> list[str]:
    """The link targets of a Markdown page outside code, less web addresses and bare anchors."""
    text = CODE.sub("", FENCE.sub("", page.read_text()))
    targets = [found[1] for found in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", t)]


def test_the_readme_is_at_most_300_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_the_link_finder_sees_links_and_images_but_not_code(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        '[a](x.md#y) ![b](img.png "t") [c](https://e.org) [d](#z) `[e](no.md)`\n```\n[f](no.md)\n```\n'
    )
    assert relative_links(page) == ["x.md#y", "img.png"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file(page):
    missing = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"
