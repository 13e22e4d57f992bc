"""JPEG Quality Index (JQI).

Wang, Sheikh & Bovik, "No-reference perceptual quality assessment of JPEG
compressed images", ICIP 2002. Three features of the horizontal and vertical
first differences: blockiness B (mean |difference| across the 8x8 block
boundaries), activity A (mean |difference| inside the blocks) and the zero-crossing
rate Z, combined as S = a + b B^g1 A^g2 Z^g3 with the constants the authors fitted
on their JPEG database (the values of their reference MATLAB code). Higher is
better (roughly 1..10 for JPEG images); Galbally et al. (IEEE TIP 2014) use it on
the grey image as one of the 25 quality features.
"""

from __future__ import annotations

import cv2
import numpy as np

from workers.quality.measures.nss import pad_to_min_size

_ALPHA = -245.8909
_BETA = 261.9373
_GAMMA1 = -239.8886 / 10000
_GAMMA2 = 160.1664 / 10000
_GAMMA3 = 64.2859 / 10000
# Floor for B, A, Z: a flat image has B = A = Z = 0 and 0 ** negative is infinite.
_FLOOR = 1e-6


def _directional_features(x: np.ndarray, axis: int) -> tuple[float, float, float]:
    """(B, A, Z) of the first differences of ``x`` along ``axis``."""

    def cut(a: np.ndarray, sl: slice) -> np.ndarray:
        return a[:, sl] if axis == 1 else a[sl]

    n = x.shape[axis]
    d = cv2.subtract(cut(x, slice(1, None)), cut(x, slice(None, -1)))
    # block boundaries: differences 8j - 1 (0-based) for j = 1 .. floor(n/8) - 1
    boundary = cut(d, slice(7, 8 * (n // 8 - 1), 8))
    b = cv2.norm(boundary, cv2.NORM_L1) / boundary.size if boundary.size else 0.0
    a = (8.0 * cv2.norm(d, cv2.NORM_L1) / d.size - b) / 7.0
    # zero crossing: consecutive differences of opposite sign
    prod = cv2.multiply(cut(d, slice(None, -1)), cut(d, slice(1, None)))
    z = np.count_nonzero(prod < 0) / prod.size
    return b, a, z


def jpeg_quality_index(grey: np.ndarray) -> float:
    """JQI of a grey image (2-D, 0..255). Lower means more JPEG blockiness/blur."""
    x = pad_to_min_size(np.asarray(grey, dtype=np.float32), 16)
    b_h, a_h, z_h = _directional_features(x, axis=1)
    b_v, a_v, z_v = _directional_features(x, axis=0)
    b = max((b_h + b_v) / 2, _FLOOR)
    a = max((a_h + a_v) / 2, _FLOOR)
    z = max((z_h + z_v) / 2, _FLOOR)
    return float(_ALPHA + _BETA * b**_GAMMA1 * a**_GAMMA2 * z**_GAMMA3)
