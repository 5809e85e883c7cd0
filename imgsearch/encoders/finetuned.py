"""An EfficientNet-Lite0 whose top blocks were fine-tuned by ``imgsearch train --finetune-blocks``.

Lives beside the other encoders (not with the training code) so that loading one never
imports the trainer: ``encoders`` → ``finetune`` → ``train`` was an import cycle.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from imgsearch.encoders.efficientnet import EfficientNetLite0Encoder
from imgsearch.errors import UserError

PREFIX = "finetuned:"
ENCODER_FILE = "encoder.json"
WEIGHTS_FILE = "encoder.weights.h5"


class FineTunedLite0Encoder(EfficientNetLite0Encoder):
    """EfficientNet-Lite0 with the fine-tuned weights of a model dir."""

    def __init__(self, model_dir: Path, batch_size: int = 32) -> None:
        meta = read_encoder_meta(model_dir)
        super().__init__(batch_size=batch_size)
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
