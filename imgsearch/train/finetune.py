"""Fine-tune the top blocks of an EfficientNet-Lite backbone (the index's: Lite0, 1 or 2) with a metric head.

Slow on a CPU (every step runs the whole network forward and the top blocks backward),
meant for GPUs; heads on frozen features (``imgsearch.train.transfer``) are the CPU path. The result
is a new image encoder, ``finetuned:<model dir>``, with its own spec id, so its vectors are
never mixed with the base encoder's: re-index with
``imgsearch index DIR --image-encoder finetuned:MODEL --model MODEL --rebuild``.

Batch-norm layers stay in inference mode (their statistics are frozen) and the images are
augmented (flip, zoom, shift) while training; the rest follows ``train.train_metric``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from imgsearch.cache import atomic_write_text, file_sha256
from imgsearch.encoders.efficientnet import NAMES, EfficientNetLiteEncoder
from imgsearch.encoders.finetuned import ENCODER_FILE, WEIGHTS_FILE
from imgsearch.encoders.heads import Head
from imgsearch.errors import UserError
from imgsearch.files.images import ImageError, load_rgb_array
from imgsearch.quiet import quiet_tensorflow
from imgsearch.store import Generation
from imgsearch.train.transfer import (
    Reporter,
    TrainConfig,
    fit_head,
    head_info,
    keras_head,
    metric_split,
    recall10_same_label,
    supcon_loss,
    to_head,
)

_BLOCK = re.compile(r"^(block\d+[a-z])_")


def trainable_layer_names(model, blocks: int) -> set[str]:
    """Layers of the last ``blocks`` backbone blocks, plus the top conv and its batch norm."""
    order = list(dict.fromkeys(m[1] for layer in model.layers if (m := _BLOCK.match(layer.name))))
    if not 1 <= blocks <= len(order):
        raise UserError(f"--finetune-blocks must be between 1 and {len(order)}")
    chosen = set(order[-blocks:])
    return {layer.name for layer in model.layers if (m := _BLOCK.match(layer.name)) and m[1] in chosen} | {
        "top_conv",
        "top_bn",
    }


def _decode_rows(gen: Generation, rows: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    kept, pixels = [], []
    for r in rows:
        try:
            pixels.append(load_rgb_array(gen.items[r].path, size))
            kept.append(r)
        except ImageError:
            continue  # a file that vanished or broke since indexing is left out
    return np.asarray(kept, np.int64), np.stack(pixels)


def finetune_metric(
    gen: Generation,
    labels: list[str | None],
    blocks: int,
    out: Path,
    cfg: TrainConfig,
    report: Reporter | None = None,
) -> Head:
    """Train the top ``blocks`` blocks + a metric head; save encoder weights, its meta and the head."""
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    base = gen.manifest["encoders"]["image"]["name"]
    if base not in NAMES:
        raise UserError(
            f"--finetune-blocks works on indexes built with {', '.join(NAMES)} (this one: {base})"
        )
    keras.utils.set_random_seed(cfg.seed)
    rows, val, y, classes = metric_split(gen, labels, cfg, "fine-tuning")
    encoder = EfficientNetLiteEncoder(name=base)  # a fresh model: the shared cached one must stay pretrained
    backbone = encoder.model
    names = trainable_layer_names(backbone, blocks)
    for layer in backbone.layers:
        layer.trainable = layer.name in names
    rows, train_px = _decode_rows(gen, rows, encoder.image_size)
    val, val_px = _decode_rows(gen, val, encoder.image_size)
    y_train, y_val = y[rows], y[val]
    head = keras_head(1280, cfg.metric_dim, cfg)
    augment = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomZoom(0.1),
            keras.layers.RandomTranslation(0.05, 0.05),
        ]
    )

    def features(px, training: bool):
        x = tf.cast(px, tf.float32)
        if training:
            x = augment(x, training=True)
        return backbone((x - 127.5) / 127.5, training=False)[0]  # batch norm stays frozen

    def loss_fn(px, yb, training=False):
        return supcon_loss(tf.math.l2_normalize(head(features(px, training), training=training), axis=1), yb)

    def batches(rng):
        order = rng.permutation(len(rows))
        size = min(cfg.batch_size, len(order))
        return [
            (tf.constant(train_px[order[i : i + size]]), tf.constant(y_train[order[i : i + size]]))
            for i in range(0, len(order) - size + 1, size)
        ]

    def validate() -> float:
        feats = np.concatenate(
            [features(val_px[i : i + 64], False).numpy() for i in range(0, len(val_px), 64)]
        )
        z = tf.math.l2_normalize(head(feats, training=False), axis=1).numpy()
        return recall10_same_label(z, y_val)

    tuned = [v for v in backbone.trainable_variables]
    best, history = fit_head(head, loss_fn, batches, validate, cfg, tuned, "finetune", report)
    return _save(out, encoder, blocks, head, gen, cfg, len(rows), len(val), best, history, len(classes))


def _save(
    out: Path, encoder, blocks: int, head_model, gen, cfg, n_train, n_val, best, history, n_classes
) -> Head:
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS_FILE
    encoder.model.save_weights(str(weights))
    spec_id = f"{encoder.spec.name}-ft@{file_sha256(weights)[:12]}"
    atomic_write_text(
        out / ENCODER_FILE,
        json.dumps(
            {"format": "imgsearch-encoder", "base": encoder.spec.id, "blocks": blocks, "id": spec_id},
            indent=2,
        ),
    )
    info = head_info(gen, cfg, n_train, n_val, best, history, "image→image recall@10 (same label)")
    info["encoders"]["image"] = spec_id
    info["finetuned_blocks"] = blocks
    info["classes"] = n_classes
    head = to_head(
        head_model, "metric", "metric", np.zeros(1280, np.float32), np.ones(1280, np.float32), info
    )
    head.save(out)
    head_model.save(out / "metric.keras")
    return head
