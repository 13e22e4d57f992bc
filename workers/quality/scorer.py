"""Serving side of the W-IQA test: decoded image → 25 features → P(live)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.errors import ModelError
from common.estimator import ModelInfo
from common.result import FaceDetection
from workers.quality.features import FEATURE_NAMES, extract_features
from workers.quality.model import QualityClassifier


class QualityTest:
    """Whole-image quality test (it needs no face; the face only feeds reason codes)."""

    name = "quality"
    #: W-IQA measures the whole image: it runs alongside the face stage, not after it.
    needs_face = False

    def __init__(self, model: QualityClassifier) -> None:
        if model.info is None:
            raise ModelError("the quality model file has no info block (threshold, version)")
        if model.feature_names and tuple(model.feature_names) != FEATURE_NAMES:
            raise ModelError(
                "the quality model was trained on other features than this code extracts; "
                "retrain it with `liveness train quality`"
            )
        self.model = model
        self.info: ModelInfo = model.info

    @classmethod
    def from_dir(cls, folder: Path) -> QualityTest:
        return cls(QualityClassifier.load(folder))

    def score(self, image: np.ndarray, face: FaceDetection | None) -> float:
        features = extract_features(image)
        return float(self.model.predict_proba(features[None, :])[0, 1])
