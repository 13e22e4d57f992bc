"""The depth3d classifiers, both reading the depth map of :mod:`workers.depth3d.volume`.

* :func:`build_voxnet` — VoxNet (Maturana & Scherer, "VoxNet: A 3D Convolutional Neural
  Network for Real-Time Object Recognition", IROS 2015) as the seed specifies it:
  Conv3D 32 filters 5³ stride 2, Conv3D 32 filters 3³, max-pool 2³, dense 128, output;
  leaky ReLU (slope 0.1) and dropout 0.2 / 0.3 / 0.4 as in the paper. The occupancy
  volume is built inside the model from its depth-map input
  (:func:`workers.depth3d.volume.occupancy`, the same rule as TF ops), so the served
  model and the training data hold ``side``² values, not ``side``³.
* :func:`build_depth_net` — the cheaper signals: a small 2-D CNN on the depth map
  (three 3×3 convolutions, 16/32/32 filters, global average pooling) joined with the
  standardised mesh signals (:mod:`workers.depth3d.signals`), dense 32, output.

Both take ``depth`` float32 (N, side, side) in IOD (outside the face: the far limit) and,
for the depth net, ``signals`` float32 (N, 7); both output ``p_live`` (N, 1), P(bona fide).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.depth3d.volume import DEPTH_FAR, DEPTH_NEAR

#: Classifier kinds :func:`build_classifier` knows.
KINDS = ("voxnet", "depthnet")


def _occupancy_layer(side: int) -> Any:
    import keras
    from keras import ops

    centres = (DEPTH_NEAR + (np.arange(side, dtype=np.float32) + 0.5) / side
               * (DEPTH_FAR - DEPTH_NEAR)).reshape(1, 1, 1, side)

    @keras.saving.register_keras_serializable(package="depth3d")
    class Occupancy(keras.layers.Layer):
        """Depth map (N, side, side) → occupancy volume (N, side, side, side, 1)."""

        def call(self, depth: Any) -> Any:
            d = ops.expand_dims(depth, -1)
            inside = ops.cast(ops.less(d, DEPTH_FAR - 1e-6), "float32")
            behind = ops.cast(ops.greater_equal(ops.convert_to_tensor(centres), d), "float32")
            return ops.expand_dims(behind * inside, -1)

    return Occupancy(name="occupancy")


def _max_pool_3d_layer() -> Any:
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="depth3d")
    class MaxPool3DBySlices(keras.layers.Layer):
        """2³ max-pooling, stride 2 (a trailing odd voxel dropped, as "valid" pooling
        does), as element-wise maxima of strided slices: TFLite has no 3-D max-pool
        kernel (``tf.MaxPool3D`` needs TF Select), but it has strided slices and
        maxima, so the served model stays on LiteRT's built-in operators."""

        def call(self, x: Any) -> Any:
            for axis in (1, 2, 3):
                n = (x.shape[axis] // 2) * 2
                even = [slice(None)] * 5
                odd = [slice(None)] * 5
                even[axis], odd[axis] = slice(0, n, 2), slice(1, n, 2)
                x = ops.maximum(x[tuple(even)], x[tuple(odd)])
            return x

    return MaxPool3DBySlices(name="max_pool")


def build_voxnet(side: int, seed: int = 0) -> Any:
    """VoxNet on a ``side``³ volume built from a ``side``² depth map (module docstring)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    depth = keras.Input((side, side), name="depth")
    x = _occupancy_layer(side)(depth)
    x = layers.Conv3D(32, 5, strides=2, name="conv1")(x)
    x = layers.LeakyReLU(0.1)(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Conv3D(32, 3, name="conv2")(x)
    x = layers.LeakyReLU(0.1)(x)
    x = _max_pool_3d_layer()(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.4)(x)
    p_live = layers.Dense(1, activation="sigmoid", name="p_live")(x)
    return keras.Model(depth, p_live, name=f"voxnet{side}")


def build_depth_net(side: int, signal_mean: np.ndarray, signal_std: np.ndarray,
                    seed: int = 0) -> Any:
    """The depth-map CNN + mesh signals (module docstring); ``signal_mean`` /
    ``signal_std`` (7,) standardise the signals inside the model."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    depth = keras.Input((side, side), name="depth")
    signals = keras.Input((len(signal_mean),), name="signals")
    # depth relative to the near limit, so that the face's outline (far) reads large
    x = layers.Reshape((side, side, 1))(depth)
    x = layers.Rescaling(1.0 / (DEPTH_FAR - DEPTH_NEAR), -DEPTH_NEAR / (DEPTH_FAR - DEPTH_NEAR))(x)
    for i, filters in enumerate((16, 32, 32)):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        if i < 2:
            x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    std = np.where(np.asarray(signal_std) > 0, signal_std, 1.0)
    s = layers.Normalization(mean=np.asarray(signal_mean, np.float32),
                             variance=np.asarray(std, np.float32) ** 2, name="standardise")(signals)
    x = layers.Concatenate()([x, s])
    x = layers.Dense(32, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.3)(x)
    p_live = layers.Dense(1, activation="sigmoid", name="p_live")(x)
    return keras.Model({"depth": depth, "signals": signals}, p_live, name=f"depthnet{side}")


def build_classifier(kind: str, side: int, signal_mean: np.ndarray | None = None,
                     signal_std: np.ndarray | None = None, seed: int = 0) -> Any:
    """:func:`build_voxnet` or :func:`build_depth_net` by ``kind``; ``ValueError`` for
    another kind."""
    if kind == "voxnet":
        return build_voxnet(side, seed)
    if kind == "depthnet":
        if signal_mean is None or signal_std is None:
            raise ValueError("the depth net needs the signals' mean and std")
        return build_depth_net(side, signal_mean, signal_std, seed)
    raise ValueError(f"unknown depth3d classifier {kind!r}; choose one of {KINDS}")


def inputs_of(kind: str, depth: np.ndarray, signals: np.ndarray) -> Any:
    """The model's input for a batch: the depth maps, or both by name."""
    if kind == "voxnet":
        return np.asarray(depth, np.float32)
    return {"depth": np.asarray(depth, np.float32), "signals": np.asarray(signals, np.float32)}
