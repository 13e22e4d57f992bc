"""Serving side of the CNN test: image + located face → crops at each scale → P(live).

The model (``models/cnn/model.keras``, :mod:`workers.cnn.model`) is loaded once per
process and called through one compiled ``tf.function`` with a fixed input signature
(Keras's per-call ``predict`` is 5–10× slower for single images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ModelError
from common.estimator import ModelInfo
from common.modelfolder import read_model_folder
from common.result import FaceDetection
from workers.cnn.backbones import get_backbone
from workers.cnn.features import SCALES, crop_at_scale
from workers.cnn.model import FORMAT, FORMAT_VERSION, MODEL_FILE, load_keras


class CnnTest:
    """The CNN face-crop test (needs the face stage's face)."""

    name = "cnn"
    needs_face = True

    def __init__(self, model: Any, info: ModelInfo, backbone_name: str,
                 scales: list[str]) -> None:
        import tensorflow as tf

        unknown = [s for s in scales if s not in SCALES]
        if unknown:
            raise ModelError(f"the cnn model asks for unknown crop scales {unknown}")
        self.backbone = get_backbone(backbone_name)
        self.scales = scales
        self.info = info
        self.model = model
        side = self.backbone.input_side
        spec = [tf.TensorSpec((None, side, side, 3), tf.float32) for _ in scales]

        @tf.function(input_signature=spec)
        def predict(*crops: tf.Tensor) -> tf.Tensor:
            return self.model(list(crops), training=False)

        self._predict = predict

    @classmethod
    def from_dir(cls, folder: Path) -> CnnTest:
        doc = read_model_folder(folder)
        if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"{folder}: not a cnn model folder (format "
                             f"{doc.get('format')!r} v{doc.get('format_version')})")
        try:
            info = ModelInfo(**doc["info"])
            params = doc["params"]
            model = load_keras(Path(folder) / MODEL_FILE)
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise ModelError(f"{folder}: unreadable cnn model: {exc}") from exc
        return cls(model, info, str(params["backbone"]), list(params["scales"]))

    def crops(self, image: np.ndarray, face: FaceDetection) -> list[np.ndarray]:
        """One normalised float32 (1, side, side, 3) batch per scale."""
        side = self.backbone.input_side
        return [self.backbone.preprocess(crop_at_scale(image, face, s, side)[None])
                for s in self.scales]

    def score(self, image: np.ndarray, face: FaceDetection | None) -> float:
        if face is None:
            raise ModelError("the cnn test needs the face stage's face")
        return float(np.asarray(self._predict(*self.crops(image, face)))[0, 0])
