"""The served CNN model: a backbone shared by the crop scales, a linear head, one file.

``build_scoring_model`` turns a backbone and a fitted head into one Keras model with one
input per scale (float32 (N, side, side, 3), normalised by the backbone's
``preprocess``): the backbone runs on each crop, global average pooling, the pooled
vectors are concatenated in scale order and a dense sigmoid unit gives P(live) (N, 1).
A standardised logistic regression fitted on the cached features is folded into that
unit exactly: ``w' = w / σ``, ``b' = b − Σ w μ / σ``.

The folder ``models/cnn/`` holds ``model.keras`` (architecture and weights; loaded with
Keras's ``safe_mode``, which refuses code) and ``model.json`` (info, threshold, the
backbone and scales, and the file's SHA-256).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.estimator import ModelInfo
from common.modelfolder import write_model_folder
from workers.cnn.backbones import Backbone

MODEL_FILE = "model.keras"
FORMAT = "workers.cnn.model"
FORMAT_VERSION = 1


def fold_standardised_logistic(pipeline: Any) -> tuple[np.ndarray, float]:
    """(weights (D,), bias) of ``make_pipeline(StandardScaler(), LogisticRegression())``
    as one linear unit on the raw features."""
    scaler, logistic = pipeline[0], pipeline[-1]
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    w = logistic.coef_[0] / scale
    b = float(logistic.intercept_[0] - np.sum(logistic.coef_[0] * scaler.mean_ / scale))
    return w.astype(np.float32), b


def build_scoring_model(backbone: Backbone, trunk: Any, scales: Sequence[str],
                        weights: np.ndarray, bias: float) -> Any:
    """One Keras model: an input per scale → shared ``trunk`` → pooled → P(live)."""
    import keras
    from keras import layers

    side = backbone.input_side
    inputs = [keras.Input((side, side, 3), name=scale) for scale in scales]
    pooled = [layers.GlobalAveragePooling2D(name=f"{scale}_pool")(trunk(x))
              for scale, x in zip(scales, inputs, strict=True)]
    joined = pooled[0] if len(pooled) == 1 else layers.Concatenate(name="features")(pooled)
    head = layers.Dense(1, activation="sigmoid", name="p_live")
    out = head(joined)
    head.set_weights([np.asarray(weights, np.float32)[:, None],
                      np.array([bias], np.float32)])
    return keras.Model(inputs, out, name=f"cnn_{backbone.name}")


def model_bytes(model: Any) -> bytes:
    """The ``.keras`` file of ``model``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_FILE
        model.save(path)
        return path.read_bytes()


def save_model_folder(folder: Path, model: Any, info: ModelInfo, backbone: Backbone,
                      scales: Sequence[str], extra: dict[str, Any] | None = None) -> Path:
    """Write ``model.keras`` and ``model.json`` (returns the latter's path)."""
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "info": info.to_dict(),
        "params": {"backbone": backbone.name, "input_side": backbone.input_side,
                   "scales": list(scales), **(extra or {})},
    }
    return write_model_folder(folder, manifest, {MODEL_FILE: model_bytes(model)})


def load_keras(path: Path) -> Any:
    """Load a ``.keras`` file with ``safe_mode`` (no lambda layers, no code)."""
    import keras

    return keras.models.load_model(path, compile=False, safe_mode=True)
