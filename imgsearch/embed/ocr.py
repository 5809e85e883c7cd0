"""The ocr space: words printed in the photo (packaging, signs, screenshots), read at index time.

Why: a plain photo folder has no text of its own, and neither the photo head nor the auto tags
can read a brand off a carton: ``--text oatly`` found 0.04 Oatly packages in the top 10 of the
grocery val split. The words read here go into a full-text index of their own (``ocr.sqlite``,
BM25 through ``imgsearch.search.lexical``), scored like the ``lexical`` space but fused on their own, so
OCR noise never mixes with catalog titles.

Engine: RapidOCR (PP-OCRv4 detection + recognition in ONNX, run by onnxruntime). Its wheel ships
the models: nothing is downloaded at run time. It is slow next to embedding (docs/ocr.md), so it
runs only under ``index --ocr`` (or ``embed --ocr``, either engine); the choice is kept in the
manifest (``text_source.ocr``) and a re-index reads only new or changed files. Imported only when
an index reads text.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from imgsearch.errors import UserError
from imgsearch.files.images import ImageError, open_image

ENGINE = "rapidocr-onnxruntime/PP-OCRv4"
# Lines the recogniser is less sure of than this are mostly texture read as letters.
MIN_CONFIDENCE = 0.5
# Longest side given to the detector: phone photos at 4000 px cost seconds each, and print big
# enough to search by stays legible at this size.
MAX_SIDE = 1280

_engine: Any = None
_lock = threading.Lock()


def require() -> type:
    """The engine's class, or one line saying how to install it. Beam checks this before its
    workers start, so a missing extra is said once, not as a failure inside a worker."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:
        raise UserError(f"--ocr needs rapidocr-onnxruntime ({exc}): pip install 'imgsearch[ocr]'") from None
    return RapidOCR


def _load() -> Any:
    """The RapidOCR engine, built once per process (it loads three ONNX models)."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = require()()
        return _engine


def read_text(source: str | bytes) -> str:
    """The words printed in the image at ``source`` (a path, or the file's bytes when a Beam worker
    read it from object storage), one line per detected text line ("" when none, or when it
    cannot be read: the embedding job reports unreadable files on its own)."""
    try:
        img = open_image(source)
    except ImageError:
        return ""
    img.thumbnail((MAX_SIDE, MAX_SIDE))
    bgr = np.ascontiguousarray(np.asarray(img)[:, :, ::-1])  # RapidOCR takes OpenCV's BGR order
    engine = _load()
    try:
        found, _ = engine(bgr, use_cls=False)  # upright print only: the angle classifier costs ~20%
    except Exception:  # an odd image the detector chokes on must not end the run: no words read
        return ""
    return "\n".join(text for _, text, score in found or () if float(score) >= MIN_CONFIDENCE)


def read_all(paths: list[str]) -> list[str]:
    """``read_text`` of each path, in order."""
    return [read_text(p) for p in paths]


def enabled(option: bool | None, manifest: dict | None) -> bool:
    """Whether this run reads text: ``--ocr`` / ``--no-ocr`` when given, else as the index was
    built (a plain ``imgsearch index DIR`` keeps reading new photos of an OCR'd folder)."""
    if option is not None:
        return option
    source = (manifest or {}).get("text_source") or {}
    return bool(isinstance(source, dict) and source.get("ocr"))
