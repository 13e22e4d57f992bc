"""MiniFASNetV2 and MiniFASNetV1SE in Keras, built from their PyTorch state dicts.

Minivision's MiniFASNet (Silent-Face-Anti-Spoofing, ``src/model_lib/MiniFASNet.py``,
Apache-2.0) is a pruned MobileFaceNet (Chen et al., "MobileFaceNets", 2018): every
layer's width is read here from the state dict's tensor shapes; the structure is the
published one, the key names say which layer is which:

* ``conv1``: 3×3 convolution, stride 2 (80 → 40), batch norm, PReLU (one slope per
  channel); ``conv2_dw``: 3×3 depthwise, stride 1, batch norm, PReLU;
* depthwise-separable blocks (``Depth_Wise``): ``conv`` 1×1 expand + BN + PReLU,
  ``conv_dw`` 3×3 depthwise + BN + PReLU, ``project`` 1×1 + BN (linear); stride 2 in
  ``conv_23``, ``conv_34``, ``conv_45`` (40 → 20 → 10 → 5), stride 1 with an identity
  shortcut in the residual stages ``conv_3`` (4 blocks), ``conv_4`` (6), ``conv_5`` (2);
* MiniFASNetV1SE: the last block of each residual stage has a squeeze-excitation module
  (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018) on its projection before the
  shortcut: global average pool, 1×1 ``fc1`` + BN + ReLU, 1×1 ``fc2`` + BN, sigmoid,
  channel-wise product;
* ``conv_6_sep``: 1×1 to 512 + BN + PReLU; ``conv_6_dw``: 5×5 depthwise, valid, to a
  1×1×512 map + BN; flattened (1×1 spatial, so NCHW and NHWC flatten alike);
* ``linear``: 512 → 128 without bias (the embedding), ``bn``: BatchNorm1d, ``prob``:
  128 → 3 without bias; softmax, class 1 = live, 0 and 2 two kinds of attack.

Every 3×3 convolution pads by 1 on each side as PyTorch does (an explicit
``ZeroPadding2D``; Keras's ``same`` pads a stride-2 convolution (0, 1) on an even input).
Batch norms keep PyTorch's epsilon 1e-5. Weights are converted NCHW → NHWC by
:mod:`workers.torch_port`.

Input: float32 (N, 80, 80, 3), **BGR, 0–255** (no scaling, no mean). Outputs: the
softmax (N, 3) and the embedding (N, 128) *after* ``bn`` — the vector ``prob`` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from common.errors import ModelError
from workers.torch_port import TORCH_BN_EPSILON, batch_norm, conv_kernel, depthwise_kernel

#: Residual stages and their block counts (MiniFASNet: 4, 6, 2).
RESIDUAL_STAGES = (("conv_3", 4), ("conv_4", 6), ("conv_5", 2))
#: Stride-2 depthwise-separable blocks before each residual stage (and after the last).
DOWNSAMPLE_BLOCKS = ("conv_23", "conv_34", "conv_45")
#: The two networks of the pair, by their weight file's prefix.
VARIANTS = ("MiniFASNetV2", "MiniFASNetV1SE")
#: Class index of bona fide in the softmax.
LIVE_CLASS = 1


def strip_prefix(sd: Mapping[str, np.ndarray], prefix: str = "module.") -> dict[str, np.ndarray]:
    """The state dict without DataParallel's ``module.`` key prefix (the files have it)."""
    return {k.removeprefix(prefix): v for k, v in sd.items()}


def variant_of(sd: Mapping[str, np.ndarray]) -> str:
    """``MiniFASNetV1SE`` when the state dict has squeeze-excitation weights, else
    ``MiniFASNetV2``."""
    return "MiniFASNetV1SE" if any(".se_module." in k for k in sd) else "MiniFASNetV2"


