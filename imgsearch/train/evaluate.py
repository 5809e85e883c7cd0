"""Retrieval metrics and evaluation runs on labelled data (``imgsearch eval``).

Metrics follow the usual IR definitions, for one query with ranked results
``ranked`` (row ids) and a set of relevant row ids:

- precision@k = hits in the top k / k
- recall@k    = hits in the top k / number of relevant items
- AP@k        = sum over ranks i ≤ k where result i is relevant of precision@i,
                divided by min(k, number of relevant)  (mAP@k is its mean)
- F1@k        = harmonic mean of precision@k and recall@k
- hit@k       = 1 if any relevant item is in the top k (what caption→image papers call R@k,
                where each caption has exactly one relevant image)

Queries with no relevant item are skipped (they have no defined recall).
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsearch.errors import UserError
from imgsearch.files.catalog import Metadata, read_metadata
from imgsearch.store import Generation

KS = (1, 5, 10, 50)


def precision_at(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    return sum(1 for r in ranked[:k] if r in relevant) / k


def recall_at(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    return sum(1 for r in ranked[:k] if r in relevant) / len(relevant) if relevant else 0.0


def average_precision_at(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for i, r in enumerate(ranked[:k], 1):
        if r in relevant:
            hits += 1
            total += hits / i
    return total / min(k, len(relevant))


def f1_at(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    p, r = precision_at(ranked, relevant, k), recall_at(ranked, relevant, k)
    return 2 * p * r / (p + r) if p + r else 0.0


def hit_at(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    return float(any(r in relevant for r in ranked[:k]))


def capped_recall_at(sims: np.ndarray, truth: list[set[int]], k: int) -> float:
    """Mean over the rows of a query × gallery similarity matrix of hits in the top ``k`` divided
    by min(k, relevant): 1.0 when the top k is as full of relevant items as it can be. The
    validation metric of every trained head; rows with nothing relevant count 0."""
    top = np.argsort(-sims, axis=1)[:, :k]
    return float(
        np.mean(
            [
                len(set(row.tolist()) & rel) / min(len(rel), k) if rel else 0.0
                for row, rel in zip(top, truth, strict=True)
            ]
        )
    )


@dataclass
class Metrics:
    """Mean metrics over queries, per k."""

    queries: int = 0
    values: dict[str, dict[int, float]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "queries": self.queries,
            **{name: {str(k): round(v, 4) for k, v in per_k.items()} for name, per_k in self.values.items()},
        }


METRICS = {
    "precision": precision_at,
    "recall": recall_at,
    "mAP": average_precision_at,
    "F1": f1_at,
    "hit": hit_at,
}


def mean_metrics(runs: Iterable[tuple[Sequence[int], set[int]]], ks: Sequence[int] = KS) -> Metrics:
    sums = {name: dict.fromkeys(ks, 0.0) for name in METRICS}
    n = 0
    for ranked, relevant in runs:
        if not relevant:
            continue
        n += 1
        for name, fn in METRICS.items():
            for k in ks:
                sums[name][k] += fn(ranked, relevant, k)
    return Metrics(n, {name: {k: v / max(n, 1) for k, v in per_k.items()} for name, per_k in sums.items()})


# Labels


def item_labels(gen: Generation, meta: Metadata, columns: list[str]) -> list[str | None]:
    """One label per item: the named columns joined with '|', None when unlabelled."""
    labels = []
    for item in gen.items:
        row = meta.lookup(item.path)
        values = [str(row.get(c) or "").strip() for c in columns] if row else []
        labels.append("|".join(values) if values and all(values) else None)
    return labels


def load_labels(gen: Generation, meta_path: Path, columns: list[str]) -> list[str | None]:
    meta = read_metadata(meta_path, columns)
    labels = item_labels(gen, meta, columns)
    if sum(label is not None for label in labels) < 2:
        raise UserError(f"fewer than two items of the index have {', '.join(columns)} in {meta_path}")
    return labels


# Image → image


def image_to_image(
    vectors: np.ndarray,
    labels: list[str | None],
    *,
    sample: int | None = 1000,
    seed: int = 0,
    ks: Sequence[int] = KS,
    rows: Sequence[int] | None = None,
) -> Metrics:
    """Every (or a seeded sample of) labelled item queries the rest; relevant = same label.

    Exact search on the stored vectors, in blocks, so it is deterministic and fast.
    ``rows`` restricts queries and gallery to a subset (e.g. a test split).
    """
    gallery = np.asarray(rows if rows is not None else range(len(labels)), np.int64)
    gallery = np.array([r for r in gallery if labels[r] is not None], np.int64)
    queries = list(gallery)
    if sample and len(queries) > sample:
        queries = sorted(random.Random(seed).sample(queries, sample))
    by_label: dict[str, set[int]] = {}
    for r in gallery:
        by_label.setdefault(labels[r], set()).add(int(r))
    depth = max(ks)
    gal = np.asarray(vectors[gallery], np.float32)
    runs = []
    for start in range(0, len(queries), 256):
        block = np.asarray(queries[start : start + 256], np.int64)
        sims = np.asarray(vectors[block], np.float32) @ gal.T
        sims[np.arange(len(block)), np.searchsorted(gallery, block)] = -np.inf  # never the query itself
        top = np.argsort(-sims, axis=1)[:, :depth]
        for q, ranked in zip(block, top, strict=True):
            runs.append(([int(gallery[i]) for i in ranked], by_label[labels[q]] - {int(q)}))
    return mean_metrics(runs, ks)


# Text → image


@dataclass
class TextQuery:
    text: str
    filters: dict[str, str]  # column → required value (case-insensitive)
    ids: set[str]  # or explicit relevant item ids / file stems


def read_text_queries(path: Path) -> list[TextQuery]:
    """CSV (columns ``query`` and ``relevant``) or JSON lines ({"query", "relevant"}).

    ``relevant`` is a label filter such as ``articleType=Handbags,baseColour=Red`` or a
    list of ids (file stems or item ids), ``;``-separated in CSV.
    """
    if not path.is_file():
        raise UserError(f"queries file not found: {path}")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    out = []
    for n, row in enumerate(rows, 1):
        if "query" not in row or "relevant" not in row:
            raise UserError(f"{path}:{n}: needs 'query' and 'relevant'")
        out.append(_text_query(str(row["query"]), row["relevant"]))
    return out


def _text_query(text: str, relevant) -> TextQuery:
    if isinstance(relevant, list):
        return TextQuery(text, {}, {str(x) for x in relevant})
    relevant = str(relevant)
    if "=" in relevant:
        filters = dict(part.split("=", 1) for part in relevant.split(",") if "=" in part)
        return TextQuery(text, {k.strip(): v.strip() for k, v in filters.items()}, set())
    return TextQuery(text, {}, {x.strip() for x in relevant.split(";") if x.strip()})


def relevant_rows(gen: Generation, query: TextQuery, meta: Metadata | None) -> set[int]:
    if query.ids:
        return {
            r for r, item in enumerate(gen.items) if item.id in query.ids or Path(item.path).stem in query.ids
        }
    if meta is None:
        raise UserError("label filters in the queries file need --meta to read the labels from")
    want = {k: v.lower() for k, v in query.filters.items()}
    rows = set()
    for r, item in enumerate(gen.items):
        row = meta.lookup(item.path)
        if row and all(str(row.get(k, "")).strip().lower() == v for k, v in want.items()):
            rows.add(r)
    return rows


def text_to_image(
    searcher,
    queries: list[TextQuery],
    relevant: list[set[int]],
    *,
    k: int = 50,
    rows: np.ndarray | None = None,
    ks: Sequence[int] = KS,
) -> Metrics:
    """Each query text searched through the full fused search; gallery limited to ``rows``."""
    from imgsearch.search.query import build_query

    allowed = None if rows is None else {int(r) for r in rows}
    runs = []
    for query, rel in zip(queries, relevant, strict=True):
        hits = searcher.search(build_query(texts=[query.text], k=max(k, max(ks))), within=rows)
        ranked = [h.row for h in hits]
        runs.append((ranked, rel if allowed is None else rel & allowed))
    return mean_metrics(runs, ks)


def autotag_text_vectors(gen: Generation, text_encoder) -> np.ndarray:
    """Text vectors of every item's auto tags: what a folder without titles would have."""
    from imgsearch.embed.tags import tag_text

    texts = [tag_text(item.tags) for item in gen.items]
    out = np.zeros((gen.count, text_encoder.spec.dim), np.float32)
    with_text = [i for i, t in enumerate(texts) if t]
    if with_text:
        out[with_text] = text_encoder.encode([texts[i] for i in with_text])
    return out


def image_space(gen: Generation) -> str:
    """The space `query IMAGE` ranks by: a trained metric head replaces raw image similarity."""
    return "metric" if "metric" in gen.vectors else "image"


def evaluate_text(
    gen: Generation, meta: Path, queries: Path, *, hide_text: bool, rows: np.ndarray | None
) -> Metrics:
    """``imgsearch eval --queries``: text → image through the same fused search as ``query``.

    ``hide_text`` swaps every item's text vector for that of its auto tags: what a photo folder
    without titles would get.
    """
    from imgsearch.search.searcher import QueryEncoder, Searcher

    text_queries = read_text_queries(queries)
    catalog = read_metadata(meta, [])
    relevant = [relevant_rows(gen, q, catalog) for q in text_queries]
    encoder = QueryEncoder(gen.manifest)
    if hide_text:
        gen.vectors["text"] = autotag_text_vectors(gen, encoder.text())
    searcher = Searcher(gen, encoder, check_files=False)
    return text_to_image(searcher, text_queries, relevant, rows=rows)
