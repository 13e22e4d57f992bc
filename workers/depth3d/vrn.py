"""The ``vrn`` reconstruction backend: VRN in Keras, its weights loaded from a file.

VRN — Volumetric Regression Network (Jackson, Bulat, Argyriou & Tzimiropoulos, "Large Pose
3D Face Reconstruction from a Single Image via Direct Volumetric CNN Regression", ICCV
2017), the *unguided* variant the seed used: a 192×192 RGB face crop → a 192×192×200
occupancy volume (voxel occupied: inside the face). :func:`build_vrn` follows the paper:
a 7×7 stride-2 convolution and three residual modules (Newell, Yang & Deng, "Stacked
Hourglass Networks", ECCV 2016: bottleneck BN-ReLU-conv 1×1, 3×3, 1×1 with a skip) at
96×96, ``stacks`` hourglasses of ``features`` channels and ``depth`` halvings each, joined
as in Newell et al., and a 4×4 stride-2 transposed convolution to ``volume_depth``
sigmoid channels at 192×192.

**Weights.** VRN's authors published Torch7 weights; converted PyTorch state dicts of
them circulate (``vrn_unguided.pth``). They cannot be downloaded here, so the operator
mounts one and sets ``LIVENESS_VRN_WEIGHTS`` to its path. :func:`load_vrn_weights` reads
it without PyTorch (:func:`workers.torch_port.load_state_dict`) and assigns its tensors
**in file order** to the network's parameters in build order (convolutions: weight then
bias; batch norms: weight, bias, running mean, running variance), each tensor's shape
checked — the order a Torch7 ``nn.Sequential`` converted module-by-module has, whatever
its key names. A file with another count or order of tensors is refused with the first
mismatch named. Only randomly initialised weights written in that layout have been
loaded here (``tests/unit/test_depth3d_vrn.py``): whether a particular public file's
order matches is checked when the worker loads it, which refuses a file that does not
fit and names the first mismatch.

:func:`volume_depth_map` turns the volume into the same depth map the classifiers read
(:mod:`workers.depth3d.volume`): per pixel, the first occupied voxel from the front,
in units of the face's width in the volume, centred on the face's median depth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ModelError
from workers.depth3d.volume import DEPTH_FAR, DEPTH_NEAR, HALF_EXTENT

#: The paper's sizes.
INPUT_SIDE = 192
VOLUME_DEPTH = 200
FEATURES = 256
STACKS = 2
HOURGLASS_DEPTH = 4


def build_vrn(features: int = FEATURES, stacks: int = STACKS, depth: int = HOURGLASS_DEPTH,
              volume_depth: int = VOLUME_DEPTH, input_side: int = INPUT_SIDE) -> Any:
    """VRN-unguided (module docstring): input ``image`` float32 (N, side, side, 3) RGB in
    0–1, output ``volume`` (N, side, side, volume_depth) in 0–1. ``input_side`` must be
    divisible by 2^(depth+1); ``ValueError`` otherwise."""
    import keras
    from keras import layers

    if input_side % (2 ** (depth + 1)):
        raise ValueError(f"input side {input_side} is not divisible by {2 ** (depth + 1)}")
    counter = iter(range(10**6))

    def bn_relu(x: Any) -> Any:
        x = layers.BatchNormalization(epsilon=1e-5, name=f"bn{next(counter)}")(x)
        return layers.ReLU()(x)

    def conv(x: Any, filters: int, kernel: int) -> Any:
        return layers.Conv2D(filters, kernel, padding="same", name=f"conv{next(counter)}")(x)

    def residual(x: Any, filters: int) -> Any:
        skip = x if x.shape[-1] == filters else conv(x, filters, 1)
        y = conv(bn_relu(x), filters // 2, 1)
        y = conv(bn_relu(y), filters // 2, 3)
        y = conv(bn_relu(y), filters, 1)
        return layers.Add()([skip, y])

    def hourglass(x: Any, n: int) -> Any:
        up = residual(x, features)
        low = layers.MaxPooling2D(2)(x)
        low = residual(low, features)
        low = hourglass(low, n - 1) if n > 1 else residual(low, features)
        low = residual(low, features)
        return layers.Add()([up, layers.UpSampling2D(2)(low)])

    image = keras.Input((input_side, input_side, 3), name="image")
    x = layers.Conv2D(64, 7, strides=2, padding="same", name=f"conv{next(counter)}")(image)
    x = bn_relu(x)
    x = residual(x, 128)
    x = residual(x, 128)
    x = residual(x, features)
    for stack in range(stacks):
        y = hourglass(x, depth)
        y = residual(y, features)
        y = bn_relu(conv(y, features, 1))
        x = layers.Add()([x, conv(y, features, 1)]) if stack < stacks - 1 else y
    volume = layers.Conv2DTranspose(volume_depth, 4, strides=2, padding="same",
                                    activation="sigmoid", name=f"deconv{next(counter)}")(x)
    return keras.Model(image, volume, name="vrn_unguided")


def parameter_shapes(model: Any) -> list[tuple[str, tuple[int, ...]]]:
    """(layer/parameter, shape in PyTorch's layout) of every weight, in load order."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            names = ("weight", "bias", "running_mean", "running_var")
            out += [(f"{layer.name}.{n}", tuple(w.shape)) for n, w in zip(
                names, layer.get_weights(), strict=True)]
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            # Keras (kh, kw, in, out) → torch (out, in, kh, kw); transposed: Keras
            # (kh, kw, out, in) → torch (in, out, kh, kw): the same permutation
            k, b = layer.get_weights()
            out += [(f"{layer.name}.weight", (k.shape[3], k.shape[2], k.shape[0], k.shape[1])),
                    (f"{layer.name}.bias", tuple(b.shape))]
    return out


def load_vrn_weights(model: Any, path: str | Path) -> int:
    """Set ``model``'s weights from a PyTorch state dict at ``path`` (module docstring);
    returns how many tensors were assigned. :class:`ModelError` when the file cannot be
    read or its tensors do not fit the network in count, order or shape."""
    import keras

    from workers.torch_port import CheckpointError, load_state_dict

    try:
        tensors = [np.asarray(v) for v in load_state_dict(path).values()
                   if np.asarray(v).ndim > 0]  # skip num_batches_tracked scalars
    except (CheckpointError, OSError) as exc:
        raise ModelError(f"VRN weights {path}: {exc}") from exc
    expected = parameter_shapes(model)
    if len(tensors) != len(expected):
        raise ModelError(f"VRN weights {path}: {len(tensors)} tensors, the network has "
                         f"{len(expected)} parameters")
    for (name, shape), tensor in zip(expected, tensors, strict=True):
        if tuple(tensor.shape) != shape:
            raise ModelError(f"VRN weights {path}: {name} expects {shape}, the file's "
                             f"tensor there is {tuple(tensor.shape)}")
    it = iter(tensors)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([next(it) for _ in range(4)])
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            # torch (out, in, kh, kw) / transposed (in, out, kh, kw) → Keras (kh, kw, ·, ·)
            w, b = next(it), next(it)
            layer.set_weights([np.transpose(w, (2, 3, 1, 0)), b])
    return len(tensors)


def volume_depth_map(volume: np.ndarray, side: int, threshold: float = 0.5) -> np.ndarray:
    """(side, side) float32 depth map (module docstring) of one volume (H, W, D) whose
    last axis runs from the camera away; pixels with no occupied voxel are far."""
    import cv2

    v = np.asarray(volume) >= threshold
    occupied = v.any(axis=-1)
    first = np.argmax(v, axis=-1).astype(np.float32)
    cols = np.where(occupied.any(axis=0))[0]
    if len(cols) < 2:
        return np.full((side, side), DEPTH_FAR, np.float32)
    width = float(cols[-1] - cols[0] + 1)
    depth = (first - float(np.median(first[occupied]))) / (width / (2 * HALF_EXTENT))
    depth = np.where(occupied, np.clip(depth, DEPTH_NEAR, DEPTH_FAR), DEPTH_FAR)
    return cv2.resize(depth.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)


class VrnReconstructor:
    """VRN with its weights, loaded once per process (Keras: the ``vrn`` backend needs
    TensorFlow in the worker image). :class:`ModelError` without a readable file."""

    def __init__(self, weights: str | Path) -> None:
        if not Path(weights).is_file():
            raise ModelError(f"VRN weights {weights} not found: mount the converted file "
                             "and set LIVENESS_VRN_WEIGHTS (workers/depth3d/vrn.py)")
        self.model = build_vrn()
        load_vrn_weights(self.model, weights)

    def volume(self, crop: np.ndarray) -> np.ndarray:
        """(192, 192, 200) float32 volume of an RGB uint8 (192, 192, 3) crop."""
        x = np.asarray(crop, np.float32)[None] / 255.0
        return np.asarray(self.model(x, training=False))[0]
