"""From canonical face points to what the classifiers read: a depth map and an
occupancy volume.

* :func:`depth_map` — the surface through the points (their 2-D Delaunay triangulation
  in the canonical x-y plane, depth linearly interpolated inside each triangle, as
  ``scipy.interpolate.LinearNDInterpolator`` does) sampled on a ``side``² grid over
  [−:data:`HALF_EXTENT`, +:data:`HALF_EXTENT`]² IOD; outside the face, the far limit.
* :func:`occupancy` — the seed's volumetric representation (VRN's output, Jackson et
  al. 2017, is such a volume): a voxel is occupied when it lies inside the face's outline
  and at or behind the surface, over depths [:data:`DEPTH_NEAR`, :data:`DEPTH_FAR`] IOD
  in ``side`` bins. The volume is a function of the depth map, so datasets store depth
  maps (``side``² float16) and volumes are built when read, and :func:`pack` /
  :func:`unpack` hold a volume in ``side``³ bits when one must be kept.

The grid's y runs from forehead (row 0) to chin, x from image-left to image-right, depth
from near (bin 0) to far.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import Delaunay, QhullError

#: Half the side of the sampled square, in IOD (a face spans about ±0.9 IOD).
HALF_EXTENT = 1.0
#: Depth range of the volume in IOD, relative to the points' centroid: the nose tip
#: lies near −0.4, the face's outline near +0.7.
DEPTH_NEAR, DEPTH_FAR = -0.6, 1.0


def grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates (x, y), each (side, side) float64, in IOD."""
    axis = (np.arange(side) + 0.5) / side * 2.0 * HALF_EXTENT - HALF_EXTENT
    return np.meshgrid(axis, axis)


def depth_map(points: np.ndarray, side: int) -> np.ndarray:
    """(side, side) float32 depth (IOD) of the surface through canonical ``points``
    (N, 3); cells outside the points' outline hold :data:`DEPTH_FAR`.

    Raises ``ValueError`` for fewer than 3 points, non-finite values or points that do
    not span a surface.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 3 or not np.all(np.isfinite(p)):
        raise ValueError(f"expected finite (N >= 3, 3) points, got {p.shape}")
    try:
        surface = LinearNDInterpolator(Delaunay(p[:, :2]), p[:, 2], fill_value=np.nan)
    except QhullError as exc:
        raise ValueError(f"the points span no surface: {exc}") from exc
    gx, gy = grid(side)
    depth = surface(gx, gy)
    depth = np.clip(depth, DEPTH_NEAR, DEPTH_FAR)
    return np.where(np.isfinite(depth), depth, DEPTH_FAR).astype(np.float32)


def occupancy(depth: np.ndarray, bins: int | None = None) -> np.ndarray:
    """(side, side, bins) float32 0/1 volume of a depth map (``bins`` defaults to its
    side): inside the outline (depth < far limit) and at or behind the surface.
    Works on a batch (N, side, side) too, giving (N, side, side, bins)."""
    d = np.asarray(depth, dtype=np.float32)
    bins = bins or d.shape[-1]
    centres = DEPTH_NEAR + (np.arange(bins, dtype=np.float32) + 0.5) / bins * (
        DEPTH_FAR - DEPTH_NEAR)
    inside = (d < DEPTH_FAR)[..., None]
    return ((centres >= d[..., None]) & inside).astype(np.float32)


def pack(volume: np.ndarray) -> np.ndarray:
    """A 0/1 volume as bits (uint8, 1/8 of its cells)."""
    return np.packbits(np.asarray(volume) > 0.5, axis=None)


def unpack(bits: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """:func:`pack`'s inverse: the float32 0/1 volume of ``shape``."""
    n = int(np.prod(shape))
    return np.unpackbits(np.asarray(bits, np.uint8), count=n).reshape(shape).astype(np.float32)
