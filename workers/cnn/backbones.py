"""The CNN test's backbones, one entry each: how to build it, normalise its input, and
where its initial weights come from.

========================= ====== ==================================================
name                      input  initialisation
========================= ====== ==================================================
``mobilenet_v2``          224    ImageNet (torchvision's, ported: ``imagenet_port``)
``efficientnet_lite0``    224    ImageNet (ported: ``imagenet_port``)
``resnet50``              224    from scratch, or a Keras ImageNet weights file the
                                 user supplies (``init``; none ships offline)
``mobilenet_v2_035_96``   96     from scratch (Ghofrani et al.'s light model)
``livenessnet_32``        32     from scratch (Nguyen's LivenessNet)
========================= ====== ==================================================

Every builder returns a Keras model from a float32 batch (N, side, side, 3), already
normalised by the entry's ``preprocess``, to the last feature map; heads are added by
:mod:`workers.cnn.model`. ``stage_layers`` name the layers that end each earlier stage
of the network (finest first): the ``stages`` pooling of :mod:`workers.cnn.features`
pools them beside the last map (low-level texture — print dots, screen moiré, blur —
lives in the early stages, semantics in the last).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import ModelError
from workers.cnn.efficientnet_lite import lite_preprocess
from workers.cnn.imagenet_port import torch_preprocess


def _keras_preprocess(images: np.ndarray) -> np.ndarray:
    """RGB uint8 → float32 in [-1, 1] (Keras's MobileNet convention)."""
    return images.astype(np.float32) / 127.5 - 1.0


def _caffe_preprocess(images: np.ndarray) -> np.ndarray:
    """RGB uint8 → float32 BGR minus the ImageNet means (Keras's ResNet50 convention)."""
    bgr = images[..., ::-1].astype(np.float32)
    return bgr - np.array([103.939, 116.779, 123.68], np.float32)


@dataclass(frozen=True)
class Backbone:
    """A backbone: ``build(init)`` → Keras model; ``preprocess`` uint8 → float32."""

    name: str
    input_side: int
    preprocess: Callable[[np.ndarray], np.ndarray]
    build: Callable[[Path | None], object]
    initialisation: str
    stage_layers: tuple[str, ...] = ()


def _mobilenet_v2(init: Path | None) -> object:
    from workers.cnn.imagenet_port import mobilenet_v2_imagenet

    return _with_init(mobilenet_v2_imagenet(224), init)


def _efficientnet_lite0(init: Path | None) -> object:
    from workers.cnn.imagenet_port import efficientnet_lite0_imagenet

    return _with_init(efficientnet_lite0_imagenet(224), init)


def _resnet50(init: Path | None) -> object:
    import keras

    model = keras.applications.ResNet50(include_top=False, weights=None,
                                        input_shape=(224, 224, 3))
    return _with_init(model, init)


def _mobilenet_v2_035_96(init: Path | None) -> object:
    import keras

    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35,
                                           include_top=False, weights=None)
    return _with_init(model, init)


def _livenessnet_32(init: Path | None) -> object:
    """Nguyen's LivenessNet trunk: (CONV-BN-CONV-BN-POOL-DROPOUT) × 2, 16 and 32 filters."""
    import keras
    from keras import layers

    inputs = keras.Input((32, 32, 3))
    x = inputs
    for stage, filters in enumerate((16, 32), start=1):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
        x = layers.Dropout(0.25)(x)
    return _with_init(keras.Model(inputs, x, name="livenessnet_32"), init)


def _with_init(model: object, init: Path | None) -> object:
    """Load a user-supplied Keras weights file (``.weights.h5``) onto ``model``."""
    if init is not None:
        try:
            model.load_weights(str(init), skip_mismatch=False)  # type: ignore[attr-defined]
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load initial weights {init}: {exc}") from exc
    return model


#: The last layer of each stage before the last map (strides 4, 8, 16, 16, 32, 32).
_LITE0_STAGES = ("block2_add", "block4_add", "block7_add", "block10_add", "block14_add",
                 "block15_project_bn")
_MOBILENET_V2_STAGES = ("block_2_add", "block_5_add", "block_9_add", "block_12_add",
                        "block_15_add", "block_16_project_BN")

BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("mobilenet_v2", 224, torch_preprocess, _mobilenet_v2, "ImageNet (ported)",
             _MOBILENET_V2_STAGES),
    Backbone("efficientnet_lite0", 224, lite_preprocess, _efficientnet_lite0,
             "ImageNet (ported)", _LITE0_STAGES),
    Backbone("resnet50", 224, _caffe_preprocess, _resnet50, "scratch or --init"),
    Backbone("mobilenet_v2_035_96", 96, _keras_preprocess, _mobilenet_v2_035_96,
             "scratch or --init"),
    Backbone("livenessnet_32", 32, _keras_preprocess, _livenessnet_32, "scratch",
             ("stage1_pool",)),
)}


def get_backbone(name: str) -> Backbone:
    """The backbone called ``name``; ``ModelError`` lists the known ones otherwise."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ModelError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}") from None
