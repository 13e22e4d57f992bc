"""The served fasnet model: both MiniFASNets and the shipped score in one TFLite file.

:func:`build_scoring_model` joins the two Keras networks of :mod:`workers.fasnet.network`
into one model with two inputs — ``crop_2_7`` and ``crop_4_0``, float32 (N, 80, 80, 3),
BGR 0–255, the crops at scales 2.7 and 4.0 (:mod:`workers.fasnet.crop`) — and named
outputs:

* ``softmax_v2``, ``softmax_v1se`` (N, 3): each network's softmax (class 1 live);
* ``embedding_v2``, ``embedding_v1se`` (N, 128): each network's embedding after its
  ``bn`` layer (the vector its classifier reads);
* ``p_live`` (N, 1): the shipped variant's P(live) (:data:`VARIANTS`):

  - ``pair``: the original's combination, the mean of the two class-1 softmax values;
  - ``v2`` / ``v1se``: one network's class-1 softmax value;
  - ``head``: a logistic unit on the two embeddings concatenated (N, 256),
    ``expit(e · w + b)``, a standardised logistic regression folded into ``w`` and
    ``b`` (:func:`fold_standardised_logistic`).

``model.tflite`` is that model converted by TensorFlow's TFLite converter (float32, no
quantisation) and run by LiteRT through its signature, so outputs are found by name
(:class:`FasnetRunner`); the conversion's outputs are checked against Keras's when the
folder is written. ``model.json`` gives the variant, the box mapping, the threshold and
the figures.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ModelError
from common.estimator import ModelInfo
from common.modelfolder import write_model_folder

MODEL_FILE = "model.tflite"
FORMAT = "workers.fasnet.model"
FORMAT_VERSION = 1
#: The model's inputs, in the order of :data:`workers.fasnet.crop.SCALES`.
INPUTS = ("crop_2_7", "crop_4_0")
#: The network each input feeds, and the name its outputs carry.
NETWORKS = ("v2", "v1se")
#: Every output of the served model (module docstring).
OUTPUTS = ("p_live", "softmax_v2", "softmax_v1se", "embedding_v2", "embedding_v1se")
#: Variants ``p_live`` can be (module docstring).
VARIANTS = ("pair", "v2", "v1se", "head")


def fold_standardised_logistic(pipeline: Any) -> tuple[np.ndarray, float]:
    """(weights (D,) float32, bias) of ``make_pipeline(StandardScaler(),
    LogisticRegression())`` as one linear unit on the raw features:
    ``w' = w / σ``, ``b' = b − Σ w μ / σ``."""
    scaler, logistic = pipeline[0], pipeline[-1]
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    w = logistic.coef_[0] / scale
    b = float(logistic.intercept_[0] - np.sum(logistic.coef_[0] * scaler.mean_ / scale))
    return w.astype(np.float32), b


def build_scoring_model(networks: Sequence[Any], variant: str,
                        head: tuple[np.ndarray, float] | None = None) -> Any:
    """One Keras model: the two networks (MiniFASNetV2 for ``crop_2_7``, MiniFASNetV1SE
    for ``crop_4_0``, each ``[softmax, embedding]``) and ``p_live`` for ``variant``.

    ``head`` ((256,) weights, bias) is required for ``variant="head"``. Raises
    ``ValueError`` for an unknown variant or a missing/misshapen head.
    """
    import keras
    from keras import layers

    if variant not in VARIANTS:
        raise ValueError(f"unknown fasnet variant {variant!r}; choose one of {VARIANTS}")
    inputs = [keras.Input((80, 80, 3), name=name) for name in INPUTS]
    outputs: dict[str, Any] = {}
    for tag, x, net in zip(NETWORKS, inputs, networks, strict=True):
        softmax, embedding = net(x)
        outputs[f"softmax_{tag}"] = layers.Identity(name=f"softmax_{tag}")(softmax)
        outputs[f"embedding_{tag}"] = layers.Identity(name=f"embedding_{tag}")(embedding)
    if variant == "head":
        if head is None or np.asarray(head[0]).shape != (256,):
            raise ValueError("the head variant needs (256,) weights and a bias")
        joined = layers.Concatenate(name="embeddings")(
            [outputs["embedding_v2"], outputs["embedding_v1se"]])
        unit = layers.Dense(1, activation="sigmoid", name="p_live")
        p_live = unit(joined)
        unit.set_weights([np.asarray(head[0], np.float32).reshape(256, 1),
                          np.array([head[1]], np.float32)])
    else:
        weights = {"pair": (0.5, 0.5), "v2": (1.0, 0.0), "v1se": (0.0, 1.0)}[variant]
        live = layers.Concatenate(name="live_columns")(
            [outputs["softmax_v2"][:, 1:2], outputs["softmax_v1se"][:, 1:2]])
        unit = layers.Dense(1, use_bias=False, name="p_live")
        p_live = unit(live)
        unit.set_weights([np.array(weights, np.float32).reshape(2, 1)])
    outputs["p_live"] = p_live
    return keras.Model(inputs, outputs, name=f"fasnet_{variant}")


class FasnetRunner:
    """The served model under LiteRT (a ``.tflite`` path or bytes), one interpreter per
    process, one lock; the serving process imports no TensorFlow."""

    def __init__(self, model: bytes | Path) -> None:
        from workers.litert import open_signature

        self._interpreter, self._runner, signature = open_signature(model, "fasnet")
        if sorted(signature["inputs"]) != sorted(INPUTS) or \
                sorted(signature["outputs"]) != sorted(OUTPUTS):
            raise ModelError(f"the fasnet model's inputs/outputs {signature} are not "
                             f"{INPUTS} → {OUTPUTS}")
        self._lock = threading.Lock()

    def run(self, crops: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Every output (:data:`OUTPUTS`) for the two float32 (N, 80, 80, 3) batches, in
        :data:`INPUTS` order."""
        feeds = {name: np.ascontiguousarray(c, np.float32)
                 for name, c in zip(INPUTS, crops, strict=True)}
        with self._lock:
            out = self._runner(**feeds)
            return {k: np.array(v) for k, v in out.items()}

    def __call__(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """``p_live`` (N,) for the two batches."""
        return self.run(crops)["p_live"][:, 0]


def tflite_bytes(model: Any, check_inputs: Sequence[np.ndarray] | None = None) -> bytes:
    """``model`` converted to a ``.tflite`` flatbuffer (float32, no quantisation).

    With ``check_inputs`` (two float32 batches) every output of the converted model, run
    by LiteRT, must equal Keras's to 1e-5 (absolute; softmax and P(live) lie in 0–1,
    embeddings are scaled by their largest value); raises ``ValueError`` otherwise.
    """
    import tensorflow as tf

    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    if check_inputs is not None:
        expected = {k: np.asarray(v) for k, v in model(
            dict(zip(INPUTS, check_inputs, strict=True)), training=False).items()}
        got = FasnetRunner(data).run(check_inputs)
        for name, e in expected.items():
            tol = 1e-5 * max(1.0, float(np.abs(e).max()))
            if not np.allclose(got[name], e, atol=tol):
                raise ValueError(f"the TFLite conversion differs from Keras on {name}: "
                                 f"largest difference {np.abs(got[name] - e).max():.3g}")
    return data


def save_model_folder(folder: Path, model: Any, info: ModelInfo, params: Mapping[str, Any],
                      check_inputs: Sequence[np.ndarray] | None = None) -> Path:
    """Write ``model.tflite`` and ``model.json`` (format, info, params: variant, box
    mapping, …); returns the latter's path."""
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "info": info.to_dict(),
                "params": dict(params)}
    return write_model_folder(folder, manifest, {MODEL_FILE: tflite_bytes(model, check_inputs)})
