"""``imgsearch train --from-log``: learn a text→image head from what users liked and unliked.

Every logged query with words and at least one liked item is a training example: the query's
sentence vector should score its liked items above the rest of the index, and above the items
the user unliked. The head starts as the one the index already searches words with (a trained
``aligned`` head, else the shipped ``photo`` head), so a small log nudges it and a large one
moves it further; a pull towards the starting weights keeps a few users' likes from rewriting
it. A fifth of the queries is held out, those that liked a common item kept together (one need
in other words): it drives early stopping (in the head's own space) and decides whether the head
is written at all, which it is only when the index's search with it (fused with every other
space, as ``query`` ranks) puts those queries' liked items higher than the search without it. It
is saved as ``aligned`` in a model dir that ``imgsearch index DIR --model OUT`` applies.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsearch.disjoint import DisjointSets
from imgsearch.encoders.base import l2_normalise
from imgsearch.encoders.heads import Head
from imgsearch.errors import UserError
from imgsearch.quiet import quiet_tensorflow
from imgsearch.search.query import Query
from imgsearch.search.searcher import QueryEncoder, Searcher
from imgsearch.store import Generation
from imgsearch.train.evaluate import capped_recall_at
from imgsearch.train.transfer import Reporter, TrainConfig, fit_head, head_info

MIN_QUERIES = 10  # liked queries below which nothing is learned: too few to hold any out
HELD_OUT = 5  # one group of queries in this many (by a hash of its words) is held out
NEGATIVES = 256  # random items per step that each query's liked items must beat
UNLIKED_PER_STEP = 64  # unliked items per step at most (random ones fill the rest)
ANCHOR = 1e-2  # pull towards the starting weights (squared distance, summed)


@dataclass
class Examples:
    """Liked queries grouped by their words: a sentence vector, liked rows and unliked rows each."""

    texts: list[str]
    vectors: np.ndarray  # (queries, text dim)
    liked: list[set[int]]
    unliked: list[set[int]]

    def take(self, picks: Iterable[int]) -> Examples:
        picks = list(picks)
        return Examples(
            [self.texts[i] for i in picks],
            self.vectors[picks],
            [self.liked[i] for i in picks],
            [self.unliked[i] for i in picks],
        )


def gather(gen: Generation, records: Iterable[dict]) -> tuple[list[str], list[set[int]], list[set[int]]]:
    """The log's queries with words and likes, merged by their words, as item rows of ``gen``
    (items no longer indexed drop out; an item both liked and unliked counts as neither)."""
    rows = {item.id: row for row, item in enumerate(gen.items)}
    liked: dict[str, set[int]] = defaultdict(set)
    unliked: dict[str, set[int]] = defaultdict(set)
    for record in records:
        words = " ".join(t for t in record.get("texts") or [] if isinstance(t, str)).strip()
        like = {rows[i] for i in record.get("like") or [] if isinstance(i, str) and i in rows}
        if not words or not like:
            continue
        liked[words] |= like
        unliked[words] |= {rows[i] for i in record.get("unlike") or [] if isinstance(i, str) and i in rows}
    texts = sorted(liked)
    return texts, [liked[t] - unliked[t] for t in texts], [unliked[t] - liked[t] for t in texts]


def start_head(gen: Generation) -> Head:
    """The head the index searches words with now: a trained ``aligned`` one, else ``photo``."""
    for name in ("aligned", "photo"):
        if name in gen.vectors and (gen.dir / f"{name}.json").is_file():
            return Head.load(gen.dir, name)
    raise UserError(
        f"{gen.dir.parent} has no text→image head to start from (made with other encoders?); "
        "`train --from-log` needs the index's aligned or photo head"
    )


def held_out_split(texts: list[str], liked: list[set[int]]) -> tuple[list[int], list[int]]:
    """(train, held-out) positions. Queries that liked a common item ask for the same thing in
    other words ("red dress", "a red dress photo"): they stay on one side, so the held-out part
    measures queries the head was not fitted on. One group in ``HELD_OUT``, by a hash of its
    first words, is held out; a log that is one big group is split by the queries' words."""
    joined = DisjointSets(len(texts))
    first: dict[int, int] = {}
    for i, rows in enumerate(liked):
        for row in rows:
            joined.join(i, first.setdefault(row, i))
    groups = joined.sets()
    if max(len(g) for g in groups) > len(texts) // 2:
        groups = [[i] for i in range(len(texts))]
    val = sorted(i for g in groups if _hashed(texts[min(g)]) for i in g)
    held = set(val)
    train = [i for i in range(len(texts)) if i not in held]
    if not val or not train:  # few groups: every fifth query instead
        val = list(range(0, len(texts), HELD_OUT))
        train = [i for i in range(len(texts)) if i % HELD_OUT]
    return train, val


