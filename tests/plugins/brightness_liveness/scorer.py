"""The brightness test's scorer: ``P(live) = expit(slope · (mean grey level − centre))``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from common.estimator import ModelInfo
from common.modelfolder import read_model_folder, write_model_folder
from common.result import FaceDetection

PARAMS_FILE = "brightness.json"


class BrightnessTest:
    """Loads ``model.json`` + ``brightness.json`` (hash-checked) from its model folder."""

    name = "brightness"

    def __init__(self, centre: float, slope: float, info: ModelInfo) -> None:
        self.centre, self.slope, self.info = centre, slope, info

    @classmethod
    def from_dir(cls, folder: Path) -> BrightnessTest:
        doc = read_model_folder(folder, required=(PARAMS_FILE,))
        params = json.loads((Path(folder) / PARAMS_FILE).read_text())
        return cls(float(params["centre"]), float(params["slope"]), ModelInfo(**doc["info"]))

    def score(self, image: np.ndarray, face: FaceDetection) -> float:
        return expected_score(image, self.centre, self.slope)


def expected_score(image: np.ndarray, centre: float, slope: float) -> float:
    """The score the test gives ``image`` (RGB uint8)."""
    return 1.0 / (1.0 + math.exp(-slope * (float(image.mean()) - centre)))


def write_model(folder: Path, centre: float = 100.0, slope: float = 0.05,
                threshold: float = 0.5) -> Path:
    """Write the test's model folder (``model.json`` + ``brightness.json``)."""
    info = ModelInfo(test="brightness", name="mean-brightness", version="1.0",
                     threshold=threshold, threshold_rule="fixed (test-only)")
    params = json.dumps({"centre": centre, "slope": slope}).encode()
    return write_model_folder(folder, {"format": "brightness", "format_version": 1,
                                       "info": info.to_dict(), "params": {}},
                              {PARAMS_FILE: params})
