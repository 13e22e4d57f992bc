"""The served depth3d model: the trained classifier as TFLite, plus the reference face.

``model.tflite`` is the Keras classifier of :mod:`workers.depth3d.networks` converted by
TensorFlow's TFLite converter (float32) and run by LiteRT through its signature (inputs
``depth`` (1, side, side) and, for the depth net, ``signals`` (1, 7); output ``p_live``);
``reference.npz`` holds ``reference`` (468, 3) float32, the mean canonical face of the
training images the signals compare with; ``model.json`` gives the kind, the side, the
backend, the threshold and the figures. Both files are SHA-256-pinned by the manifest.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ModelError
from common.estimator import ModelInfo
from common.modelfolder import npz_bytes, write_model_folder

MODEL_FILE = "model.tflite"
REFERENCE_FILE = "reference.npz"
FORMAT = "workers.depth3d.model"
FORMAT_VERSION = 1


class Depth3dRunner:
    """The classifier under LiteRT (a ``.tflite`` path or bytes): one interpreter per
    process, one lock; the serving process imports no TensorFlow."""

    def __init__(self, model: bytes | Path) -> None:
        from workers.litert import open_signature

        self._interpreter, self._runner, signature = open_signature(model, "depth3d")
        self.inputs = tuple(sorted(signature["inputs"]))
        if "depth" not in self.inputs or not set(self.inputs) <= {"depth", "signals"} \
                or len(signature["outputs"]) != 1:
            raise ModelError(f"the depth3d model's signature {signature} is not "
                             "depth[, signals] → p_live")
        self._output = signature["outputs"][0]
        self._lock = threading.Lock()

    def __call__(self, depth: np.ndarray, signals: np.ndarray) -> np.ndarray:
        """P(live) (N,) for depth maps (N, side, side) and signals (N, 7) float32 (the
        latter ignored by VoxNet)."""
        feeds = {"depth": np.ascontiguousarray(depth, np.float32)}
        if "signals" in self.inputs:
            feeds["signals"] = np.ascontiguousarray(signals, np.float32)
        with self._lock:
            out = self._runner(**feeds)
        return np.asarray(out[self._output]).reshape(-1)


def tflite_bytes(model: Any, check: Mapping[str, np.ndarray] | None = None) -> bytes:
    """``model`` as a ``.tflite`` flatbuffer; with ``check`` (the model's inputs by name)
    LiteRT's output must equal Keras's within 1e-5, else ``ValueError``."""
    import tensorflow as tf

    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    if check is not None:
        expected = np.asarray(model(dict(check) if len(check) > 1 else check["depth"],
                                    training=False)).ravel()
        got = Depth3dRunner(data)(check["depth"], check.get(
            "signals", np.zeros((len(check["depth"]), 7), np.float32)))
        if not np.allclose(got, expected, atol=1e-5):
            raise ValueError("the TFLite conversion differs from Keras by "
                             f"{np.abs(got - expected).max():.3g}")
    return data


def save_model_folder(folder: Path, model: Any, reference: np.ndarray, info: ModelInfo,
                      params: Mapping[str, Any],
                      check: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write ``model.tflite``, ``reference.npz`` and ``model.json``; returns the latter."""
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "info": info.to_dict(),
                "params": dict(params)}
    return write_model_folder(folder, manifest, {
        MODEL_FILE: tflite_bytes(model, check),
        REFERENCE_FILE: npz_bytes({"reference": np.asarray(reference, np.float32)})})
