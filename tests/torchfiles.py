"""Writing PyTorch checkpoints the way ``torch.save`` does, without PyTorch: stand-in
torch classes so that pickle writes the same GLOBAL opcodes a real checkpoint has."""

from __future__ import annotations

import collections
import io
import pickle
import sys
import types
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest


class StorageRef:
    def __init__(self, key: str, array: np.ndarray) -> None:
        self.key, self.array = key, array


def install_fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """``torch.FloatStorage`` and ``torch._utils._rebuild_tensor_v2`` stand-ins in
    ``sys.modules`` (undone by ``monkeypatch``)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*_args: object) -> None:  # never called: we only pickle
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    storage = type("FloatStorage", (), {"__module__": "torch"})
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    torch.FloatStorage = storage  # type: ignore[attr-defined]
    torch._utils = utils  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return types.SimpleNamespace(rebuild=_rebuild_tensor_v2, FloatStorage=storage)


class FakeTensor:
    def __init__(self, fake: types.SimpleNamespace, ref: StorageRef) -> None:
        self.fake, self.ref = fake, ref

    def __reduce__(self):
        a = self.ref.array
        stride = tuple(s // a.itemsize for s in a.strides)
        return (self.fake.rebuild, (self.ref, 0, a.shape, stride, False,
                                    collections.OrderedDict()))


def pickle_state(obj: object, fake: types.SimpleNamespace, legacy: bool) -> bytes:
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=2)

    def persistent_id(o: object):
        if isinstance(o, StorageRef):
            pid = ("storage", fake.FloatStorage, o.key, "cpu", o.array.size)
            return (*pid, None) if legacy else pid
        return None

    pickler.persistent_id = persistent_id  # type: ignore[method-assign]
    pickler.dump(obj)
    return buf.getvalue()


def state_of(arrays: Mapping[str, np.ndarray], fake: types.SimpleNamespace) -> dict:
    """A state dict of stand-in tensors over ``arrays`` (C-contiguous float32)."""
    refs = {k: StorageRef(str(i), np.ascontiguousarray(a, np.float32))
            for i, (k, a) in enumerate(arrays.items())}
    return collections.OrderedDict((k, FakeTensor(fake, r)) for k, r in refs.items())


def write_zip_checkpoint(path: Path, arrays: Mapping[str, np.ndarray],
                         fake: types.SimpleNamespace) -> Path:
    """``arrays`` as a ``torch.save`` zip checkpoint at ``path``."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_state(state_of(arrays, fake), fake,
                                                          legacy=False))
        for i, a in enumerate(arrays.values()):
            archive.writestr(f"archive/data/{i}",
                             np.ascontiguousarray(a, "<f4").tobytes())
    return path