def _hashed(text: str) -> bool:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % HELD_OUT == 0


def train_from_log(
    gen: Generation,
    records: Iterable[dict],
    encoder: QueryEncoder,
    cfg: TrainConfig,
    report: Reporter | None = None,
) -> tuple[Head | None, dict]:
    """The learned head (None: the index's search with it does not rank the held-out queries'
    liked items higher than without it) and a summary: queries, likes, the held-out figures."""
    texts, liked, unliked = gather(gen, records)
    keep = [i for i, rows in enumerate(liked) if rows]
    if len(keep) < MIN_QUERIES:
        raise UserError(
            f"the feedback log has {len(keep)} queries with words and likes on items of this index; "
            f"learning needs at least {MIN_QUERIES}"
        )
    texts, liked, unliked = [texts[i] for i in keep], [liked[i] for i in keep], [unliked[i] for i in keep]
    vectors = l2_normalise(np.asarray(encoder.texts(texts), np.float32))
    examples = Examples(texts, vectors, liked, unliked)
    train, val = held_out_split(texts, liked)
    head = start_head(gen)
    images = np.asarray(gen.vectors[head.source_space], np.float32)
    before = capped_recall_at(examples.take(val).vectors @ head(images).T, examples.take(val).liked, 10)
    fitted, best = _fit(head, images, examples.take(train), examples.take(val), cfg, report)
    held = examples.take(val)
    searched = {
        "before": fused_recall(gen, None, held, encoder),
        "after": fused_recall(gen, fitted, held, encoder),
    }
    summary = {
        "queries": len(texts),
        "train_queries": len(train),
        "held_out_queries": len(val),
        "liked": sum(len(s) for s in liked),
        "unliked": sum(len(s) for s in unliked),
        "started_from": head.name,
        "held_out_liked_recall@10": {k: round(v, 4) for k, v in searched.items()},
        "in_the_head_alone": {"before": round(before, 4), "after": round(best, 4)},
    }
    if searched["after"] <= searched["before"]:
        return None, summary
    info = head_info(gen, cfg, len(train), len(val), best, [], "liked-item recall@10 (held-out log queries)")
    info["trained_on"]["split"] = f"the log's queries; 1 group in {HELD_OUT} (sharing liked items) held out"
    info["from_log"] = summary
    info["encoders"] = head.info.get("encoders") or info["encoders"]
    fitted.info = {**info, "temperature": _temperature(head, cfg)}
    return fitted, summary


def fused_recall(gen: Generation, head: Head | None, held: Examples, encoder: QueryEncoder) -> float:
    """Liked recall@10 of the held-out queries as the index searches them: with ``head`` as its
    ``aligned`` space (vectors made here, searched exactly, nothing written), or as it is."""
    heads = gen.heads()  # the variant's own head is passed in, never read from disk
    if head is not None:
        heads["aligned"] = head
        spaces = {**gen.manifest["spaces"], "aligned": {"file": "aligned.npy", "dim": head.dim}}
        vectors = {**gen.vectors, "aligned": head(gen.vectors[head.source_space]).astype(np.float32)}
        gen = Generation(gen.dir, {**gen.manifest, "spaces": spaces}, gen.items, vectors)
    searcher = Searcher(gen, encoder, heads, check_files=False)
    recalls = []
    for text, liked in zip(held.texts, held.liked, strict=True):
        found = {hit.row for hit in searcher.search(Query(texts=[(text, 1.0)], k=10))}
        recalls.append(len(found & liked) / min(10, len(liked)))
    return float(np.mean(recalls))


