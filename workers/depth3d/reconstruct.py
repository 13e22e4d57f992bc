"""Single-image 3D face reconstruction for the depth3d test: the ``mesh`` backend.

The face stage's Face Mesh (Kartynnik et al., "Real-time Facial Surface Geometry from
Monocular Video on Mobile GPUs", CVPR-W 2019, arXiv:1907.06724; :mod:`common.faces.landmarks`)
regresses 468 points with a relative depth. :func:`reconstruct_mesh` runs it once on the
face stage's stored detection — its box and the eye line of its five landmarks give the
crop, as the face stage's own last pass did; there is no second face detection — and
:func:`canonical_points` puts the points in a canonical, pose-normalised frame:

* origin at the points' centroid;
* x along the line from the image-left to the image-right outer eye corner (mesh points
  33 → 263), y from the forehead top to the chin (10 → 152) made orthogonal to x, z = x × y
  (away from the camera for a frontal face), so yaw, pitch and roll are removed;
* unit length = the 3-D distance between those eye corners (the inter-ocular distance,
  IOD), so the face's size in the image does not matter.

The ``vrn`` backend (:mod:`workers.depth3d.vrn`) reconstructs a volume instead; both
end as the depth map and occupancy volume of :mod:`workers.depth3d.volume`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.errors import ModelError
from common.result import FaceDetection

#: Mesh indices of the canonical frame (module docstring): outer eye corners, forehead
#: top and chin (MediaPipe canonical face model numbering).
EYE_CORNERS = (33, 263)
FOREHEAD_CHIN = (10, 152)
NOSE_TIP = 1
#: The face oval (forehead, cheeks, jaw, chin), :data:`common.faces.landmarks.FACE_OVAL`.
N_POINTS = 468


@dataclass(frozen=True)
class MeshReconstruction:
    """One face's reconstruction.

    ``image_points`` (468, 3) float32: x, y in original-image pixels and the model's
    relative depth in the same units; ``points`` (468, 3) float32: the same in the
    canonical frame (module docstring), IOD units; ``iod_px`` the 3-D inter-ocular
    distance in image pixels.
    """

    image_points: np.ndarray
    points: np.ndarray
    iod_px: float


def canonical_points(points3d: np.ndarray) -> tuple[np.ndarray, float]:
    """(points (468, 3) float32 in the canonical frame, IOD in input units) of Face Mesh
    points (468, 3) ``(x, y, depth)``.

    Raises ``ValueError`` for a wrong shape, non-finite values or degenerate anchors
    (eye corners or forehead/chin at one place).
    """
    p = np.asarray(points3d, dtype=np.float64)
    if p.shape != (N_POINTS, 3) or not np.all(np.isfinite(p)):
        raise ValueError(f"expected finite (468, 3) mesh points, got {p.shape}")
    x_axis = p[EYE_CORNERS[1]] - p[EYE_CORNERS[0]]
    iod = float(np.linalg.norm(x_axis))
    down = p[FOREHEAD_CHIN[1]] - p[FOREHEAD_CHIN[0]]
    if iod < 1e-6 or np.linalg.norm(down) < 1e-6:
        raise ValueError("degenerate mesh: eye corners or forehead/chin coincide")
    x_axis /= iod
    y_axis = down - x_axis * float(down @ x_axis)
    norm = float(np.linalg.norm(y_axis))
    if norm < 1e-6:
        raise ValueError("degenerate mesh: the forehead-chin line runs along the eyes")
    y_axis /= norm
    z_axis = np.cross(x_axis, y_axis)
    rotation = np.stack([x_axis, y_axis, z_axis])
    centred = (p - p.mean(axis=0)) @ rotation.T / iod
    return centred.astype(np.float32), iod


def eye_line_angle(face: FaceDetection) -> float:
    """Direction (radians, clockwise in the image) of the line from the image-left to
    the image-right eye of the face stage's five landmarks; the face's 90° rotation
    when it has none."""
    if len(face.landmarks) >= 2:
        (lx, ly), (rx, ry) = face.landmarks[0], face.landmarks[1]
        if (lx, ly) != (rx, ry):
            return math.atan2(ry - ly, rx - lx)
    return math.radians(face.rotation)


def reconstruct_mesh(image: np.ndarray, face: FaceDetection) -> MeshReconstruction:
    """The ``mesh`` backend on an RGB uint8 (H, W, 3) image and the face stage's face.

    One Face Mesh pass on the face's box turned by its eye line (re-run on its own
    landmarks only while the face is not upright in the crop, as the face stage does).
    Raises :class:`ModelError` without a found face or when the mesh is degenerate.
    """
    from common.faces.landmarks import face_mesh

    if not face.found:
        raise ModelError("the depth3d test needs a found face")
    box = face.box
    mesh = face_mesh()
    marks = mesh.refine(image, mesh.landmarks(
        image, (box.left, box.top, box.right, box.bottom), eye_line_angle(face)))
    image_points = marks.points3d
    try:
        points, iod = canonical_points(image_points)
    except ValueError as exc:
        raise ModelError(f"no usable 3D reconstruction: {exc}") from exc
    return MeshReconstruction(image_points, points, iod)
