"""Transfer learning on frozen encoder features: an image→text alignment head and a metric head.

Both heads train on the vectors a store already holds (no image is decoded
again), so a whole catalog trains in seconds to minutes on a CPU.

- **aligned** (locked-image tuning, with the text tower locked instead): a
  projection of image features into the text encoder's sentence space, trained
  with a symmetric InfoNCE loss and a learned temperature against the item
  titles' vectors. Text queries then score images directly, also images that
  have no title.
- **metric** (supervised contrastive, SupCon): a projection where items with the
  same label (e.g. articleType) are close. Used for image→image search.

Splits are by product id (``splits.is_test_item``): the test split is never
seen; a validation split carved from the rest drives early stopping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from imgsearch.encoders.heads import Head
from imgsearch.errors import UserError
from imgsearch.quiet import quiet_tensorflow
from imgsearch.store import Generation
from imgsearch.train.evaluate import capped_recall_at
from imgsearch.train.splits import is_test_item

MIN_TRAIN_ITEMS = 50


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 0  # 0 = linear head; else one hidden layer of this width
    dropout: float = 0.1
    patience: int = 4
    seed: int = 0
    metric_dim: int = 256
    temperature: float = 0.07  # initial (aligned: learned) temperature
    val_every: int = 1


@dataclass
class EpochLog:
    epoch: int
    loss: float
    val_recall10: float
    seconds: float


Reporter = Callable[[str, EpochLog], None]


def split_train_val(gen: Generation, rows: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation = a seeded 10% of the non-test rows."""
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(rows)
    n_val = max(1, len(rows) // 10)
    return np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val])


def train_rows(gen: Generation) -> np.ndarray:
    return np.array([r for r, item in enumerate(gen.items) if not is_test_item(item.path)], np.int64)


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0).astype(np.float32)
    std = (x.std(axis=0) + 1e-6).astype(np.float32)
    return mean, std


def keras_head(in_dim: int, out_dim: int, cfg: TrainConfig):
    import keras

    model = keras.Sequential(name="head")
    model.add(keras.Input((in_dim,)))
    if cfg.dropout:
        model.add(keras.layers.Dropout(cfg.dropout))
    if cfg.hidden:
        model.add(keras.layers.Dense(cfg.hidden, activation="gelu"))
        if cfg.dropout:
            model.add(keras.layers.Dropout(cfg.dropout))
    model.add(keras.layers.Dense(out_dim))
    return model


def to_head(model, name: str, target: str, mean, std, info: dict) -> Head:
    import keras

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    layers = [
        (d.kernel.numpy(), d.bias.numpy(), "gelu" if d.activation.__name__ == "gelu" else "linear")
        for d in dense
    ]
    return Head(name, "image", target, mean, std, layers, info)


def fit_head(
    model,
    loss_fn,
    batches: Callable[[np.random.Generator], list],
    validate: Callable[[], float],
    cfg: TrainConfig,
    extra_vars: list,
    name: str,
    report: Reporter | None,
):
    """Adam(W) loop with early stopping on validation recall@10; restores the best weights."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay)
    variables = model.trainable_variables + extra_vars

    @tf.function
    def step(*tensors):
        with tf.GradientTape() as tape:
            loss = loss_fn(*tensors, training=True)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    rng = np.random.default_rng(cfg.seed)
    best, best_weights, waited, history = -1.0, None, 0, []
    for epoch in range(1, cfg.epochs + 1):
        t = time.perf_counter()
        losses = [float(step(*b)) for b in batches(rng)]
        score = validate()
        log = EpochLog(epoch, float(np.mean(losses)), score, time.perf_counter() - t)
        history.append(log)
        if report:
            report(name, log)
        if score > best:
            best, waited = score, 0
            best_weights = [v.numpy() for v in variables]
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    for var, value in zip(variables, best_weights or [], strict=False):
        var.assign(value)
    return best, history


def train_aligned(gen: Generation, cfg: TrainConfig, report: Reporter | None = None) -> tuple[Head, dict]:
    """Image features → text space, contrastive against each item's own text vector."""
    titled = np.array(
        [r for r in train_rows(gen) if gen.items[r].tags.get("text_source") == "meta"], np.int64
    )
    if len(titled) < MIN_TRAIN_ITEMS:
        raise UserError(
            f"alignment needs at least {MIN_TRAIN_ITEMS} training items with catalog text "
            f"(found {len(titled)}): index the catalog with --meta and --text-columns"
        )
    rows, val = split_train_val(gen, titled, cfg.seed)
    images = np.asarray(gen.vectors["image"], np.float32)
    texts = np.asarray(gen.vectors["text"], np.float32)[:, None, :]
    fit = fit_aligned(images, texts, rows, val, texts[val, 0], _same_text_truth(gen, val), cfg, report)
    info = head_info(gen, cfg, len(rows), len(val), fit.best, fit.history, "text→image recall@10 (own title)")
    info["temperature"] = fit.temperature
    return to_head(fit.model, "aligned", "text", fit.mean, fit.std, info), {"keras": fit.model}


