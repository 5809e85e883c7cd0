import io
import pickle
from collections import OrderedDict

import numpy as np
import pytest

from imgsearch.encoders.efficientnet import weights_file
from imgsearch.encoders.torch_legacy import MAGIC_NUMBER, PROTOCOL_VERSION, TorchFileError, read_state_dict


def _rebuild_tensor_v2(*args):  # stand-in; its pickled name is rewritten to torch's
    raise AssertionError("never called")


class FloatStorage:  # stand-in for torch.FloatStorage, pickled by reference
    pass


class _Storage:
    def __init__(self, key: str, data: np.ndarray) -> None:
        self.key, self.data = key, data


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, shape, stride) -> None:
        self.args = (storage, offset, tuple(shape), tuple(stride), False, OrderedDict())

    def __reduce__(self):
        return (_rebuild_tensor_v2, self.args)


class _LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.data.size)
        return None


def _write_legacy(state: dict, storages: list[_Storage]) -> bytes:
    """A minimal legacy torch file, laid out as torch's ``_legacy_save`` does."""
    buf = io.BytesIO()
    for head in (MAGIC_NUMBER, PROTOCOL_VERSION, {"little_endian": True}):
        pickle.dump(head, buf, protocol=2)
    body = io.BytesIO()
    _LegacyPickler(body, protocol=2).dump(state)
    module = __name__.encode()
    raw = body.getvalue().replace(module + b"\n_rebuild_tensor_v2", b"torch._utils\n_rebuild_tensor_v2")
    buf.write(raw.replace(module + b"\nFloatStorage", b"torch\nFloatStorage"))
    pickle.dump([s.key for s in storages], buf, protocol=2)
    for s in storages:
        buf.write(np.int64(s.data.size).tobytes())
        buf.write(s.data.astype("<f4").tobytes())
    return buf.getvalue()


@pytest.mark.slow
def test_reads_every_tensor_of_the_shipped_weights():
    state = read_state_dict(weights_file())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(v).all() for v in state.values())
    # batch-norm variances of a trained network are never negative, unlike misread bytes
    assert all((v >= 0).all() for k, v in state.items() if k.endswith("running_var"))


def test_strided_tensor_is_materialised_with_its_strides(tmp_path):
    data = np.arange(12, dtype=np.float32)
    storage = _Storage("0", data)
    # a 3x2 view that is the transpose of the 2x3 block starting at offset 2
    state = OrderedDict(t=_Tensor(storage, 2, (3, 2), (1, 3)))
    path = tmp_path / "w.pth"
    raw = _write_legacy(state, [storage])
    path.write_bytes(raw)
    out = read_state_dict(path)
    expected = data[2:8].reshape(2, 3).T
    np.testing.assert_array_equal(out["t"], expected)


def test_refuses_code_execution(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    buf = io.BytesIO()
    for head in (MAGIC_NUMBER, PROTOCOL_VERSION, {}):
        pickle.dump(head, buf, protocol=2)
    pickle.dump({"x": Evil()}, buf, protocol=2)
    path = tmp_path / "evil.pth"
    path.write_bytes(buf.getvalue())
    with pytest.raises(TorchFileError, match="refusing to load"):
        read_state_dict(path)


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(b"PK\x03\x04 zip-based torch files are not legacy files")
    with pytest.raises(TorchFileError):
        read_state_dict(path)
