"""Trained projection heads, applied with numpy so that queries never need TensorFlow.

A head maps frozen encoder features to a new space: ``aligned`` (image
features → the text encoder's sentence space, so text queries score images
directly) or ``metric`` (image features → a space where "similar" means the
catalog's labels). Heads are small MLPs; they are trained in Keras
(``imgsearch.train.transfer``) and saved twice: a ``.keras`` file for Keras users and
an ``.npz`` of the same weights that this module runs in microseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsearch.cache import atomic_path, atomic_write_text
from imgsearch.encoders.base import l2_normalise
from imgsearch.errors import UserError
from imgsearch.npyio import load_npz

HEAD_FORMAT = "imgsearch-head"
HEAD_VERSION = 1
ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "gelu": lambda x: 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x**3))),
}


@dataclass
class Head:
    """Standardise → dense layers → L2 normalise."""

    name: str  # "aligned" or "metric"
    source_space: str  # the store space it reads ("image")
    target: str  # what its outputs are compared with ("text" query vectors, or itself)
    mean: np.ndarray
    std: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray, str]]
    info: dict = field(default_factory=dict)  # base encoder ids, training data, metrics, date

    @property
    def dim(self) -> int:
        return int(self.layers[-1][0].shape[1])

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = (np.asarray(features, np.float32) - self.mean) / self.std
        for weight, bias, activation in self.layers:
            x = ACTIVATIONS[activation](x @ weight + bias)
        return l2_normalise(x)

    @classmethod
    def average(cls, heads: list[Head]) -> Head:
        """One head whose output is the mean of ``heads``' outputs before normalising.

        For heads of one hidden layer read from the same standardised features this is exact:
        the hidden layers sit side by side and the output layer averages them, so a seed
        ensemble ships and runs as one wider head.
        """
        first = heads[0]
        if len(heads) == 1:
            return first
        acts = [a for _, _, a in first.layers]
        if len(acts) != 2 or acts[1] != "linear":
            raise ValueError("only heads of one hidden layer and a linear output can be averaged")
        for h in heads[1:]:
            if [a for _, _, a in h.layers] != acts or not (
                np.array_equal(h.mean, first.mean) and np.array_equal(h.std, first.std)
            ):
                raise ValueError("averaged heads must share their layout and standardisation")
        hidden_w = np.concatenate([h.layers[0][0] for h in heads], axis=1)
        hidden_b = np.concatenate([h.layers[0][1] for h in heads])
        out_w = np.concatenate([h.layers[1][0] for h in heads], axis=0) / len(heads)
        out_b = np.mean([h.layers[1][1] for h in heads], axis=0)
        layers = [(hidden_w, hidden_b, acts[0]), (out_w, out_b, "linear")]
        info = dict(first.info)
        return cls(first.name, first.source_space, first.target, first.mean, first.std, layers, info)

    def save(self, directory: Path) -> None:
        arrays = {"mean": self.mean, "std": self.std}
        for i, (w, b, _) in enumerate(self.layers):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        with atomic_path(directory / f"{self.name}.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        meta = {
            "format": HEAD_FORMAT,
            "version": HEAD_VERSION,
            "name": self.name,
            "source_space": self.source_space,
            "target": self.target,
            "activations": [a for _, _, a in self.layers],
            "dim": self.dim,
            **self.info,
        }
        atomic_write_text(directory / f"{self.name}.json", json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path, name: str) -> Head:
        try:
            meta = json.loads((directory / f"{name}.json").read_text())
            if meta.get("format") != HEAD_FORMAT or meta.get("version") != HEAD_VERSION:
                raise ValueError(f"not an imgsearch head of version {HEAD_VERSION}")
            arrays = load_npz(directory / f"{name}.npz")
            # shipped heads store float16 weights; numpy multiplies float32 many times faster
            layers = [
                (np.asarray(arrays[f"w{i}"], np.float32), np.asarray(arrays[f"b{i}"], np.float32), a)
                for i, a in enumerate(meta["activations"])
            ]
            if any(a not in ACTIVATIONS for _, _, a in layers):
                raise ValueError("unknown activation")
        except Exception as exc:  # a damaged head is reported, whatever numpy or zipfile raised
            raise UserError(f"{directory}: cannot read head {name!r} ({exc})") from None
        info = {
            k: v
            for k, v in meta.items()
            if k not in ("format", "version", "name", "source_space", "target", "activations", "dim")
        }
        return cls(
            meta["name"], meta["source_space"], meta["target"], arrays["mean"], arrays["std"], layers, info
        )


def load_heads(directory: Path) -> dict[str, Head]:
    """Every head saved in ``directory`` (a model dir or a store generation)."""
    return {
        p.stem: Head.load(directory, p.stem)
        for p in sorted(directory.glob("*.json"))
        if (directory / f"{p.stem}.npz").exists() and _is_head(p)
    }


def _is_head(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("format") == HEAD_FORMAT
    except (OSError, ValueError):
        return False
