"""Serving side of the fasnet test: image + the face stage's face → two crops → P(live).

The model (``models/fasnet/model.tflite``, :mod:`workers.fasnet.model`) is loaded once
per process and run by LiteRT (no TensorFlow). The crops follow Minivision's procedure
on the face stage's detection mapped by the model folder's box mapping
(:mod:`workers.fasnet.crop`); there is no second face detection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.errors import ModelError
from common.estimator import ModelInfo
from common.modelfolder import read_model_folder, require_format
from common.result import FaceDetection
from workers.fasnet.crop import BOX_MAPPINGS, SCALES, BoxMapping, fasnet_crops
from workers.fasnet.model import FORMAT, FORMAT_VERSION, MODEL_FILE, FasnetRunner


class FasnetTest:
    """The fasnet test (needs the face stage's face)."""

    name = "fasnet"
    needs_face = True

    def __init__(self, runner: FasnetRunner, info: ModelInfo, mapping: BoxMapping) -> None:
        self.runner = runner
        self.info = info
        self.mapping = mapping

    @classmethod
    def from_dir(cls, folder: Path) -> FasnetTest:
        """Load ``models/fasnet/`` (SHA-256-checked); :class:`ModelError` when it is not a
        fasnet model folder of this version or names an unknown box mapping."""
        doc = read_model_folder(folder, required=(MODEL_FILE,))
        require_format(doc, folder, FORMAT, FORMAT_VERSION, "fasnet")
        try:
            info = ModelInfo(**doc["info"])
            box = str(doc["params"]["box"])
            runner = FasnetRunner(Path(folder) / MODEL_FILE)
        except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"{folder}: unreadable fasnet model: {exc}") from exc
        if box not in BOX_MAPPINGS:
            raise ModelError(f"{folder}: unknown box mapping {box!r}; known: "
                             f"{', '.join(BOX_MAPPINGS)}")
        return cls(runner, info, BOX_MAPPINGS[box])

    def crops(self, image: np.ndarray, face: FaceDetection) -> list[np.ndarray]:
        """The two float32 (1, 80, 80, 3) BGR 0–255 batches (scales 2.7 and 4.0)."""
        return [c.astype(np.float32)[None] for c in fasnet_crops(image, face, self.mapping,
                                                                 SCALES)]

    def outputs(self, image: np.ndarray, face: FaceDetection) -> dict[str, np.ndarray]:
        """Every output of the model for one image (softmax and embedding of each
        network, ``p_live``), batch of one."""
        return self.runner.run(self.crops(image, face))

    def score(self, image: np.ndarray, face: FaceDetection | None) -> float:
        """P(live) of an RGB uint8 (H, W, 3) image; :class:`ModelError` without a face."""
        if face is None:
            raise ModelError("the fasnet test needs the face stage's face")
        return float(self.runner(self.crops(image, face))[0])
