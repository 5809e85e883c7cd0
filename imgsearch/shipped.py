"""Where the files shipped inside the package live: fitted models (``pretrained/``) and tables
(``data/``). Each is rebuilt by a recipe in ``recipes/`` that writes its provenance beside it."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PRETRAINED = PACKAGE / "pretrained"
DATA = PACKAGE / "data"
