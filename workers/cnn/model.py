"""The served CNN model: one trunk per crop scale, a linear head, one file.

``build_scoring_model`` turns trunks and a fitted linear head into one Keras model with
one input per scale (float32 (N, side, side, 3), normalised by the backbone's
``preprocess``). Per scale, the trunk's last feature map ``F`` (N, h, w, C) goes through
a 1×1 convolution holding that scale's head weights ``w_s`` (no bias): the map
``M_s = F · w_s`` (N, h, w). The log-odds of bona fide are ``Σ_s mean_hw(M_s) + b``
(global average pooling and a linear unit commute), and P(live) their sigmoid (N, 1).

``M_s`` is also the model's second output (N, h, w, S): it is the Grad-CAM map
(Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017) of the log-odds with respect to ``F``, exactly. Grad-CAM
weights each channel by its pooled gradient ``α_k = mean_hw ∂y/∂F_k = w_k / (h·w)``, a
constant here, so ``ReLU(Σ_k α_k F_k) = ReLU(M_s) / (h·w)`` (for the attack class,
whose log-odds are ``−y``: ``ReLU(−M_s) / (h·w)``). This is Zhou et al.'s CAM (CVPR
2016), which Grad-CAM generalises; a test checks it against ``tf.GradientTape``.

A trunk with several output maps (the ``stages`` pooling of :mod:`workers.cnn.features`:
stage maps ``F_1 … F_J`` then the last one) gets a 1×1 convolution per map, with that
map's slice of the head's weights; each finer map ``M_j`` is average-pooled onto the
last map's grid (its side is a whole multiple of it), which keeps its mean, so the sum
``M_s = Σ_j pool(M_j)`` still averages to the scale's log-odds contribution: the CAM of
every level at once (for the last map alone it is the Grad-CAM above).

Heads: a standardised logistic regression fitted on the pooled features is folded into
the weights exactly (``w' = w / σ``, ``b' = b − Σ w μ / σ``); fine-tuned scale models
(:mod:`workers.cnn.finetune`) contribute their own trunk and the weights of their
sigmoid unit, fused by their mean log-odds.

The folder ``models/cnn/`` holds ``model.tflite`` — the Keras model converted by
TensorFlow's TFLite converter and served by LiteRT, so the serving process imports no
TensorFlow (the conversion's output equals Keras's to float precision, checked when the
folder is written) — and ``model.json`` (info, threshold, the backbone and scales, and
the file's SHA-256).
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
FORMAT_VERSION = 3


def fold_standardised_logistic(pipeline: Any) -> tuple[np.ndarray, float]:
    """(weights (D,), bias) of ``make_pipeline(StandardScaler(), LogisticRegression())``
    as one linear unit on the raw features."""
    scaler, logistic = pipeline[0], pipeline[-1]
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    w = logistic.coef_[0] / scale
    b = float(logistic.intercept_[0] - np.sum(logistic.coef_[0] * scaler.mean_ / scale))
    return w.astype(np.float32), b


def build_scoring_model(backbone: Backbone, trunks: Sequence[Any], scales: Sequence[str],
                        weights: Sequence[np.ndarray], bias: float) -> Any:
    """One Keras model: an input per scale → its trunk → the head's 1×1 map → P(live).

    ``trunks`` and ``weights`` (C,) float32 come one per scale (a trunk may be shared; a
    trunk with several output maps takes ``C`` = their channels in order); outputs
    ``[p_live (N, 1), cam (N, h, w, S)]`` (module docstring). ``ValueError`` when the
    weights do not match the channels or a map's side is not a multiple of the last's.
    """
    import keras
    from keras import layers

    side = backbone.input_side
    inputs = [keras.Input((side, side, 3), name=scale) for scale in scales]
    maps, logits = [], []
    for scale, x, trunk, w in zip(scales, inputs, trunks, weights, strict=True):
        features = trunk(x)
        features = list(features) if isinstance(features, list | tuple) else [features]
        cam = _class_activation_map(scale, features, np.asarray(w, np.float32))
        maps.append(cam)
        logits.append(layers.GlobalAveragePooling2D(name=f"{scale}_logit")(cam))
    total = logits[0] if len(logits) == 1 else layers.Add(name="logit_sum")(logits)
    offset = layers.Dense(1, activation="sigmoid", name="p_live")
    p_live = offset(total)
    offset.set_weights([np.ones((1, 1), np.float32), np.array([bias], np.float32)])
    cam = maps[0] if len(maps) == 1 else layers.Concatenate(name="cam")(maps)
    return keras.Model(inputs, [p_live, cam], name=f"cnn_{backbone.name}")


def _class_activation_map(scale: str, features: list[Any], w: np.ndarray) -> Any:
    """Σ_j avg-pool(F_j · w_j) on the last map's grid, (N, h, w, 1) (module docstring)."""
    from keras import layers

    channels = [int(f.shape[-1]) for f in features]
    if sum(channels) != len(w):
        raise ValueError(f"{scale}: {len(w)} head weights for maps of {channels} channels")
    last = int(features[-1].shape[1])
    parts = []
    for j, (f, w_j) in enumerate(zip(features, np.split(w, np.cumsum(channels)[:-1]),
                                     strict=True)):
        name = f"{scale}_cam" if len(features) == 1 else f"{scale}_cam{j}"
        head = layers.Conv2D(1, 1, use_bias=False, name=name)
        m = head(f)
        head.set_weights([w_j.reshape(1, 1, -1, 1)])
        size = int(f.shape[1])
        if size % last or int(f.shape[2]) != size:
            raise ValueError(f"{scale}: a {size}-px map does not tile the last {last}-px one")
        if size != last:
            m = layers.AveragePooling2D(size // last, name=f"{name}_pool")(m)
        parts.append(m)
    return parts[0] if len(parts) == 1 else layers.Add(name=f"{scale}_cam")(parts)


def tflite_bytes(model: Any, check_inputs: Sequence[np.ndarray] | None = None) -> bytes:
    """``model`` converted to a ``.tflite`` flatbuffer (float32, no quantisation).

    With ``check_inputs`` (one float32 batch per model input) the converted model is run
    by LiteRT and must match Keras to 1e-4; raises ``ValueError`` otherwise.
    """
    import tensorflow as tf

    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    if check_inputs is not None:
        expected = [np.asarray(o) for o in model(list(check_inputs), training=False)]
        got = TfliteRunner(data).run(check_inputs)
        for e, g in zip(expected, got, strict=True):
            if not np.allclose(g, e, atol=1e-4 * max(1.0, float(np.abs(e).max()))):
                raise ValueError(f"the TFLite conversion differs from Keras: {g} vs {e}")
    return data


class TfliteRunner:
    """A LiteRT interpreter over a ``.tflite`` model (bytes or path); inputs in the
    model's input order (by name: ``<scale>``), one lock per interpreter. Calling it
    gives P(live) (N, 1); :meth:`run` gives every output, P(live) first, then the CAM
    maps (by rank: TFLite does not keep Keras's output order)."""

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
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: len(d["shape"]))
        self._outputs = [d["index"] for d in outputs]
        self._lock = threading.Lock()

    def run(self, batches: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every output for one float32 batch per input (lowest rank first)."""
        with self._lock:
            for index, batch in zip(self._inputs, batches, strict=True):
                self._interpreter.resize_tensor_input(index, batch.shape)
            self._interpreter.allocate_tensors()
            for index, batch in zip(self._inputs, batches, strict=True):
                self._interpreter.set_tensor(index, np.ascontiguousarray(batch, np.float32))
            self._interpreter.invoke()
            return [np.array(self._interpreter.get_tensor(i)) for i in self._outputs]

    def __call__(self, batches: Sequence[np.ndarray]) -> np.ndarray:
        return self.run(batches)[0]


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
