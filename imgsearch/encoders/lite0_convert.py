"""Convert the pip-shipped EfficientNet-Lite0 torch weights into a keras-hub preset.

Why a conversion: keras-hub already knows how to build timm's
``efficientnet_lite0`` and port its weights. The pip package ships the same
network with lukemelas-style tensor names, so we only rename tensors, write
them as safetensors plus a timm ``config.json``, and let keras-hub do the rest.
The preset is written once into the user cache, keyed by the source file hash.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from imgsearch.cache import atomic_dir, file_sha256
from imgsearch.encoders.torch_legacy import read_state_dict

STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_STAGE0 = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_STAGE_N = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def _block_positions() -> list[tuple[int, int]]:
    return [(stage, i) for stage, n in enumerate(STAGE_REPEATS) for i in range(n)]


def timm_name(name: str) -> str | None:
    """Map a lukemelas tensor name to timm's, or None for tensors timm lacks."""
    if name.endswith("num_batches_tracked"):
        return None
    match = _BLOCK.match(name)
    if match:
        flat, module, param = int(match[1]), match[2], match[3]
        stage, i = _block_positions()[flat]
        table = _STAGE0 if stage == 0 else _STAGE_N
        return f"blocks.{stage}.{i}.{table[module]}.{param}"
    module, param = name.split(".", 1)
    return f"{_TOP[module]}.{param}"


def timm_state_dict(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    renamed = {timm_name(k): v for k, v in state.items()}
    return {k: np.ascontiguousarray(v) for k, v in renamed.items() if k is not None}


TIMM_CONFIG = {
    "architecture": "efficientnet_lite0",
    "num_classes": 1000,
    "num_features": 1280,
    "pretrained_cfg": {
        "classifier": "classifier",
        "first_conv": "conv_stem",
        "input_size": [3, 224, 224],
        "interpolation": "bicubic",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
    },
}


def convert(source: Path, target: Path) -> Path:
    """Write a keras-hub loadable timm preset for ``source`` into ``target``."""
    from safetensors.numpy import save_file

    state = timm_state_dict(read_state_dict(source))
    with atomic_dir(target) as tmp:
        save_file(state, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps(TIMM_CONFIG, indent=2))
    return target


def cached_preset(source: Path, cache_root: Path) -> Path:
    """Return the converted preset dir for ``source``, converting on first use."""
    target = cache_root / f"efficientnet-lite0-{file_sha256(source)[:16]}"
    if not (target / "config.json").exists():
        convert(source, target)
    return target
