"""Serving side of the CNN test: image + located face → crops at each scale → P(live).

The model (``models/cnn/model.tflite``, :mod:`workers.cnn.model`) is loaded once per
process and run by LiteRT: the serving process imports no TensorFlow (a fraction of a
second to load, and faster per image on one core than a compiled ``tf.function``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.errors import ModelError
from common.estimator import ModelInfo
from common.modelfolder import read_model_folder, require_format
from common.result import FaceDetection
from workers.cnn.backbones import get_backbone
from workers.cnn.features import SCALES, crop_at_scale
from workers.cnn.model import FORMAT, FORMAT_VERSION, MODEL_FILE, TfliteRunner


class CnnTest:
    """The CNN test (needs the face stage's face for its ``face`` scale)."""

    name = "cnn"
    needs_face = True

    def __init__(self, runner: TfliteRunner, info: ModelInfo, backbone_name: str,
                 scales: list[str]) -> None:
        unknown = [s for s in scales if s not in SCALES]
        if unknown:
            raise ModelError(f"the cnn model asks for unknown crop scales {unknown}")
        self.backbone = get_backbone(backbone_name)
        self.scales = scales
        self.info = info
        self.runner = runner

    @classmethod
    def from_dir(cls, folder: Path) -> CnnTest:
        doc = read_model_folder(folder, required=(MODEL_FILE,))
        require_format(doc, folder, FORMAT, FORMAT_VERSION, "cnn")
        try:
            info = ModelInfo(**doc["info"])
            params = doc["params"]
            scales = list(params["scales"])
            runner = TfliteRunner(Path(folder) / MODEL_FILE, scales)
        except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"{folder}: unreadable cnn model: {exc}") from exc
        return cls(runner, info, str(params["backbone"]), scales)

    def crops(self, image: np.ndarray, face: FaceDetection) -> list[np.ndarray]:
        """One normalised float32 (1, side, side, 3) batch per scale."""
        side = self.backbone.input_side
        return [self.backbone.preprocess(crop_at_scale(image, face, s, side)[None])
                for s in self.scales]

    def score(self, image: np.ndarray, face: FaceDetection | None) -> float:
        if face is None:
            raise ModelError("the cnn test needs the face stage's face")
        return float(self.runner(self.crops(image, face))[0, 0])

    def explain(self, image: np.ndarray, face: FaceDetection | None) -> bytes:
        """PNG of the Grad-CAM map of this test's decision over each scale's view
        (:mod:`workers.cnn.explain`)."""
        from workers.cnn.explain import explanation_png

        if face is None:
            raise ModelError("the cnn test needs the face stage's face")
        p_live, maps = self.runner.run(self.crops(image, face))
        return explanation_png(image, face, maps[0], self.scales, float(p_live[0, 0]),
                               self.info.threshold)
