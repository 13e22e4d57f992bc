"""Serving side of the depth3d test: image + the face stage's face → 3D → P(live).

The reconstruction backend is the one the model was trained on (``model.json``'s
``backend``): ``mesh`` (:mod:`workers.depth3d.reconstruct`, one Face Mesh pass on the
face stage's detection) or ``vrn`` (:mod:`workers.depth3d.vrn`, weights from
``LIVENESS_VRN_WEIGHTS``). The reconstruction becomes a depth map (and, for the depth
net, the mesh signals against the shipped reference face) and the classifier
(``model.tflite``) runs under LiteRT. Everything is loaded once per process.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from common.config import get_settings
from common.errors import ModelError
from common.estimator import ModelInfo
from common.faces.landmarks import roi_transform
from common.modelfolder import load_npz, read_model_folder, require_format
from common.result import FaceDetection
from workers.depth3d.model import (
    FORMAT,
    FORMAT_VERSION,
    MODEL_FILE,
    REFERENCE_FILE,
    Depth3dRunner,
)
from workers.depth3d.reconstruct import eye_line_angle, reconstruct_mesh
from workers.depth3d.signals import SIGNALS, mesh_signals
from workers.depth3d.volume import depth_map

BACKENDS = ("mesh", "vrn")
#: The VRN crop is this many times the face stage's square box (VRN's training crops
#: hold the whole head).
VRN_CROP_SCALE = 1.2


class Depth3dTest:
    """The depth3d test (needs the face stage's face)."""

    name = "depth3d"
    needs_face = True

    def __init__(self, runner: Depth3dRunner, info: ModelInfo, backend: str, kind: str,
                 side: int, reference: np.ndarray, vrn: object | None = None) -> None:
        self.runner, self.info = runner, info
        self.backend, self.kind, self.side = backend, kind, side
        self.reference = reference
        self.vrn = vrn

    @classmethod
    def from_dir(cls, folder: Path) -> Depth3dTest:
        """Load ``models/depth3d/`` (SHA-256-checked); :class:`ModelError` when it is not
        a depth3d model folder of this version, names an unknown backend, or needs VRN
        weights that ``LIVENESS_VRN_WEIGHTS`` does not give."""
        doc = read_model_folder(folder, required=(MODEL_FILE, REFERENCE_FILE))
        require_format(doc, folder, FORMAT, FORMAT_VERSION, "depth3d")
        try:
            info = ModelInfo(**doc["info"])
            params = doc["params"]
            backend, kind, side = str(params["backend"]), str(params["kind"]), int(params["side"])
            reference = load_npz(Path(folder) / REFERENCE_FILE)["reference"]
            runner = Depth3dRunner(Path(folder) / MODEL_FILE)
        except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"{folder}: unreadable depth3d model: {exc}") from exc
        if backend not in BACKENDS:
            raise ModelError(f"{folder}: unknown reconstruction backend {backend!r}; known: "
                             f"{', '.join(BACKENDS)}")
        if reference.shape != (468, 3):
            raise ModelError(f"{folder}: reference face {reference.shape}, not (468, 3)")
        vrn = None
        if backend == "vrn":
            if kind != "voxnet":
                raise ModelError(f"{folder}: the vrn backend gives no mesh signals for {kind}")
            from workers.depth3d.vrn import VrnReconstructor

            vrn = VrnReconstructor(get_settings().vrn_weights)
        return cls(runner, info, backend, kind, side, reference, vrn)

    def features(self, image: np.ndarray, face: FaceDetection) -> tuple[np.ndarray, np.ndarray]:
        """(depth map (side, side), signals (7,)) float32 of one face."""
        if self.vrn is not None:
            from workers.depth3d.vrn import INPUT_SIDE, volume_depth_map

            box = face.box
            centre = ((box.left + box.right) / 2.0, (box.top + box.bottom) / 2.0)
            side = VRN_CROP_SCALE * max(box.right - box.left, box.bottom - box.top)
            matrix = roi_transform(centre, side, eye_line_angle(face), INPUT_SIDE)
            crop = cv2.warpAffine(image, matrix, (INPUT_SIDE, INPUT_SIDE))
            volume = self.vrn.volume(crop)  # type: ignore[attr-defined]
            return volume_depth_map(volume, self.side), np.zeros(len(SIGNALS), np.float32)
        recon = reconstruct_mesh(image, face)
        return (depth_map(recon.points, self.side),
                mesh_signals(recon.points, recon.image_points, self.reference))

    def score(self, image: np.ndarray, face: FaceDetection | None) -> float:
        """P(live) of an RGB uint8 (H, W, 3) image; :class:`ModelError` without a face."""
        if face is None or not face.found:
            raise ModelError("the depth3d test needs the face stage's face")
        depth, sig = self.features(image, face)
        p = float(self.runner(depth[None], sig[None])[0])
        if not math.isfinite(p):
            raise ModelError("the depth3d model gave no finite score")
        return p