@dataclass
class AlignedFit:
    model: object
    mean: np.ndarray
    std: np.ndarray
    best: float
    history: list[EpochLog]
    temperature: float


def fit_aligned(
    images: np.ndarray,
    texts: np.ndarray,
    rows: np.ndarray,
    val: np.ndarray,
    val_queries: np.ndarray,
    val_truth: list[set[int]],
    cfg: TrainConfig,
    report: Reporter | None = None,
) -> AlignedFit:
    """Symmetric InfoNCE with a learned temperature between projected images and their texts.

    ``texts``: (n, c, d), c texts per image (1 title, or 5 captions); each epoch sees every
    image once per text slot, each time with a random one of its texts. Validation: recall@10
    of ``val_queries`` (text vectors) over the validation images, ``val_truth[i]`` = the
    positions in ``val`` that are right for query i.
    """
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    mean, std = standardiser(images[rows])
    x = (images - mean) / std
    model = keras_head(x.shape[1], texts.shape[2], cfg)
    log_scale = tf.Variable(np.log(1 / cfg.temperature), dtype=tf.float32, name="logit_scale")

    def loss_fn(xb, tb, training=False):
        z = tf.math.l2_normalize(model(xb, training=training), axis=1)
        logits = tf.exp(tf.minimum(log_scale, 4.6052)) * tf.matmul(z, tb, transpose_b=True)
        labels = tf.range(tf.shape(logits)[0])
        ce = keras.losses.sparse_categorical_crossentropy
        return (
            tf.reduce_mean(ce(labels, logits, from_logits=True))
            + tf.reduce_mean(ce(labels, tf.transpose(logits), from_logits=True))
        ) / 2

    def batches(rng):
        out = []
        for _ in range(texts.shape[1]):
            order = rng.permutation(rows)
            pick = texts[order, rng.integers(0, texts.shape[1], len(order))]
            out += [
                (tf.constant(x[order[i : i + cfg.batch_size]]), tf.constant(pick[i : i + cfg.batch_size]))
                for i in range(0, len(order) - cfg.batch_size + 1, cfg.batch_size)
            ]
        return out or [(x[rows], texts[rows, 0])]

    def validate() -> float:
        z = tf.math.l2_normalize(model(x[val], training=False), axis=1).numpy()
        return capped_recall_at(val_queries @ z.T, val_truth, 10)

    best, history = fit_head(model, loss_fn, batches, validate, cfg, [log_scale], "aligned", report)
    temperature = float(1 / np.exp(min(float(log_scale.numpy()), 4.6052)))
    return AlignedFit(model, mean, std, best, history, temperature)


def labelled_train_rows(gen: Generation, labels: list[str | None], what: str) -> tuple[np.ndarray, list[str]]:
    """Training-split rows that have a label, and the sorted classes; refuses too little data."""
    labelled = np.array([r for r in train_rows(gen) if labels[r] is not None], np.int64)
    classes = sorted({labels[r] for r in labelled})
    if len(labelled) < MIN_TRAIN_ITEMS or len(classes) < 2:
        raise UserError(
            f"{what} needs at least {MIN_TRAIN_ITEMS} labelled training items in two or "
            f"more classes (found {len(labelled)} in {len(classes)})"
        )
    return labelled, classes


