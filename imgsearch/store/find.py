"""Finding a store: ``--index``, or the nearest ``.imgsearch`` upwards, like git finds ``.git``."""

from __future__ import annotations

from pathlib import Path

from imgsearch.errors import UserError
from imgsearch.store.format import STORE_DIRNAME, Store


def default_store(folder: Path) -> Path:
    return folder / STORE_DIRNAME


def find_store(explicit: Path | None, cwd: Path | None = None) -> Store:
    """``--index`` if given (a store, or a folder holding ``.imgsearch``), else the nearest
    ``.imgsearch`` in the current directory or its parents, like git finds ``.git``."""
    if explicit is not None:
        for candidate in (explicit, explicit / STORE_DIRNAME):
            if Store.is_store(candidate):
                return Store(candidate)
        raise UserError(f"no index at {explicit}: make one with `imgsearch index DIR`")
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if Store.is_store(folder / STORE_DIRNAME):
            return Store(folder / STORE_DIRNAME)
    raise UserError(
        "no index here or in any parent directory: make one with `imgsearch index DIR` "
        "or point to one with --index"
    )
