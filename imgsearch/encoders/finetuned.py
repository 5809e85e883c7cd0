"""An EfficientNet-Lite whose top blocks were fine-tuned by ``imgsearch train --finetune-blocks``.

Lives beside the other encoders (not with the training code) so that loading one never
imports the trainer: ``encoders`` → ``finetune`` → ``train`` was an import cycle.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from imgsearch.encoders.efficientnet import NAME, EfficientNetLiteEncoder
from imgsearch.errors import UserError

PREFIX = "finetuned:"
ENCODER_FILE = "encoder.json"
WEIGHTS_FILE = "encoder.weights.h5"


class FineTunedLiteEncoder(EfficientNetLiteEncoder):
    """The EfficientNet-Lite a model dir was fine-tuned from, with its fine-tuned weights."""

    def __init__(self, model_dir: Path, batch_size: int = 32) -> None:
        meta = read_encoder_meta(model_dir)
        super().__init__(batch_size=batch_size, name=base_name(meta))
        self.model.load_weights(str(Path(model_dir) / WEIGHTS_FILE))
        self.spec = replace(self.spec, name=f"{PREFIX}{model_dir}", id=meta["id"])


def read_encoder_meta(model_dir: Path) -> dict:
    try:
        meta = json.loads((Path(model_dir) / ENCODER_FILE).read_text())
    except (OSError, ValueError):
        raise UserError(f"{model_dir}: no fine-tuned encoder here (train with --finetune-blocks)") from None
    if not (Path(model_dir) / WEIGHTS_FILE).is_file():
        raise UserError(f"{model_dir}: {WEIGHTS_FILE} is missing")
    return meta


def base_name(meta: dict) -> str:
    """The Lite variant a fine-tuned encoder was made from: its base spec id is "<name>@<hash>"
    (model dirs from before Lite1 and Lite2 could be fine-tuned are Lite0's)."""
    return str(meta.get("base", NAME)).split("@", 1)[0] or NAME
