"""Comparison rows: the seeds' small networks trained from scratch, end to end.

Ghofrani et al.'s MobileNetV2-0.35 at 96 px and Nguyen's LivenessNet at 32 px have no
ImageNet weights offline; they are trained here from random weights on the same crops,
augmentations and leave-one-collection-out protocol as the fine-tuned model, so the
card shows what ImageNet initialisation buys. The whole network is the trainable
"suffix" of :mod:`workers.cnn.finetune` (its prefix is the identity: the cache holds the
normalised crops themselves), with batch norm in training mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.config import Settings
from workers.cnn.backbones import get_backbone
from workers.cnn.finetune import FitConfig, extract_activations, loco_finetune

#: The backbones trained from scratch as comparison rows.
SCRATCH = ("mobilenet_v2_035_96", "livenessnet_32")


def identity(side: int) -> Any:
    """A Keras model returning its (N, side, side, 3) input."""
    import keras

    inputs = keras.Input((side, side, 3))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def loco_scratch(samples: Sequence[tuple[Any, object]], name: str, scales: Sequence[str],
                 cache_dir: Path, settings: Settings, operating_point: str = "eer",
                 variants: int = 1, config: FitConfig | None = None) -> dict[str, Any]:
    """Leave-one-collection-out results (per scale and fused) of backbone ``name``
    trained from scratch with a GAP + sigmoid head. ``config`` defaults to Adam 1e-3,
    up to 4 epochs, patience 1, batch norm in training mode (what 2 CPU cores allow:
    about 20 s per epoch for MobileNetV2-0.35@96)."""
    import keras

    config = config or FitConfig(learning_rate=1e-3, epochs=4, patience=1, frozen_bn=False)
    backbone = get_backbone(name)
    keras.utils.set_random_seed(config.seed)
    trunk = backbone.build(None)
    crops = extract_activations(samples, backbone, identity(backbone.input_side), scales,
                                cache_dir / f"{name}-crops-v{variants}-s{config.seed}.h5",
                                settings, variants=variants, seed=config.seed)
    results, _ = loco_finetune(crops, {s: trunk for s in scales}, operating_point, config)
    return results
