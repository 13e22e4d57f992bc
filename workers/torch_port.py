"""PyTorch weights for Keras models without PyTorch: a safe ``state_dict`` reader and
the layout transposes every port needs (the CNN test's ImageNet backbones,
:mod:`workers.cnn.imagenet_port`; the fasnet test's MiniFASNet pair,
:mod:`workers.fasnet.port`).

**Reader.** A ``.pth`` file is a pickle of a dict of tensors whose raw storages are kept
outside the pickle. PyTorch has written two layouts (``torch/serialization.py``):

* the zip layout (PyTorch ≥ 1.6): ``<name>/data.pkl`` plus one file per storage,
  ``<name>/data/<key>``;
* the legacy layout: five pickles in a row — magic number, protocol version, system
  info, the object, the list of storage keys — followed by each storage as an 8-byte
  little-endian element count and its raw little-endian bytes.

``pickle.load`` on such a file can run any callable the file names. The reader here
accepts only what a plain state dict needs — ``collections.OrderedDict``, the tensor
rebuild functions of ``torch._utils`` and the typed storage classes — and refuses
anything else with :class:`CheckpointError`, so a malicious file cannot execute code.
Tensors come back as C-contiguous NumPy arrays with their shape and dtype.

**Layouts.** PyTorch is NCHW, Keras NHWC: convolutions (out, in, kh, kw) → (kh, kw, in,
out) (:func:`conv_kernel`), depthwise (C, 1, kh, kw) → (kh, kw, C, 1)
(:func:`depthwise_kernel`), linear (out, in) → (in, out); batch norm's weight, bias,
running mean and variance are Keras's gamma, beta, moving mean and variance
(:func:`batch_norm`), with PyTorch's epsilon 1e-5 (:func:`load_into`).
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: PyTorch storage class → NumPy dtype (little-endian).
STORAGE_DTYPES: dict[str, np.dtype] = {
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
#: The legacy layout's first pickle.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class CheckpointError(ValueError):
    """The file is not a PyTorch state dict this reader accepts (or asks for code)."""


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Tensor:
    """A tensor waiting for its storage's bytes (the legacy layout stores them last)."""

    def __init__(self, storage: np.ndarray, offset: int, size: tuple[int, ...],
                 stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialise(self) -> np.ndarray:
        if not self.size:
            return np.array(self.storage[self.offset])
        itemsize = self.storage.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage[self.offset:], shape=self.size,
            strides=tuple(s * itemsize for s in self.stride), writeable=False)
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple[int, ...],
                    stride: tuple[int, ...], *_: Any) -> _Tensor:
    return _Tensor(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: _Tensor, *_: Any) -> _Tensor:
    return data


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, storages: dict[str, np.ndarray],
                 read_storage: Any) -> None:
        super().__init__(io.BytesIO(data))
        self._storages = storages
        self._read_storage = read_storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise CheckpointError(f"refused to load {module}.{name}: a state dict of "
                                  "tensors needs only tensors") from None

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise CheckpointError(f"unexpected persistent id {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"unexpected storage type {storage_type!r}")
        if key not in self._storages:
            self._storages[key] = self._read_storage(key, storage_type.dtype, numel)
        storage = self._storages[key]
        if len(pid) > 5 and pid[5] is not None:  # legacy view: (view_key, offset, size)
            _, offset, size = pid[5]
            return storage[int(offset):int(offset) + int(size)]
        return storage


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointError(f"{path.name}: no single data.pkl in the archive")
        prefix = pickles[0][: -len("data.pkl")]

        def read(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
            raw = archive.read(f"{prefix}data/{key}")
            if len(raw) < numel * dtype.itemsize:
                raise CheckpointError(f"{path.name}: storage {key} is truncated")
            return np.frombuffer(raw, dtype=dtype, count=numel)

        return _Unpickler(archive.read(pickles[0]), {}, read).load()


def _load_legacy(path: Path) -> Any:
    stream = io.BytesIO(path.read_bytes())
    if _HeaderReader(stream).load() != LEGACY_MAGIC:
        raise CheckpointError(f"{path.name}: not a PyTorch checkpoint (bad magic number)")
    _HeaderReader(stream).load()  # protocol version
    _HeaderReader(stream).load()  # system info
    storages: dict[str, np.ndarray] = {}
    pending: dict[str, tuple[np.dtype, int]] = {}

    def defer(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
        pending[key] = (dtype, numel)
        return np.empty(numel, dtype=dtype)  # filled in place once the bytes are read

    obj = _StreamUnpickler(stream, storages, defer).load()
    for key in _HeaderReader(stream).load():
        dtype, numel = pending[str(key)]
        count = int.from_bytes(stream.read(8), "little")
        if count != numel:
            raise CheckpointError(f"{path.name}: storage {key} has {count} elements, "
                                  f"expected {numel}")
        raw = stream.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise CheckpointError(f"{path.name}: storage {key} is truncated")
        storages[str(key)][:] = np.frombuffer(raw, dtype=dtype)
    return obj


class _HeaderReader(pickle.Unpickler):
    """Reads the legacy layout's header pickles (no classes allowed at all)."""

    def find_class(self, module: str, name: str) -> Any:
        raise CheckpointError(f"refused to load {module}.{name} from a checkpoint header")


class _StreamUnpickler(_Unpickler):
    def __init__(self, stream: io.BytesIO, storages: dict[str, np.ndarray],
                 read_storage: Any) -> None:
        pickle.Unpickler.__init__(self, stream)
        self._storages = storages
        self._read_storage = read_storage


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _Tensor):
        return obj.materialise()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
    return obj


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch ``state_dict`` file as ``{name: ndarray}``, in file order.

    Metadata entries that are not tensors (e.g. ``num_batches_tracked`` scalars stay
    0-d arrays) are kept as they are. Raises :class:`CheckpointError` for a file that is
    not a checkpoint, is truncated, or names anything but tensors.
    """
    path = Path(path)
    try:
        obj = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path.name}: not a readable PyTorch checkpoint: {exc}") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name}: holds a {type(obj).__name__}, not a state dict")
    return dict(_materialise(obj))


TORCH_BN_EPSILON = 1e-5


def conv_kernel(w: np.ndarray) -> np.ndarray:
    """PyTorch convolution weights (out, in, kh, kw) → Keras (kh, kw, in, out)."""
    return np.transpose(w, (2, 3, 1, 0))


def depthwise_kernel(w: np.ndarray) -> np.ndarray:
    """PyTorch depthwise weights (C, 1, kh, kw) → Keras (kh, kw, C, 1)."""
    return np.transpose(w, (2, 3, 0, 1))


def batch_norm(sd: Mapping[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """A PyTorch batch norm's weight, bias, running mean and variance, Keras's order."""
    return [sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], sd[f"{prefix}.running_mean"],
            sd[f"{prefix}.running_var"]]


def load_into(model: object, weights: Mapping[str, list[np.ndarray]],
              bn_epsilon: float | None = TORCH_BN_EPSILON) -> int:
    """Set ``weights`` on the layers of a Keras ``model`` by name; batch-norm layers get
    ``bn_epsilon`` (the checkpoint's; ``None`` keeps the model's). Layers absent from the
    model (e.g. ``predictions`` without the top) are skipped. Returns how many layers
    were set; raises :class:`common.errors.ModelError` on a shape mismatch or when no
    layer matched."""
    import keras

    from common.errors import ModelError

    names = {layer.name: layer for layer in model.layers}  # type: ignore[attr-defined]
    done = 0
    for name, values in weights.items():
        layer = names.get(name)
        if layer is None:
            continue
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if expected != [tuple(v.shape) for v in values]:
            raise ModelError(f"layer {name}: weights {[v.shape for v in values]} do not fit "
                             f"{expected}")
        layer.set_weights([np.asarray(v, np.float32) for v in values])
        if bn_epsilon is not None and isinstance(layer, keras.layers.BatchNormalization):
            layer.epsilon = bn_epsilon
        done += 1
    if not done:
        raise ModelError("no layer of the model matched the checkpoint")
    return done
