"""The served CNN model: a backbone shared by the crop scales, a linear head, one file.

``build_scoring_model`` turns a backbone and a fitted head into one Keras model with one
input per scale (float32 (N, side, side, 3), normalised by the backbone's
``preprocess``): the backbone runs on each crop, global average pooling, the pooled
vectors are concatenated in scale order and a dense sigmoid unit gives P(live) (N, 1).
A standardised logistic regression fitted on the cached features is folded into that
unit exactly: ``w' = w / σ``, ``b' = b − Σ w μ / σ``.

The folder ``models/cnn/`` holds ``model.tflite`` — the Keras model converted by
TensorFlow's TFLite converter and served by LiteRT, so the serving process imports no
TensorFlow (it loads in a fraction of a second; the conversion's output equals Keras's to
float precision, checked when the folder is written) — and ``model.json`` (info,
threshold, the backbone and scales, and the file's SHA-256).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.estimator import ModelInfo
from common.modelfolder import write_model_folder
from workers.cnn.backbones import Backbone

MODEL_FILE = "model.tflite"
FORMAT = "workers.cnn.model"
FORMAT_VERSION = 2


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


def tflite_bytes(model: Any, check_inputs: Sequence[np.ndarray] | None = None) -> bytes:
    """``model`` converted to a ``.tflite`` flatbuffer (float32, no quantisation).

    With ``check_inputs`` (one float32 batch per model input) the converted model is run
    by LiteRT and must match Keras to 1e-4; raises ``ValueError`` otherwise.
    """
    import tensorflow as tf

    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    if check_inputs is not None:
        expected = np.asarray(model(list(check_inputs), training=False))
        got = TfliteRunner(data)(check_inputs)
        if not np.allclose(got, expected, atol=1e-4):
            raise ValueError(f"the TFLite conversion differs from Keras: {got} vs {expected}")
    return data


class TfliteRunner:
    """A LiteRT interpreter over a ``.tflite`` model (bytes or path); inputs in the
    model's input order (by name: ``<scale>``), one lock per interpreter."""

    def __init__(self, model: bytes | Path, names: Sequence[str] | None = None) -> None:
        import threading

        from ai_edge_litert.interpreter import Interpreter

        kwargs = ({"model_content": model} if isinstance(model, bytes)
                  else {"model_path": str(model)})
        self._interpreter = Interpreter(num_threads=1, **kwargs)
        self._interpreter.allocate_tensors()
        details = self._interpreter.get_input_details()
        if names:  # order the inputs as the scales: TFLite names them serving_default_<x>
            order = []
            for name in names:
                match = [d for d in details if d["name"].split(":")[0].endswith(name)]
                if len(match) != 1:
                    raise ValueError(f"no single TFLite input named like {name!r}")
                order.append(match[0])
            details = order
        self._inputs = [d["index"] for d in details]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._lock = threading.Lock()

    def __call__(self, batches: Sequence[np.ndarray]) -> np.ndarray:
        with self._lock:
            for index, batch in zip(self._inputs, batches, strict=True):
                self._interpreter.resize_tensor_input(index, batch.shape)
            self._interpreter.allocate_tensors()
            for index, batch in zip(self._inputs, batches, strict=True):
                self._interpreter.set_tensor(index, np.ascontiguousarray(batch, np.float32))
            self._interpreter.invoke()
            return np.array(self._interpreter.get_tensor(self._output))


def save_model_folder(folder: Path, model: Any, info: ModelInfo, backbone: Backbone,
                      scales: Sequence[str], extra: dict[str, Any] | None = None,
                      check_inputs: Sequence[np.ndarray] | None = None) -> Path:
    """Write ``model.tflite`` and ``model.json`` (returns the latter's path)."""
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "info": info.to_dict(),
        "params": {"backbone": backbone.name, "input_side": backbone.input_side,
                   "scales": list(scales), **(extra or {})},
    }
    return write_model_folder(folder, manifest,
                              {MODEL_FILE: tflite_bytes(model, check_inputs)})