class _Builder:
    """Adds layers named after the state dict's keys (dots → ``__``) and records their
    weights, set once the model exists."""

    def __init__(self, sd: Mapping[str, np.ndarray], name: str) -> None:
        self.sd = sd
        self.name = name
        self.weights: dict[str, list[np.ndarray]] = {}

    def _layer_name(self, key: str) -> str:
        return f"{self.name}__{key.replace('.', '__')}"

    def conv(self, x: Any, key: str, stride: int = 1, padding: int = 0) -> Any:
        """A convolution without bias: depthwise when its weight is (C, 1, k, k) over C
        input channels, else dense."""
        from keras import layers

        w = self.sd[f"{key}.weight"]
        out_c, in_per_group, kh, kw = w.shape
        if padding:
            x = layers.ZeroPadding2D(padding, name=self._layer_name(f"{key}.pad"))(x)
        name = self._layer_name(key)
        if in_per_group == 1 and out_c == x.shape[-1] and out_c > 1:
            layer = layers.DepthwiseConv2D((kh, kw), strides=stride, use_bias=False, name=name)
            self.weights[name] = [depthwise_kernel(w)]
        else:
            if in_per_group != x.shape[-1]:
                raise ModelError(f"{key}: weight {w.shape} does not fit {x.shape[-1]} channels")
            layer = layers.Conv2D(out_c, (kh, kw), strides=stride, use_bias=False, name=name)
            self.weights[name] = [conv_kernel(w)]
        return layer(x)

    def bn(self, x: Any, key: str) -> Any:
        from keras import layers

        name = self._layer_name(key)
        self.weights[name] = batch_norm(self.sd, key)
        return layers.BatchNormalization(epsilon=TORCH_BN_EPSILON, name=name)(x)

    def prelu(self, x: Any, key: str) -> Any:
        from keras import layers

        name = self._layer_name(key)
        alpha = self.sd[f"{key}.weight"]
        self.weights[name] = [alpha.reshape(1, 1, -1)]
        return layers.PReLU(shared_axes=[1, 2], name=name)(x)

    def conv_block(self, x: Any, key: str, stride: int = 1, padding: int = 0,
                   activation: bool = True) -> Any:
        """``Conv_block`` (conv, BN, PReLU) or, without ``activation``, ``Linear_block``."""
        x = self.bn(self.conv(x, f"{key}.conv", stride, padding), f"{key}.bn")
        return self.prelu(x, f"{key}.prelu") if activation else x

    def se_module(self, x: Any, key: str) -> Any:
        from keras import layers

        s = layers.GlobalAveragePooling2D(keepdims=True, name=self._layer_name(f"{key}.pool"))(x)
        s = self.bn(self.conv(s, f"{key}.fc1"), f"{key}.bn1")
        s = layers.ReLU(name=self._layer_name(f"{key}.relu"))(s)
        s = self.bn(self.conv(s, f"{key}.fc2"), f"{key}.bn2")
        s = layers.Activation("sigmoid", name=self._layer_name(f"{key}.sigmoid"))(s)
        return layers.Multiply(name=self._layer_name(f"{key}.scale"))([x, s])

    def depth_wise(self, x: Any, key: str, stride: int, residual: bool) -> Any:
        """``Depth_Wise`` / ``Depth_Wise_SE``: expand, depthwise, project (+ SE) (+ x)."""
        from keras import layers

        y = self.conv_block(x, f"{key}.conv")
        y = self.conv_block(y, f"{key}.conv_dw", stride=stride, padding=1)
        y = self.conv_block(y, f"{key}.project", activation=False)
        if not residual:
            return y
        if f"{key}.se_module.fc1.weight" in self.sd:
            y = self.se_module(y, f"{key}.se_module")
        return layers.Add(name=self._layer_name(f"{key}.add"))([x, y])

    def dense(self, x: Any, key: str) -> Any:
        from keras import layers

        name = self._layer_name(key)
        w = self.sd[f"{key}.weight"]
        self.weights[name] = [w.T]
        return layers.Dense(w.shape[0], use_bias=False, name=name)(x)


def build_minifasnet(sd: Mapping[str, np.ndarray], name: str | None = None,
                     input_side: int = 80) -> Any:
    """A Keras model of the MiniFASNet in state dict ``sd`` (``module.`` prefix allowed),
    with its weights: input float32 (N, side, side, 3) BGR 0–255, outputs
    ``[softmax (N, 3), embedding (N, 128)]`` (module docstring).

    Raises :class:`common.errors.ModelError` when the state dict lacks a layer the
    structure needs or a tensor does not fit.
    """
    import keras
    from keras import layers

    sd = strip_prefix(sd)
    name = name or variant_of(sd)
    b = _Builder(sd, name)
    try:
        inputs = keras.Input((input_side, input_side, 3), name=f"{name}_crop")
        x = b.conv_block(inputs, "conv1", stride=2, padding=1)
        x = b.conv_block(x, "conv2_dw", padding=1)
        for down, (stage, blocks) in zip(DOWNSAMPLE_BLOCKS, RESIDUAL_STAGES, strict=True):
            x = b.depth_wise(x, down, stride=2, residual=False)
            for i in range(blocks):
                x = b.depth_wise(x, f"{stage}.model.{i}", stride=1, residual=True)
        x = b.conv_block(x, "conv_6_sep")
        x = b.conv_block(x, "conv_6_dw", activation=False)
        if tuple(x.shape[1:3]) != (1, 1):
            raise ModelError(f"conv_6_dw leaves a {x.shape[1]}×{x.shape[2]} map, not 1×1: "
                             f"the input side {input_side} does not fit this network")
        x = layers.Flatten(name=f"{name}__flatten")(x)
        x = b.dense(x, "linear")
        embedding = b.bn(x, "bn")
        logits = b.dense(embedding, "prob")
        softmax = layers.Softmax(name=f"{name}__softmax")(logits)
    except KeyError as exc:
        raise ModelError(f"{name}: the state dict has no {exc.args[0]!r}") from exc
    model = keras.Model(inputs, [softmax, embedding], name=name)
    for layer_name, values in b.weights.items():
        layer = model.get_layer(layer_name)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if expected != [tuple(v.shape) for v in values]:
            raise ModelError(f"{layer_name}: weights {[v.shape for v in values]} do not fit "
                             f"{expected}")
        layer.set_weights([np.asarray(v, np.float32) for v in values])
    used = {k for k in sd if not k.endswith("num_batches_tracked")}
    unused = used - _consumed_keys(b)
    if unused:
        raise ModelError(f"{name}: state dict tensors the structure does not use: "
                         f"{sorted(unused)[:5]}")
    return model


def _consumed_keys(b: _Builder) -> set[str]:
    """The state dict keys the builder's layers took (to refuse a file with more)."""
    keys = set()
    for layer_name in b.weights:
        key = layer_name.removeprefix(f"{b.name}__").replace("__", ".")
        keys.update(k for k in b.sd if k.startswith(key + "."))
    return keys
