"""Read PyTorch *legacy* (pre-zip) ``.pth`` state dicts with numpy only.

Why: the pretrained EfficientNet-Lite0 weights ship as a legacy torch file,
and imgsearch must not depend on torch nor run arbitrary pickled code. The
unpickler below allows exactly the globals a plain state dict needs.

Legacy layout (torch/serialization.py, ``_legacy_save``): five pickles in a
row (magic number, protocol version, system info, the object with persistent
storage ids, the list of storage keys), then for every key an int64 element
count followed by the raw little-endian storage bytes.
"""

from __future__ import annotations

import collections
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchFileError(ValueError):
    """The file is not a legacy torch state dict this reader accepts."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return _STORAGE_DTYPES[self.name]


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, offset, size, stride, *_rest) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the names a plain state dict uses."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise TorchFileError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise TorchFileError(f"unexpected persistent id {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise TorchFileError(f"unexpected storage type {storage_type!r}")
        return _StorageRef(key, storage_type.dtype, numel)


def _load_one(f: IO[bytes]) -> Any:
    return _RestrictedUnpickler(f).load()


def _materialise(ref: _TensorRef, data: np.ndarray) -> np.ndarray:
    itemsize = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(view)  # contiguous copy, detached from the shared storage


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Return ``{name: array}`` for every tensor in a legacy torch state dict."""
    with open(path, "rb") as f:
        try:
            if _load_one(f) != MAGIC_NUMBER:
                raise TorchFileError(f"{path}: not a legacy torch file (bad magic number)")
            if _load_one(f) != PROTOCOL_VERSION:
                raise TorchFileError(f"{path}: unsupported torch protocol version")
            _load_one(f)  # system info: endianness and type sizes, little-endian assumed
            obj = _load_one(f)
            keys = _load_one(f)
        except (pickle.UnpicklingError, EOFError) as exc:
            raise TorchFileError(f"{path}: not a legacy torch file ({exc})") from exc
        if not isinstance(obj, dict):
            raise TorchFileError(f"{path}: expected a state dict, got {type(obj).__name__}")
        dtypes = {ref.storage.key: ref.storage.dtype for ref in obj.values() if isinstance(ref, _TensorRef)}
        storages: dict[str, np.ndarray] = {}
        for key in keys:
            numel = int(np.frombuffer(f.read(8), "<i8")[0])
            dtype = dtypes[str(key)]
            raw = f.read(numel * dtype.itemsize)
            if len(raw) != numel * dtype.itemsize:
                raise TorchFileError(f"{path}: truncated storage {key}")
            storages[str(key)] = np.frombuffer(raw, dtype)
        if f.read(1):
            raise TorchFileError(f"{path}: trailing bytes after the last storage")
    return {
        name: _materialise(ref, storages[ref.storage.key])
        for name, ref in obj.items()
        if isinstance(ref, _TensorRef)
    }
