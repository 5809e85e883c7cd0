"""The ``train`` job: checks what to train, trains heads (``train``) or fine-tunes the backbone
(``finetune``), saves the model dir and says how to use it. One function for the one command,
above both trainers, so neither needs the other's caller."""

from __future__ import annotations

from pathlib import Path

from imgsearch.encoders.heads import Head
from imgsearch.errors import UserError
from imgsearch.quiet import quiet_tensorflow
from imgsearch.store import Generation
from imgsearch.train.evaluate import load_labels
from imgsearch.train.finetune import finetune_metric
from imgsearch.train.transfer import Reporter, TrainConfig, save_model, train_aligned, train_metric

HEADS = ("aligned", "metric")


def run_training(
    gen: Generation,
    meta: Path,
    heads: list[str],
    label_columns: list[str],
    out: Path,
    cfg: TrainConfig,
    *,
    finetune_blocks: int = 0,
    report: Reporter | None = None,
) -> list[str]:
    """``imgsearch train``: train the named heads (or fine-tune the backbone), save them to ``out``.

    Returns one summary line per head and a last line saying how to use the model.
    """
    if not heads or set(heads) - set(HEADS):
        raise UserError("--heads takes aligned and/or metric")
    if finetune_blocks and heads != ["metric"]:
        raise UserError("--finetune-blocks trains a new image encoder with a metric head: use --heads metric")
    quiet_tensorflow()
    if finetune_blocks:
        head = finetune_metric(gen, load_labels(gen, meta, label_columns), finetune_blocks, out, cfg, report)
        return [
            _summary(f"metric (top {finetune_blocks} blocks fine-tuned)", head),
            f"wrote {out}; re-embed with `imgsearch index DIR --image-encoder finetuned:{out} "
            f"--model {out} --rebuild`",
        ]
    trained = {}
    if "aligned" in heads:
        trained["aligned"] = train_aligned(gen, cfg, report)
    if "metric" in heads:
        trained["metric"] = train_metric(gen, load_labels(gen, meta, label_columns), cfg, report)
    save_model(out, trained)
    lines = [_summary(name, head) for name, (head, _) in trained.items()]
    return [*lines, f"wrote {out}; use it with `imgsearch index {gen.dir.parent} --model {out}`"]


def _summary(name: str, head: Head) -> str:
    v = head.info["validation"]
    return (
        f"{name}: best validation {v['metric']} {v['best']:.3f} after {v['epochs']} epochs, "
        f"{head.info['seconds']:.1f} s"
    )


def run_log_training(
    gen: Generation, feedback, encoder, out: Path, cfg: TrainConfig, report: Reporter | None = None
) -> tuple[list[str], bool]:
    """``imgsearch train --from-log``: (lines to print, whether a model was written)."""
    from imgsearch.train import from_log

    head, summary = from_log.train_from_log(gen, feedback.records(), encoder, cfg, report)
    scores = summary["held_out_liked_recall@10"]
    said = (
        f"{summary['queries']} liked queries ({summary['held_out_queries']} held out), "
        f"{summary['liked']} likes, {summary['unliked']} unlikes; held-out liked recall@10 of the "
        f"search {scores['before']:.3f} as it is, {scores['after']:.3f} with the learned head "
        f"(started from the index's {summary['started_from']} head)"
    )
    if head is None:
        return [said, "the search is not better with it on the held-out queries: nothing written"], False
    from_log.save(head, out)
    return [said, f"wrote {out}; use it with `imgsearch index {gen.dir.parent} --model {out}`"], True
