"""The cheaper signals a face reconstruction encodes, one plain function each.

Each takes the canonical points (468, 3) float32
(:func:`workers.depth3d.reconstruct.canonical_points`, IOD units) and, where it says so,
the image-space points (468, 3) ``(x, y, depth)`` in pixels or the reference face (the
mean canonical shape of the training images, shipped with the model), and returns a
float. :func:`mesh_signals` stacks them in :data:`SIGNALS` order.
A live face has a nose that stands out of its cheeks and a shape a rigid 3-D face
explains; a flat attack may still yield a plausible mesh (Face Mesh regresses depth
from appearance), which is what training measures.
"""

from __future__ import annotations

import numpy as np

from common.faces.landmarks import FACE_OVAL
from workers.depth3d.reconstruct import NOSE_TIP

#: Cheek points of the MediaPipe canonical face model, left and right.
CHEEKS = (50, 280, 123, 352, 187, 411)
#: The signals :func:`mesh_signals` returns, in order.
SIGNALS = ("nose_relief", "depth_std", "depth_range", "flatness", "oval_depth_std",
           "shape_deviation", "landmark_fit")


def nose_relief(points: np.ndarray) -> float:
    """How far the nose tip stands out of the cheeks: mean cheek depth − nose-tip depth
    (IOD)."""
    p = np.asarray(points, np.float64)
    return float(p[list(CHEEKS), 2].mean() - p[NOSE_TIP, 2])


def depth_std(points: np.ndarray) -> float:
    """Standard deviation of the points' depth (IOD)."""
    return float(np.std(np.asarray(points, np.float64)[:, 2]))


def depth_range(points: np.ndarray) -> float:
    """5th-to-95th percentile range of the points' depth (IOD)."""
    lo, hi = np.percentile(np.asarray(points, np.float64)[:, 2], [5, 95])
    return float(hi - lo)


def flatness(points: np.ndarray) -> float:
    """Smallest over largest standard deviation along the points' principal axes
    (0: a plane, larger: a volume)."""
    p = np.asarray(points, np.float64)
    s = np.linalg.svd(p - p.mean(axis=0), compute_uv=False)
    return float(s[-1] / max(s[0], 1e-12))


def oval_depth_std(points: np.ndarray) -> float:
    """Standard deviation of the depth along the face outline (IOD): the outline of a
    head curves away from the camera at the sides."""
    return float(np.std(np.asarray(points, np.float64)[list(FACE_OVAL), 2]))


def _similarity_fit(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` (N, 3) moved onto ``target`` by the best rotation, scale and shift
    (orthogonal Procrustes, Schönemann 1966)."""
    s = source - source.mean(axis=0)
    t = target - target.mean(axis=0)
    u, sv, vt = np.linalg.svd(s.T @ t)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    rotation = u @ fix @ vt
    scale = float(np.sum(sv * np.diag(fix))) / max(float(np.sum(s**2)), 1e-12)
    return scale * s @ rotation + target.mean(axis=0)


def shape_deviation(points: np.ndarray, reference: np.ndarray) -> float:
    """RMS 3-D distance (IOD) between the points and the reference face (the mean
    canonical shape of the training images) after the best similarity transform: how
    far the reconstructed shape is from a typical face."""
    p = np.asarray(points, np.float64)
    r = np.asarray(reference, np.float64)
    return float(np.sqrt(np.mean(np.sum((_similarity_fit(p, r) - r) ** 2, axis=1))))


def landmark_fit(image_points: np.ndarray, reference: np.ndarray) -> float:
    """RMS residual (in IOD of the fitted camera) of the best affine camera
    (x, y)_image ≈ A·r + t projecting the reference 3-D face onto the 2-D landmarks:
    how well a typical rigid 3-D face explains the 2-D points."""
    q = np.asarray(image_points, np.float64)[:, :2]
    r = np.asarray(reference, np.float64)
    design = np.column_stack([r, np.ones(len(r))])
    coef, *_ = np.linalg.lstsq(design, q, rcond=None)
    a = coef[:3].T  # (2, 3)
    scale = float(np.sqrt(max(np.linalg.det(a @ a.T), 0.0)))
    residual = q - design @ coef
    return float(np.sqrt(np.mean(np.sum(residual**2, axis=1))) / max(scale, 1e-9))


def reference_shape(points: np.ndarray) -> np.ndarray:
    """The mean canonical shape (468, 3) float32 of a stack (N, 468, 3), NaN rows
    skipped; ``ValueError`` when none is finite."""
    p = np.asarray(points, np.float64)
    keep = np.all(np.isfinite(p.reshape(len(p), -1)), axis=1)
    if not keep.any():
        raise ValueError("no finite face to average")
    return p[keep].mean(axis=0).astype(np.float32)


def mesh_signals(points: np.ndarray, image_points: np.ndarray,
                 reference: np.ndarray) -> np.ndarray:
    """(7,) float32 of :data:`SIGNALS` for one face; ``reference`` (468, 3) the mean
    canonical shape stored with the model (:func:`reference_shape`)."""
    return np.array([nose_relief(points), depth_std(points), depth_range(points),
                     flatness(points), oval_depth_std(points),
                     shape_deviation(points, reference),
                     landmark_fit(image_points, reference)], dtype=np.float32)
