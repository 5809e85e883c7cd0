"""``query --batch``: many queries, models loaded once, one JSON line answered per query line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import BinaryIO, TextIO

from imgsearch.errors import UserError
from imgsearch.search import filters
from imgsearch.search.query import Query, build_query, check_weights
from imgsearch.search.searcher import Searcher

KEYS = {"image", "text", "not", "not_image", "k", "weight", "like", "unlike", *filters.KEYS}


def _strings(spec: dict, key: str) -> list[str]:
    value = spec.get(key)
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) for v in values):
        raise UserError(f'"{key}" must be a string or a list of strings')
    return values


def _k(spec: dict) -> int:
    k = spec.get("k", 10)
    if isinstance(k, float) and k.is_integer():
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int):
        raise UserError(f'"k" must be a whole number, not {json.dumps(k)}')
    return k


def parse_spec(spec: object) -> Query:
    """One batch query (a JSON object) → a ``Query``; raises UserError saying what is wrong."""
    if not isinstance(spec, dict):
        raise UserError("each line must be a JSON object")
    unknown = set(spec) - KEYS
    if unknown:
        raise UserError(f"unknown key(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(KEYS))}")
    weight = spec.get("weight")
    return build_query(
        _strings(spec, "image"),
        _strings(spec, "text"),
        _strings(spec, "not"),
        _strings(spec, "not_image"),
        _k(spec),
        {} if weight is None else check_weights(weight),
        _strings(spec, "like"),
        _strings(spec, "unlike"),
        filters.make(*(spec.get(key) for key in filters.KEYS)),
    )


def parse_line(line: bytes | str) -> Query:
    """One JSON-lines query → a ``Query``; raises UserError when malformed."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        spec = json.loads(text)
    except UnicodeDecodeError:
        raise UserError("the line is not valid UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise UserError(f"not JSON ({exc})") from None
    return parse_spec(spec)


def run_batch(searcher: Searcher, source: str, out: TextIO, log: Callable | None = None) -> int:
    """Answer every line; a bad line gets ``{"error": ...}`` and the rest still run.

    Lines are read in blocks so the texts of a whole block encode in one batch.
    ``log(query, hits)`` is called for each answered line that carries likes or unlikes.
    Exit status 0 when every query was answered, 2 when any line was bad.
    """
    stream = sys.stdin.buffer if source == "-" else _open(source)
    status = 0
    for block in _blocks(enumerate(stream, 1), BLOCK):
        parsed = [(n, _parse_or_error(line)) for n, line in block]
        texts = [t for _, q in parsed if isinstance(q, Query) for t, _ in q.texts + q.not_texts]
        if texts:
            searcher.encoder.texts(texts)
        for n, q in parsed:
            try:
                if isinstance(q, Exception):
                    raise q
                hits = searcher.search(q)
                result = {"query": n, "results": [h.to_json() for h in hits]}
                if log is not None and (q.like or q.unlike):
                    log(q, hits)
                if searcher.no_exif:  # photos a filter left out for lacking EXIF, as the CLI says
                    result["no_exif"] = searcher.no_exif
            except BAD_QUERY as exc:
                result = {"query": n, "error": str(exc)}
                status = 2
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
        out.flush()
    return status


BLOCK = 32  # queries read ahead so their texts encode in one batch (~2× faster than one by one)


BAD_QUERY = (UserError, ValueError, TypeError)  # reported on the query's own line; the rest still run


def _parse_or_error(line: bytes) -> Query | Exception:
    try:
        return parse_line(line)
    except BAD_QUERY as exc:
        return exc


def _blocks(lines, size: int):
    block = []
    for n, line in lines:
        if line.strip():
            block.append((n, line))
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def _open(source: str) -> BinaryIO:
    try:
        return open(source, "rb")
    except OSError as exc:
        raise UserError(f"--batch {source}: {exc.strerror}") from None