def metric_split(
    gen: Generation, labels: list[str | None], cfg: TrainConfig, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Train and validation rows of the labelled training split, and each item's class id (-1: none)."""
    labelled, classes = labelled_train_rows(gen, labels, what)
    rows, val = split_train_val(gen, labelled, cfg.seed)
    class_id = {c: i for i, c in enumerate(classes)}
    y = np.array([class_id.get(label, -1) for label in labels], np.int32)
    return rows, val, y, classes


def supcon_loss(z, labels, temperature: float = 0.1):
    """Supervised contrastive loss (Khosla et al. 2020) over a batch of L2-normalised ``z``."""
    import tensorflow as tf

    logits = tf.matmul(z, z, transpose_b=True) / temperature
    n = tf.shape(z)[0]
    eye = tf.eye(n)
    positives = tf.cast(tf.equal(labels[:, None], labels[None, :]), tf.float32) * (1.0 - eye)
    logits = logits - 1e9 * eye
    log_prob = logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True)
    count = tf.reduce_sum(positives, axis=1)
    per_anchor = -tf.reduce_sum(positives * log_prob, axis=1) / tf.maximum(count, 1.0)
    has = tf.cast(count > 0, tf.float32)
    return tf.reduce_sum(per_anchor * has) / tf.maximum(tf.reduce_sum(has), 1.0)


def recall10_same_label(z: np.ndarray, y: np.ndarray) -> float:
    """Validation metric of metric heads: recall@10 of same-label items, each item querying the rest."""
    sims = z @ z.T
    np.fill_diagonal(sims, -np.inf)
    truth = [set(np.flatnonzero(y == label).tolist()) - {i} for i, label in enumerate(y)]
    return capped_recall_at(sims, truth, 10)


def _same_text_truth(gen: Generation, rows: np.ndarray) -> list[set[int]]:
    """For a title query, every validation item with the identical title is a hit."""
    by_text: dict[str | None, set[int]] = {}
    for i, r in enumerate(rows):
        by_text.setdefault(gen.items[r].text, set()).add(i)
    return [by_text[gen.items[r].text] for r in rows]


def train_metric(
    gen: Generation, labels: list[str | None], cfg: TrainConfig, report: Reporter | None = None
) -> tuple[Head, dict]:
    """Supervised contrastive head: same label ⇒ close."""
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    rows, val, y, classes = metric_split(gen, labels, cfg, "metric learning")
    images = np.asarray(gen.vectors["image"], np.float32)
    mean, std = standardiser(images[rows])
    x = (images - mean) / std
    model = keras_head(x.shape[1], cfg.metric_dim, cfg)

    def loss_fn(xb, yb, training=False):
        return supcon_loss(tf.math.l2_normalize(model(xb, training=training), axis=1), yb)

    def batches(rng):
        order = rng.permutation(rows)
        return [
            (tf.constant(x[order[i : i + cfg.batch_size]]), tf.constant(y[order[i : i + cfg.batch_size]]))
            for i in range(0, len(order) - cfg.batch_size + 1, cfg.batch_size)
        ] or [(x[order], y[order])]

    def validate() -> float:
        return recall10_same_label(
            tf.math.l2_normalize(model(x[val], training=False), axis=1).numpy(), y[val]
        )

    best, history = fit_head(model, loss_fn, batches, validate, cfg, [], "metric", report)
    info = head_info(gen, cfg, len(rows), len(val), best, history, "image→image recall@10 (same label)")
    info["classes"] = len(classes)
    return to_head(model, "metric", "metric", mean, std, info), {"keras": model}


def head_info(
    gen: Generation,
    cfg: TrainConfig,
    n_train: int,
    n_val: int,
    best: float,
    history: list[EpochLog],
    val_metric: str,
) -> dict:
    return {
        "encoders": {k: (v or {}).get("id") for k, v in gen.manifest["encoders"].items()},
        "trained_on": {
            "store": str(gen.dir),
            "train_items": n_train,
            "val_items": n_val,
            "split": "test = product id mod 5 == 0 (never trained on); val = seeded 10% of the rest",
        },
        "config": asdict(cfg),
        "validation": {"metric": val_metric, "best": round(best, 4), "epochs": len(history)},
        "seconds": round(sum(h.seconds for h in history), 1),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save_model(out: Path, heads: dict[str, tuple[Head, dict]]) -> None:
    """A model dir: one ``.keras`` + ``.npz`` + ``.json`` per head."""
    out.mkdir(parents=True, exist_ok=True)
    for name, (head, extra) in heads.items():
        head.save(out)
        extra["keras"].save(out / f"{name}.keras")