def _fit(
    head: Head, images: np.ndarray, train: Examples, val: Examples, cfg: TrainConfig, report: Reporter | None
) -> tuple[Head, float]:
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    x = ((images - head.mean) / head.std).astype(np.float32)
    model = keras.Sequential([keras.Input((x.shape[1],))])
    for w, _, activation in head.layers:  # gelu as heads.py applies it: the tanh approximation
        gelu = activation == "gelu"
        model.add(keras.layers.Dense(w.shape[1], activation=_tanh_gelu if gelu else None))
    for layer, (w, b, _) in zip(model.layers, head.layers, strict=True):
        layer.set_weights([w, b])
    start = [tf.constant(v.numpy()) for v in model.trainable_variables]
    scale = 1.0 / _temperature(head, cfg)
    pairs = [(q, p) for q, rows in enumerate(train.liked) for p in sorted(rows)]
    unliked = [sorted(rows) for rows in train.unliked]

    def loss_fn(q_vecs, cand, target, mask, training=False):
        z = tf.math.l2_normalize(model(tf.gather(x, cand), training=training), axis=1)
        logits = scale * tf.matmul(q_vecs, z, transpose_b=True) + mask
        ce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(target, logits, from_logits=True))
        moved = zip(model.trainable_variables, start, strict=True)
        anchor = tf.add_n([tf.reduce_sum((v - s) ** 2) for v, s in moved])
        return ce + ANCHOR * anchor

    def batches(rng):
        order = rng.permutation(len(pairs))
        out = []
        for i in range(0, len(order), cfg.batch_size):
            chosen = [pairs[j] for j in order[i : i + cfg.batch_size]]
            queries = [q for q, _ in chosen]
            # fixed lengths, so the training step is traced once: positives, unliked, random
            cand = [p for _, p in chosen]
            judged = [r for q in sorted(set(queries)) for r in unliked[q]]
            if len(judged) > UNLIKED_PER_STEP:
                judged = rng.choice(judged, UNLIKED_PER_STEP, replace=False).tolist()
            cand += judged + rng.integers(0, len(x), NEGATIVES + UNLIKED_PER_STEP - len(judged)).tolist()
            cand_arr = np.asarray(cand, np.int64)
            mask = np.zeros((len(chosen), len(cand_arr)), np.float32)
            for row, (q, p) in enumerate(chosen):  # a query's other liked items are not its negatives
                others = np.isin(cand_arr, list(train.liked[q] - {p}))
                mask[row, others] = -1e9
            out.append(
                (
                    tf.constant(train.vectors[queries]),
                    tf.constant(cand_arr),
                    tf.constant(np.arange(len(chosen), dtype=np.int32)),
                    tf.constant(mask),
                )
            )
        return out

    def current() -> Head:
        dense = zip(model.layers, head.layers, strict=True)
        layers = [(d.kernel.numpy(), d.bias.numpy(), a) for d, (_, _, a) in dense]
        return Head("aligned", head.source_space, "text", head.mean, head.std, layers, dict(head.info))

    def validate() -> float:
        return capped_recall_at(val.vectors @ current()(images).T, val.liked, 10)

    best, _ = fit_head(model, loss_fn, batches, validate, cfg, [], "aligned", report)
    return current(), best


def _temperature(head: Head, cfg: TrainConfig) -> float:
    """The starting head's softmax temperature (a seed ensemble lists one per seed)."""
    value = head.info.get("temperature") or cfg.temperature
    return float(np.mean(value))


def _tanh_gelu(v):
    import keras

    return keras.activations.gelu(v, approximate=True)


def save(head: Head, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    head.save(out)
